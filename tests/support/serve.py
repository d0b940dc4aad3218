"""Serve one WSGI application on a loopback port, in a process of its own.

    python -m tests.support.serve PACKAGE.MODULE:FACTORY

``FACTORY()`` returns the application (it reads its configuration from the
environment the parent sets). The first line on stdout is ``PORT <n>`` (the
port was chosen by the system: no collision between parallel runs). The server
stops when its stdin closes: the parent closing the pipe, or dying, ends it,
so no server outlives its test run.
"""

from __future__ import annotations

import importlib
import socketserver
import sys
import threading
from wsgiref import simple_server


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    # A burst of parallel clients (the CLI, several personas) is not refused.
    request_queue_size = 64


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: list[str]) -> int:
    module_name, _, factory_name = argv[0].partition(":")
    # Keystone and CloudKitty parse sys.argv with oslo.config: the factory's
    # name is not theirs (their configuration comes from the environment).
    sys.argv[1:] = []
    app = getattr(importlib.import_module(module_name), factory_name)()
    server = simple_server.make_server("127.0.0.1", 0, app, server_class=_Server,
                                       handler_class=_QuietHandler)

    def stop_when_parent_goes() -> None:
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_when_parent_goes, daemon=True).start()
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
