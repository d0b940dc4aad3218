"""The standalone REST API: ``make_app(conf)`` (a WSGI application) and ``ovh-credit-api``.

The same controllers as inside CloudKitty, at ``/v1``, with version
documents at ``/`` (the versions) and ``/v1`` (this one). Around them,
outermost first: oslo.middleware's HTTPProxyToWSGI only when
``[oslo_middleware] enable_proxy_headers_parsing`` is on (behind a
TLS-terminating proxy: https links), oslo.middleware's RequestId
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
import os
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import FrameType
from typing import Any
from wsgiref import simple_server

import pecan
import webob
from oslo_config import cfg
from oslo_middleware import http_proxy_to_wsgi
from oslo_middleware import request_id as request_id_middleware

from ovh_credit_plugin import exceptions, request_ids
from ovh_credit_plugin.api import errors
from ovh_credit_plugin.api.controllers import CreditRootController, Runtime, accepts_json
from ovh_credit_plugin.conf import (
    DEFAULT_SQLITE_CONNECTION,
    check_config_files,
    config_paths,
    directory_files,
    error_message,
    list_opts,
    not_utf8,
    register_api_opts,
    register_opts,
    uses_fallback_ledger,
)
from ovh_credit_plugin.i18n import _

LOG = logging.getLogger(__name__)

PROG = "ovh-credit-api"

#: Seconds the requests in flight at SIGTERM or SIGINT may still take before the
#: server exits anyway (a second signal ends the wait at once).
SHUTDOWN_GRACE = 30.0

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

VERSION = "v1.0"


class _Root:
    """``/v1/...``: the resources (``/``, ``/v1`` and ``/v1/`` are :func:`_versions`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.v1 = CreditRootController(runtime)


#: The paths of the version documents: ``/`` lists the versions, ``/v1`` (and
#: ``/v1/``, the ``self`` link) is the one version, as keystone answers ``/v3``
#: and nova ``/v2.1``: keystoneauth's discovery fetches the endpoint it is given.
_ROOT_PATHS = frozenset({"", "/"})
_VERSION_PATHS = frozenset({"/v1", "/v1/"})


def _versions(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/``, ``/v1`` and ``/v1/``: the version documents, to GET and HEAD only.

    Not pecan's: it answered the document to any method (a DELETE was a 200)
    and logged an ERROR for every Accept it could not serve.
    """
    request = webob.Request(environ)
    if not accepts_json(request):
        error = errors.http_error(406, environ, request.method)
    elif request.method not in ("GET", "HEAD"):
        error = errors.http_error(405, environ, request.method)
        error.headers["Allow"] = "GET, HEAD"
    else:
        versioned = environ.get("PATH_INFO", "") in _VERSION_PATHS
        response = version_document(request, versioned=versioned)
        return response(environ, start_response)  # type: ignore[no-any-return]
    return errors.error_response(error, request)(environ, start_response)  # type: ignore[no-any-return]


def version_document(request: webob.Request, *, versioned: bool = False) -> webob.Response:
    """``{"versions": [...]}`` at ``/``; ``{"version": ...}``, the same entry, at ``/v1``.

    No ``Cache-Control``: unlike every other answer, it is the same for every
    caller (no token read), and its links follow the URL a cache keys on.
    """
    version = {
        "id": VERSION,
        "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{request.host_url}{request.script_name}/v1/"}],
    }
    document: dict[str, Any] = {"version": version} if versioned else {"versions": [version]}
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
        # Every line logged while this request is served carries its id (the log
        # format's [req-...]), the middleware's and this layer's as the controllers'.
        with request_ids.acting_for(environ.get(errors.REQUEST_ID_ENV)):
            return self._answer(environ, start_response)

    def _answer(self, environ: dict[str, Any], start_response: Callable[..., Any]
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
            LOG.exception("%s %s failed (request %s)", request.method,
                          errors.logged_path(environ), environ.get(errors.REQUEST_ID_ENV))
            response = errors.error_response(
                errors.ApiError("internal_error", errors.INTERNAL_ERROR_DETAIL), request)
        if response.status_code >= 400 and not _is_api_sig(response, environ):
            error = errors.http_error(response.status_code, environ, request.method)
            rewritten = errors.error_response(error, request)
            for name in ("WWW-Authenticate", "Retry-After", "Allow"):
                if name in response.headers:
                    rewritten.headers[name] = response.headers[name]
            response = rewritten
        return response(environ, start_response)  # type: ignore[no-any-return]


def _is_api_sig(response: webob.Response, environ: dict[str, Any]) -> bool:
    if response.content_type != "application/json":
        return False
    if environ.get("REQUEST_METHOD") == "HEAD":
        # No body to read: whether ours wrote it (with GET's headers).
        return bool(environ.get(errors.API_SIG_STATUS_ENV) == response.status_code)
    try:
        document = json.loads(response.body)
    except ValueError:
        return False
    return isinstance(document, dict) and isinstance(document.get("errors"), list)


class _Dispatch:
    """The version documents need no token (clients discover versions first, and
    keystoneauth asks without one); the rest goes through auth."""

    def __init__(self, public: WSGIApp, protected: WSGIApp) -> None:
        self.public = public
        self.protected = protected

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in _ROOT_PATHS or path in _VERSION_PATHS:
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
    app: WSGIApp = request_id_middleware.RequestId(ApiSigErrors(_Dispatch(_versions, protected)))
    if conf.oslo_middleware.enable_proxy_headers_parsing:
        # Outermost: the scheme, host and prefix a TLS-terminating proxy reports
        # (Forwarded, X-Forwarded-Proto/-Host/-Prefix) make every link, and a
        # prefix that is not UTF-8 is a 400 as a path would be. Off (the
        # default), it is not in the pipeline at all: no cost per request, and
        # a client cannot pick the scheme and host of the links.
        app = ProxyHeaders(app, conf)
    return CreditApi(app, runtime)


class ProxyHeaders:
    """oslo.middleware's HTTPProxyToWSGI, its parsing without its wrapping.

    Its own ``__call__`` (webob's wsgify, a response object, an argument
    spec read on every request) cost ~10% of a GET credits; its
    ``process_request``, the hook that rewrites the environ, is called here
    directly.
    """

    def __init__(self, app: WSGIApp, conf: cfg.ConfigOpts) -> None:
        self.app = app
        self.parser = http_proxy_to_wsgi.HTTPProxyToWSGI(None, conf)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        self.parser.process_request(webob.Request(environ))
        return self.app(environ, start_response)


# -- the server ----------------------------------------------------------------------


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    # Daemon threads, so that a stuck client cannot keep the process alive;
    # the requests in flight are counted, and waited for (wait_for_requests)
    # before the application is closed.
    daemon_threads = True
    block_on_close = False
    # Bursts of clients (50 at once in the tests) must not be refused at connect.
    request_queue_size = 128

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._in_flight = 0
        self._idle = threading.Condition()
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        # wsgiref sends the headers and the body in two writes: with Nagle's
        # algorithm the body would wait for the client's delayed ACK (40 ms).
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        # Counted here, in the serving thread, before the request's thread
        # starts: a shutdown right after cannot miss it.
        with self._idle:
            self._in_flight += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    @property
    def in_flight(self) -> int:
        with self._idle:
            return self._in_flight

    def wait_for_requests(self, timeout: float, give_up: threading.Event | None = None) -> int:
        """Wait until no request is in flight, ``timeout`` seconds at most, or until
        ``give_up`` is set; returns how many are still in flight."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight and not (give_up is not None and give_up.is_set()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Short waits: a signal handler may set give_up meanwhile.
                self._idle.wait(min(remaining, 0.1))
            return self._in_flight


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(simple_server.WSGIRequestHandler):
    # Seconds a connection may stay silent (no request line, a body that stopped
    # coming): a thread each, no limit on their number, and a shutdown waits for
    # them. Then the connection is closed.
    timeout = 60
    def log_message(self, format: str, *args: Any) -> None:
        if LOG.isEnabledFor(logging.DEBUG):  # not built for every request otherwise
            LOG.debug("%s - %s", self.address_string(),
                      errors.masked_vouchers(format % args))

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """What the server refuses before the application sees the request (a request
        line or header too long, too many headers, a malformed request line): an
        API-SIG document with a request id, as every other error, not http.server's
        HTML page. In English: the headers that would say otherwise are not read."""
        request_id = f"req-{uuid.uuid4()}"
        error = errors.http_error(code, {}, self.command or "")
        body = json.dumps(errors.error_document(error, request_id)).encode()
        self.log_error("code %d, message %s", code, message)
        if self.request_version == "HTTP/0.9":
            # A request line without a readable version: http.server would send
            # the body alone, which no client of this API can read.
            self.request_version = "HTTP/1.0"
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", errors.NO_STORE)
        self.send_header(errors.REQUEST_ID_HEADER, request_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True


def _address_family(host: str, port: int) -> socket.AddressFamily:
    """IPv4 when ``host`` has an IPv4 address (as before IPv6 was served), else IPv6."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        return socket.AF_INET  # bind says what is wrong with the name
    families = {info[0] for info in found}
    if socket.AF_INET in families or socket.AF_INET6 not in families:
        return socket.AF_INET
    return socket.AF_INET6


def _bind(host: str, port: int) -> _ThreadingServer:
    """The threaded server, listening, without its application yet (``set_app``)."""
    server_class = (_ThreadingServer6 if _address_family(host, port) == socket.AF_INET6
                    else _ThreadingServer)
    return server_class((host, port), _QuietHandler)


def make_server(app: WSGIApp, host: str = "127.0.0.1", port: int = 0
                ) -> _ThreadingServer:
    """A threaded WSGI server for ``app`` (port 0: any free port, see ``server_port``)."""
    server = _bind(host, port)
    server.set_app(app)
    return server


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def load_conf(argv: Sequence[str] | None = None) -> cfg.ConfigOpts:
    """The options of ``ovh-credit-api``: ``--config-file`` (repeatable), else the usual
    oslo.config locations for project ``ovh-credit-plugin``."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    register_api_opts(conf)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        conf(args, project="ovh-credit-plugin", prog="ovh-credit-api")
    except UnicodeDecodeError:
        raise not_utf8(_named_files(args)
                       or cfg.find_config_files(project="ovh-credit-plugin")) from None
    return conf


def _named_files(args: Sequence[str]) -> list[str]:
    """The files ``args`` name (``--config-file``, ``--config-dir``'s ``*.conf``)."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config-file", action="append", default=[])
    parser.add_argument("--config-dir", action="append", default=[])
    known, _rest = parser.parse_known_args(args)
    return [*known.config_file, *(path for directory in known.config_dir
                                  for path in directory_files(directory))]


def check_conf(conf: cfg.ConfigOpts) -> None:
    """Read now every option a request would read: a configuration error is the
    operator's, at start, not a 500 for every request (``cfg.Error`` or ``ConfigError``).

    The checks of ``ovh-credit`` (a typo in a section or an option name, which
    would leave the ledger's URL unset), then every option's value (``[oslo_middleware]
    enable_proxy_headers_parsing`` included), the purchase limits across
    options, and the catalog driver's name.
    """
    from importlib import metadata

    from ovh_credit_plugin.catalog import base as catalog_base
    from ovh_credit_plugin.service.settings import Settings

    check_config_files(config_paths(conf), api=True)
    for group, opts in list_opts():
        for opt in opts:
            conf[group.name][opt.dest]
    # oslo.middleware's (register_api_opts), read by make_app.
    conf.oslo_middleware.enable_proxy_headers_parsing  # noqa: B018
    if uses_fallback_ledger(conf):
        LOG.warning("no [cloud_credit] connection: the ledger is %s in the working "
                    "directory, %s", DEFAULT_SQLITE_CONNECTION.removeprefix("sqlite:///"),
                    os.getcwd())
    Settings.from_conf(conf)
    driver = conf.voucher_catalog.driver
    if driver not in {entry.name for entry in
                      metadata.entry_points(group=catalog_base.NAMESPACE)}:
        raise exceptions.ConfigError(_("[voucher_catalog] driver %(name)r is not installed")
                                     % {"name": driver})


#: oslo.log's default shape, as every OpenStack service's lines: time, process id (the
#: worker, under a pre-forking server), level, logger, the request id (``-`` outside a
#: request), message.
LOG_FORMAT = ("%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s [%(request_id)s] "
              "%(message)s")
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _RequestId(logging.Filter):
    """Gives each record the id of the request it was logged for (``-``: none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_ids.current() or "-"
        return True


def log_to_stderr() -> None:
    """The application's lines, INFO and above, on standard error in :data:`LOG_FORMAT`.

    Unless the root logger, or the plugin's own (``ovh_credit_plugin``), has a
    handler already: the operator's logging configuration (a ``wsgi.py`` that ran
    ``logging.config.fileConfig``), or the WSGI server's, is left as it is, and no
    line is written twice. Without any, Python writes only WARNING and above, bare
    (no time, level or logger), and the INFO lines are lost. A root level the
    operator set below INFO (DEBUG) is kept.
    """
    root = logging.getLogger()
    if root.handlers or logging.getLogger("ovh_credit_plugin").handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    handler.addFilter(_RequestId())
    root.addHandler(handler)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)


def load_app(argv: Sequence[str] | None = None) -> CreditApi:
    """For WSGI servers (uWSGI, gunicorn, mod_wsgi): ``application = load_app([...])``.

    A configuration every request would fail on is refused here (``check_conf``).
    The log goes to standard error, which the server writes in its log
    (:func:`log_to_stderr`: unless logging is configured already).
    """
    log_to_stderr()
    conf = load_conf(argv)
    check_conf(conf)
    return make_app(conf)


def _fail(message: str) -> int:
    sys.stderr.write(f"{PROG}: {message}\n")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``ovh-credit-api [--config-file PATH]``: serve the API until SIGINT or SIGTERM.

    A configuration error, or an address it cannot listen on: one line on
    stderr, exit status 1. On SIGTERM or SIGINT it stops accepting, lets the
    requests in flight finish (``SHUTDOWN_GRACE`` seconds at most; a second
    signal stops waiting), then exits 0.
    """
    log_to_stderr()  # first: check_conf's warnings are lines of the log too
    try:
        conf = load_conf(argv)
        check_conf(conf)
    except cfg.Error as error:
        return _fail(error_message(error))
    except exceptions.ConfigError as error:
        return _fail(str(error))
    try:  # before the application: its start-up lines would come before this error's
        server = _bind(conf.api.bind_host, conf.api.bind_port)
    except OSError as error:
        return _fail(_("cannot listen on %(address)s: %(reason)s")
                     % {"address": _shown(conf.api.bind_host, conf.api.bind_port),
                        "reason": error.strerror or error})
    try:
        app = make_app(conf)
    except BaseException:
        server.server_close()
        raise
    server.set_app(app)
    host, port = server.server_address[:2]
    LOG.info("ovh-credit-api listening on http://%s/ (auth_strategy %s)",
             _shown(str(host), int(port)), conf.api.auth_strategy)

    stopping = threading.Event()
    give_up = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            give_up.set()  # a second signal: stop waiting for the requests in flight
            return
        stopping.set()
        # shutdown() waits for serve_forever, which runs in this very thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
        # No new connection from here (refused, not left in the backlog).
        server.server_close()
        if server.in_flight:
            LOG.info("ovh-credit-api stopping: waiting for %d request(s) in flight",
                     server.in_flight)
        left = server.wait_for_requests(SHUTDOWN_GRACE, give_up)
        if left:
            LOG.warning("ovh-credit-api stopped with %d request(s) unfinished", left)
    finally:
        server.server_close()
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
