"""Processes to kill: the CLI (or a service call) in a ``forkserver`` child that reports its SQL.

The child is the real code (``ovh-credit`` ``main``, or a service method) in a
process of its own, started from the preloaded fork server in milliseconds.
Only in that child, SQLAlchemy events on every engine report each statement
on a pipe (its verb, whether it changes or locks rows, whether SQLAlchemy has
a transaction open) and, when asked, the child stops itself (``SIGSTOP``)
right after its N-th statement that changes or locks rows: a kill point
inside a transaction, chosen at random by the test among the statements a
clean run executes. Nothing of this is installed in the library or in any
other process.

Ends with ``os._exit`` like :func:`tests.support.workload.cli_child`: nothing
of the parent's (atexit, buffers) runs twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

#: Statements that change or lock rows: the kill points inside a transaction.
_CHANGING = ("INSERT", "UPDATE", "DELETE")


def changes_rows(statement: str) -> bool:
    text = statement.lstrip().upper()
    return text.startswith(_CHANGING) or (text.startswith("SELECT") and "FOR UPDATE" in text)


def _report_sql(channel: Any, stop_after: int | None) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen = 0

    @event.listens_for(Engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        nonlocal seen
        changing = changes_rows(statement)
        words = statement.split(None, 1)
        channel.send(("sql", words[0].upper() if words else "", changing,
                      conn.in_transaction()))
        if changing:
            seen += 1
            if seen == stop_after:
                channel.send(("stopped", seen))
                os.kill(os.getpid(), signal.SIGSTOP)  # the parent looks, then kills


def run(job: tuple[Any, ...], log: str, channel: Any, stop_after: int | None) -> None:
    """Run ``job`` (``("cli", argv)`` or ``("expire", config, batch_size)``), then exit.

    Exit status: the CLI's, or 0 when the service call returned.
    """
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 1
    try:
        _report_sql(channel, stop_after)
        channel.send(("started", os.getpid()))
        if job[0] == "cli":
            from ovh_credit_plugin.cli.app import main as cli_main

            code = cli_main(job[1])
        elif job[0] == "expire":
            from tests.support.workload import service_from_config

            service = service_from_config(Path(job[1]))
            service.expire(batch_size=job[2])
            service.close()
            code = 0
        else:  # pragma: no cover - a typo in a test
            raise AssertionError(f"unknown job {job[0]}")
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(OSError):
            channel.send(("exit", code))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
