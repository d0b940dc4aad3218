"""The standalone REST API: ``make_app(conf)`` (a WSGI application) and ``ovh-credit-api``.

The same controllers as inside CloudKitty, at ``/v1``, with a version
document at ``/``. Around them, outermost first: oslo.middleware's RequestId
(``X-Openstack-Request-Id`` on every answer), API-SIG error bodies for the
errors the layers below write in their own format, then keystonemiddleware's
auth_token (``[api] auth_strategy = keystone``, options in
``[keystone_authtoken]``) or nothing (``noauth``: the caller is whoever the
``X-Project-Id`` and ``X-Roles`` headers say). The body size limit (``[api]
max_request_body_size``) is the controllers' own, as inside CloudKitty: they
read every body, through one function that stops at the limit.

``ovh-credit-api`` serves it with the standard library's threaded WSGI
server: for development and small installations. In production run
``make_app`` under uWSGI, gunicorn or mod_wsgi (see docs/api.md).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from types import FrameType
from typing import Any
from wsgiref import simple_server

import pecan
import webob
from oslo_config import cfg
from oslo_middleware import request_id as request_id_middleware

from ovh_credit_plugin.api import errors
from ovh_credit_plugin.api.controllers import CreditRootController, Runtime
from ovh_credit_plugin.conf import register_api_opts, register_opts

LOG = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

VERSION = "v1.0"


class _Root:
    """``/``: the version document; ``/v1``: the resources."""

    def __init__(self, runtime: Runtime) -> None:
        self.v1 = CreditRootController(runtime)

    @pecan.expose(content_type="application/json")
    def index(self) -> webob.Response:
        return version_document(pecan.request)


def version_document(request: webob.Request) -> webob.Response:
    document = {"versions": [{
        "id": VERSION,
        "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{request.host_url}{request.script_name}/v1/"}],
    }]}
    return webob.Response(status=200, content_type="application/json", charset="UTF-8",
                          body=json.dumps(document).encode())


class ApiSigErrors:
    """Every error answer as an API-SIG document, whoever wrote it.

    The controllers write their own; pecan's routing, the body size limit
    and keystonemiddleware (401) write theirs in other formats, rewritten
    here. An exception that escapes is a 500, logged with the request id.
    A path or query string that is not UTF-8 is a 400 before anything else
    reads it (webob cannot decode it; pecan logs a traceback for it).
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        request = webob.Request(environ)
        unreadable = errors.undecodable(environ)
        if unreadable is not None:
            response = errors.error_response(errors.ApiError("invalid_request", unreadable),
                                             request)
            return response(environ, start_response)  # type: ignore[no-any-return]
        try:
            response = request.get_response(self.app)
        except Exception:
            LOG.exception("%s %s failed", request.method, errors.request_path(environ))
            response = errors.error_response(
                errors.ApiError("internal_error", errors.INTERNAL_ERROR_DETAIL), request)
        if response.status_code >= 400 and not _is_api_sig(response):
            error = errors.http_error(response.status_code, environ, request.method)
            rewritten = errors.error_response(error, request)
            for name in ("WWW-Authenticate", "Retry-After", "Allow"):
                if name in response.headers:
                    rewritten.headers[name] = response.headers[name]
            response = rewritten
        return response(environ, start_response)  # type: ignore[no-any-return]


def _is_api_sig(response: webob.Response) -> bool:
    if response.content_type != "application/json":
        return False
    try:
        document = json.loads(response.body)
    except ValueError:
        return False
    return isinstance(document, dict) and isinstance(document.get("errors"), list)


class _Dispatch:
    """``/`` needs no token (clients discover versions first); the rest goes through auth."""

    def __init__(self, public: WSGIApp, protected: WSGIApp) -> None:
        self.public = public
        self.protected = protected

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in ("", "/"):
            return self.public(environ, start_response)
        return self.protected(environ, start_response)


class CreditApi:
    """The WSGI application, with the runtime its controllers share (``close()`` at exit)."""

    def __init__(self, app: WSGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        return self.app(environ, start_response)

    def close(self) -> None:
        self.runtime.close()


def make_app(conf: cfg.ConfigOpts, *, runtime: Runtime | None = None) -> CreditApi:
    """The WSGI application of ``ovh-credit-api``; ``conf`` is parsed, options are registered here.

    Builds no service and opens no database: the ledger is opened by the
    first request that needs it.
    """
    register_opts(conf)
    register_api_opts(conf)
    if runtime is None:
        from ovh_credit_plugin.service import CreditService

        runtime = Runtime(conf, lambda: CreditService.from_conf(conf),
                          max_body=conf.api.max_request_body_size)
    pecan_app = pecan.Pecan(_Root(runtime), hooks=[], force_canonical=False,
                            guess_content_type_from_ext=False)
    protected: WSGIApp = pecan_app
    if conf.api.auth_strategy == "keystone":
        from keystonemiddleware import auth_token

        protected = auth_token.AuthProtocol(protected, {"oslo_config_config": conf})
    else:
        LOG.warning("[api] auth_strategy = noauth: callers are whoever the X-Project-Id and "
                    "X-Roles headers say; for development only, never expose this server")
    # No oslo.middleware size limit in front: it enforced the controllers' own
    # limit a second time, for ~8% of a GET credits (docs/performance.md).
    app = ApiSigErrors(_Dispatch(pecan_app, protected))
    return CreditApi(request_id_middleware.RequestId(app), runtime)


# -- the server ----------------------------------------------------------------------


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    # Bursts of clients (50 at once in the tests) must not be refused at connect.
    request_queue_size = 128

    def get_request(self) -> tuple[socket.socket, Any]:
        # wsgiref sends the headers and the body in two writes: with Nagle's
        # algorithm the body would wait for the client's delayed ACK (40 ms).
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s - %s", self.address_string(), format % args)


def make_server(app: WSGIApp, host: str = "127.0.0.1", port: int = 0
                ) -> simple_server.WSGIServer:
    """A threaded WSGI server for ``app`` (port 0: any free port, see ``server_port``)."""
    return simple_server.make_server(host, port, app, server_class=_ThreadingServer,
                                     handler_class=_QuietHandler)


def load_conf(argv: Sequence[str] | None = None) -> cfg.ConfigOpts:
    """The options of ``ovh-credit-api``: ``--config-file`` (repeatable), else the usual
    oslo.config locations for project ``ovh-credit-plugin``."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    register_api_opts(conf)
    conf(list(sys.argv[1:] if argv is None else argv), project="ovh-credit-plugin",
         prog="ovh-credit-api")
    return conf


def load_app(argv: Sequence[str] | None = None) -> CreditApi:
    """For WSGI servers (uWSGI, gunicorn, mod_wsgi): ``application = load_app([...])``."""
    return make_app(load_conf(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """``ovh-credit-api [--config-file PATH]``: serve the API until SIGINT or SIGTERM."""
    conf = load_conf(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    app = make_app(conf)
    server = make_server(app, conf.api.bind_host, conf.api.bind_port)
    host, port = server.server_address[:2]
    LOG.info("ovh-credit-api listening on http://%s:%s/ (auth_strategy %s)", host, port,
             conf.api.auth_strategy)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, which runs in this very thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
