"""A process forked with the ledger's engine opens its own connections, never its parent's.

uWSGI loads an application in its master and forks the workers (no ``--lazy-apps``),
and it runs no ``os.register_at_fork`` hook in them. Today nothing of ours opens a
connection at load (tests/functional/test_api_wsgi_servers.py,
tests/integration/test_cloudkitty_api_uwsgi.py); if anything ever did, every worker
would share that socket, and one would read another's answers (a worker reading a
row count of another's settlement). The engine refuses, at checkout, a pooled
connection another process opened (oslo.db's process guard, SQLAlchemy's "Using
Connection Pools with Multiprocessing"): the child opens its own, and leaves the
parent's session alone.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.ledger.database import create_engine
from tests.support.ledgers import Ledger

pytestmark = pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)

SESSION_ID = {"postgresql": "SELECT pg_backend_pid()", "mariadb": "SELECT CONNECTION_ID()"}


def session_id(engine: sa.Engine, backend: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(SESSION_ID[backend])).scalar_one())


def in_a_child(engine: sa.Engine, backend: str) -> int:
    """The server's session id of a query the engine runs in a forked child (as a uWSGI
    worker forked after the application was loaded)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.write(write, str(session_id(engine, backend)).encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        answer = os.read(read, 64)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert answer, "the child could not query the ledger"
    return int(answer)


def test_a_forked_child_opens_its_own_connection_and_the_parents_goes_on(
        ledger: Ledger, backend: str) -> None:
    engine = create_engine(ledger.url)
    try:
        parents = session_id(engine, backend)  # now pooled, then the fork
        assert in_a_child(engine, backend) != parents
        # The child did not close the parent's session (a Terminate on its socket).
        assert session_id(engine, backend) == parents
    finally:
        engine.dispose()
