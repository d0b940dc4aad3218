"""Figure 8: the standalone REST API's requests/s, against a bare WSGI hello-world.

Ours: ``ovh-credit-api``'s application (``make_app``, noauth) on a SQLite
ledger with the file voucher catalog, served by ``make_server`` (the
standard library's threaded WSGI server, what ``ovh-credit-api`` runs) on
127.0.0.1. ``GET credits``: a project holding three credits lists them;
``POST vouchers``: a new project activates a multi-use code each time (a
real activation: throttle reservation, intent, grant). Floor: a WSGI
function answering a fixed JSON body, served the same way. One client,
sequential requests, a new connection each (wsgiref speaks HTTP/1.0),
floor and ours alternating. Target: ``GET credits`` at >= 0.5 of the
floor's requests/s (``api_get_credits_ratio``); ``POST vouchers`` is
reported (each is a real activation, three durable commits).
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import data
from benchmarks.common import Unavailable

PROJECT = "bench-reader"
CODE = "BENCH-WELCOME"


def _hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = b'{"hello": "world"}'
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


@contextmanager
def _served(app: Any) -> Iterator[int]:
    from ovh_credit_plugin.api.app import make_server

    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def _run(port: int, requests: list[tuple[str, str, dict[str, str], bytes | None]],
         expected: int | None) -> float:
    started = time.perf_counter()
    for method, path, headers, body in requests:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        if expected is not None and response.status != expected:
            raise RuntimeError(f"{method} {path}: {response.status}")
    return time.perf_counter() - started


def measure(workdir: Path, sizes: Any) -> dict[str, Any]:
    try:
        from oslo_config import cfg

        from ovh_credit_plugin.api.app import make_app
        from ovh_credit_plugin.conf import register_api_opts, register_opts
    except ImportError as error:
        raise Unavailable(f"the api extra is not installed ({error})") from None

    count, reps = sizes.api_requests, sizes.api_reps
    vouchers = workdir / "api-vouchers.json"
    vouchers.write_text(json.dumps({"vouchers": [{
        "code": CODE, "amount": "10.00", "currency": "EUR", "status": "active",
        "validity_days": 90, "products": [], "max_redemptions": None, "redemptions": 0,
    }]}))
    ledger = data.copy_ledger(workdir / "empty.sqlite", workdir / "api.sqlite")
    conf = cfg.ConfigOpts()
    register_opts(conf)
    register_api_opts(conf)
    conf(args=[], default_config_files=[])
    conf.set_override("connection", data.sqlite_url(ledger), "cloud_credit")
    conf.set_override("file_path", str(vouchers), "voucher_catalog")
    conf.set_override("auth_strategy", "noauth", "api")
    app = make_app(conf)
    service = app.runtime.service
    for amount in ("10.00", "20.00", "30.00"):
        service.pay_order(service.create_order(PROJECT, amount).id)

    reader = {"X-Project-Id": PROJECT, "X-Roles": "reader"}
    json_headers = {"Content-Type": "application/json"}
    activation = json.dumps({"code": CODE}).encode()
    serial = iter(range(10**9))
    figures: dict[str, Any] = {}
    try:
        with _served(_hello) as floor_port, _served(app) as our_port:
            hello = [("GET", "/", {}, None)] * count
            _run(floor_port, hello[:20], 200)  # warm both up
            _run(our_port, [("GET", "/v1/credits", reader, None)] * 20, 200)
            for name, build, status in (
                ("get_credits", lambda: [("GET", "/v1/credits", reader, None)] * count, 200),
                ("post_vouchers", lambda: [
                    ("POST", "/v1/vouchers",
                     {**json_headers, "X-Project-Id": f"bench-{next(serial)}",
                      "X-Roles": "member,reader"}, activation)
                    for _ in range(count)], 201),
            ):
                floors, ours = [], []
                for rep in range(reps):
                    batch = build()
                    if rep % 2 == 0:
                        floors.append(_run(floor_port, hello, 200))
                        ours.append(_run(our_port, batch, status))
                    else:
                        ours.append(_run(our_port, batch, status))
                        floors.append(_run(floor_port, hello, 200))
                figures[name] = {
                    "requests_per_s": count / statistics.median(ours),
                    "floor_requests_per_s": count / statistics.median(floors),
                    # Throughput ratio (ours / floor requests per second), like figure 1.
                    "ratio": statistics.median(f / o for f, o in zip(floors, ours, strict=True)),
                }
    finally:
        app.close()
    return figures
