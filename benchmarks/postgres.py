"""Figure 5: batch and online settlement on PostgreSQL, against a psycopg floor.

A throwaway server (tests/support/dbservers.py) on loopback, switched to durable
settings (``fsync``, ``synchronous_commit``, ``full_page_writes`` on: the
test suite runs it without them). Every repetition settles into a freshly
created and seeded database, for ours and for the floor alike.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import dbservers


def available() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return dbservers.postgresql_available()


@contextmanager
def server(workdir: Path) -> Iterator[dbservers.DatabaseServer]:
    import psycopg

    base = Path(tempfile.mkdtemp(prefix="pg-", dir=workdir))
    found = dbservers.start_postgresql(base)
    try:
        admin = found.admin_url_for().replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {setting} = on")
            conn.execute("SELECT pg_reload_conf()")
        yield found
    finally:
        found.stop()


def fresh_database(found: dbservers.DatabaseServer, name: str) -> str:
    return dbservers.create_database(found, name)


def dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def describe(found: dbservers.DatabaseServer) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(dsn(found.url)) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "full_page_writes")
        }
    return {"version": version[0] if version else "?", **settings}
