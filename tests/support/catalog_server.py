"""A real voucher catalog on 127.0.0.1, for functional tests.

It speaks the wire contract of ``docs/voucher-catalog.openapi.yaml`` over
HTTP/1.1 (keep-alive) or HTTPS (a ``trustme`` CA), from a thread per
connection, on a random free port. Redemptions are single-use where the
voucher says so, idempotent on their key, and decided under one lock, like
a real catalog's database would.

Faults are injected per request: ``server.inject(Fault(...))`` makes the
next matching request(s) misbehave (a status, a slow drip, a truncated
body, a reply lost after the redemption was committed, ...).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UTC = dt.timezone.utc
_VOUCHER = re.compile(r"^/v1/vouchers/([^/]+)$")
_REDEMPTIONS = re.compile(r"^/v1/vouchers/([^/]+)/redemptions$")


@dataclass
class Fault:
    """How the next ``times`` matching requests misbehave.

    ``kind``:
      ``status``    answer ``status`` with ``headers``/``body`` (nothing redeemed);
      ``body``      answer ``status`` (default 200/201) with the raw ``body`` bytes,
                    after doing the real work (a malformed answer);
      ``drip``      do the work, send the headers, then the body one byte every
                    ``interval`` seconds;
      ``drip_headers`` send the status line and headers one byte every ``interval``;
      ``stall``     do the work, then wait ``seconds`` before answering;
      ``truncate``  do the work, announce the full length, send half, close;
      ``drop``      do the work (commit a redemption), then close without a reply.
      ``hold``      hold the request: with ``work_first`` the work is done (a
                    redemption committed) before holding, otherwise after; then
                    ``before_reply()`` runs if given, ``arrived`` is set and the
                    reply waits for ``release`` (a client killed meanwhile never
                    reads it). Without events it only runs ``before_reply``.

    ``path``, when set, limits the fault to requests whose path contains it.
    """

    kind: str
    method: str = "*"
    times: int = 1
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    interval: float = 0.05
    seconds: float = 0.0
    path: str = ""
    work_first: bool = True
    arrived: threading.Event | None = None
    release: threading.Event | None = None
    before_reply: Callable[[], None] | None = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Fifty clients connect at once in the race test: the default backlog of
    # 5 would drop their SYNs and turn a race into a queue.
    request_queue_size = 256


class CatalogServer:
    def __init__(
        self,
        *,
        vouchers: list[dict[str, Any]],
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.vouchers = {v["code"]: dict(v) for v in vouchers}
        self.token = token
        self.lock = threading.Lock()
        self.redemptions: dict[str, dict[str, Any]] = {}  # by idempotency key
        self.requests: list[Recorded] = []
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._ssl_context = ssl_context
        server = _Server(("127.0.0.1", 0), _Handler)
        server.catalog = self  # type: ignore[attr-defined]
        if ssl_context is not None:
            # The handshake runs in the connection's thread, not the accept loop:
            # a client that never finishes it cannot block other clients.
            original = server.finish_request

            def finish_request(request: Any, client_address: Any) -> None:
                try:
                    request = ssl_context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                original(request, client_address)

            server.finish_request = finish_request  # type: ignore[method-assign]
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> CatalogServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Forget the faults that have not fired (and release any held request)."""
        with self.lock:
            faults, self._faults = self._faults, []
        for fault in faults:
            if fault.release is not None:
                fault.release.set()

    def calls(self, method: str | None = None, kind: str | None = None) -> list[Recorded]:
        """Recorded requests; ``kind`` is ``voucher`` (GET) or ``redemption`` (POST)."""
        with self.lock:
            found = list(self.requests)
        if method:
            found = [r for r in found if r.method == method]
        if kind == "redemption":
            found = [r for r in found if r.path.endswith("/redemptions")]
        elif kind == "voucher":
            found = [r for r in found if not r.path.endswith("/redemptions")]
        return found

    def redemptions_of(self, code: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.redemptions.values() if r["code"] == code]

    # -- the contract ----------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.times > 0 and fault.method in ("*", method) and fault.path in path:
                    fault.times -= 1
                    return fault
        return None

    def _voucher_document(self, code: str) -> dict[str, Any] | None:
        voucher = self.vouchers.get(code)
        if voucher is None:
            return None
        used = sum(1 for r in self.redemptions.values() if r["code"] == code)
        document = {
            "code": code,
            "amount": voucher["amount"],
            "currency": voucher["currency"],
            "status": voucher.get("status", "active"),
            "valid_from": voucher.get("valid_from"),
            "valid_until": voucher.get("valid_until"),
            "validity_days": voucher.get("validity_days"),
            "products": voucher.get("products", []),
            "max_redemptions": voucher.get("max_redemptions"),
            "redemptions": voucher.get("redemptions", 0) + used,
            "description": voucher.get("description", ""),
        }
        if document["max_redemptions"] is not None and (
            document["redemptions"] >= document["max_redemptions"]
        ):
            document["status"] = "exhausted"
        return document

    def get_voucher(self, code: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            document = self._voucher_document(code)
        if document is None:
            return 404, {"message": "no such voucher"}
        return 200, document

    def redeem(self, code: str, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("project_id"), str) or not (
            isinstance(body.get("idempotency_key"), str)
        ):
            return 400, {"message": "project_id and idempotency_key are required"}
        project_id, key = body["project_id"], body["idempotency_key"]
        with self.lock:
            previous = self.redemptions.get(key)
            if previous is not None:
                if previous["code"] != code or previous["project_id"] != project_id:
                    return 422, {"message": "idempotency key reused for another redemption"}
                return 200, previous
            document = self._voucher_document(code)
            if document is None:
                return 404, {"message": "no such voucher"}
            now = dt.datetime.now(UTC)
            if document["status"] == "revoked":
                return 410, {"message": "voucher revoked"}
            ends = document["valid_until"]
            if document["status"] == "expired" or (
                ends is not None and dt.datetime.fromisoformat(ends.replace("Z", "+00:00")) <= now
            ):
                return 410, {"message": "voucher expired"}
            if document["status"] == "exhausted":
                return 409, {"message": "voucher already redeemed"}
            redemption = {
                "id": str(uuid.uuid4()),
                "code": code,
                "project_id": project_id,
                "amount": document["amount"],
                "currency": document["currency"],
                "valid_from": document["valid_from"],
                "valid_until": document["valid_until"],
                "validity_days": document["validity_days"],
                "products": document["products"],
                "description": document["description"],
                "redeemed_at": now.isoformat().replace("+00:00", "Z"),
            }
            self.redemptions[key] = redemption
            return 201, redemption


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TestCatalog/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def catalog(self) -> CatalogServer:
        return self.server.catalog  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        catalog = self.catalog
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        with catalog.lock:
            catalog.requests.append(Recorded(method, self.path, dict(self.headers.items()), body))
        request_id = f"req-{next(catalog._ids)}"

        if catalog.token is not None and self.headers.get("X-Auth-Token") != catalog.token:
            self._send(401, {"message": "invalid or missing X-Auth-Token"}, request_id)
            return

        fault = catalog._take_fault(method, self.path)
        if fault is not None and fault.kind == "status":
            payload = fault.body if fault.body is not None else json.dumps(
                {"message": f"injected {fault.status}"}).encode()
            self._send_raw(fault.status, payload, request_id, fault.headers)
            return
        if fault is not None and fault.kind == "hold":
            self._hold(fault, method, body, request_id)
            return
        if fault is not None and fault.kind == "drip_headers":
            status, document = self._work(method, body)
            self._drip_headers(status, json.dumps(document).encode(), request_id, fault.interval)
            return

        status, document = self._work(method, body)  # the catalog commits here
        payload = json.dumps(document).encode()
        if fault is None:
            self._send_raw(status, payload, request_id)
        elif fault.kind == "body":
            self._send_raw(fault.status or status, fault.body or b"", request_id, fault.headers)
        elif fault.kind == "stall":
            time.sleep(fault.seconds)
            self._send_raw(status, payload, request_id)
        elif fault.kind == "drop":
            self._abort()
        elif fault.kind == "truncate":
            self._send_head(status, len(payload), request_id)
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._abort()
        elif fault.kind == "drip":
            self._send_head(status, len(payload), request_id)
            self.wfile.flush()
            try:
                for byte in payload:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(fault.interval)
            except OSError:
                pass
            self.close_connection = True
        else:  # pragma: no cover - a typo in a test
            raise AssertionError(f"unknown fault {fault.kind}")

    def _hold(self, fault: Fault, method: str, body: Any, request_id: str) -> None:
        if fault.work_first:
            status, document = self._work(method, body)
        if fault.before_reply is not None:
            fault.before_reply()
        if fault.arrived is not None:
            fault.arrived.set()
        if fault.release is not None:
            fault.release.wait(timeout=600)
        if not fault.work_first:
            status, document = self._work(method, body)
        try:
            self._send_raw(status, json.dumps(document).encode(), request_id)
        except OSError:  # the client died while we held its request
            self.close_connection = True

    def _work(self, method: str, body: Any) -> tuple[int, dict[str, Any]]:
        if method == "GET" and (match := _VOUCHER.match(self.path)):
            return self.catalog.get_voucher(match.group(1))
        if method == "POST" and (match := _REDEMPTIONS.match(self.path)):
            return self.catalog.redeem(match.group(1), body)
        return 404, {"message": "no such resource"}

    def _send(self, status: int, document: dict[str, Any], request_id: str) -> None:
        self._send_raw(status, json.dumps(document).encode(), request_id)

    def _send_head(self, status: int, length: int, request_id: str,
                   headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        self.send_header("X-Request-Id", request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def _send_raw(self, status: int, payload: bytes, request_id: str,
                  headers: dict[str, str] | None = None) -> None:
        self._send_head(status, len(payload), request_id, headers)
        self.wfile.write(payload)
        self.wfile.flush()

    def _drip_headers(self, status: int, payload: bytes, request_id: str,
                      interval: float) -> None:
        head = (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nX-Request-Id: {request_id}\r\n"
                "X-Padding: " + "x" * 200 + "\r\n\r\n").encode()
        try:
            for byte in head:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(interval)
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def _abort(self) -> None:
        """Close the connection with no (more) reply: the reply is lost."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@contextmanager
def running(**kwargs: Any) -> Iterator[CatalogServer]:
    server = CatalogServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    """A port nothing listens on (for 'connection refused')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
