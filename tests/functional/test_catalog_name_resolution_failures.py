"""How a bounded name resolution fails, against a real catalog: as urllib3's own would.

- ``getaddrinfo``'s system error (EAI_SYSTEM: an OSError of errno, such as
  EMFILE, not a gaierror) is a connection that failed, told as urllib3 tells
  it for an address, not a bare ``OSError`` (which urllib3 takes for a
  connection aborted after the request was sent).
- A lookup whose thread ended by a ``BaseException`` (SystemExit, a killed
  green thread) is finished for its waiters: the name is not left joined to a
  lookup that never ends (every later connection to it timed out, for the
  life of the process), and the pool does not lose a thread slot for good.
- An error ``copy.copy`` cannot rebuild is raised as it is, not as a TypeError.
- Imported before eventlet's monkey patching, the resolver uses green locks:
  its OS lock, taken by a green thread, froze the whole process at the first
  lookup. Imported after it, a hung green lookup is given up on in time while
  the other green threads run.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.http import resolver
from tests.functional.test_catalog_name_resolution import (  # noqa: F401 (fixtures)
    CODE,
    TOKEN,
    VOUCHERS,
    Resolver,
    backend,
    driver_for,
    failure,
    installed,
)
from tests.support.catalog_server import CatalogServer, running

ROOT = Path(__file__).resolve().parents[2]


class FailingResolver(Resolver):
    """The tests' resolver, whose chosen names raise a chosen error (once, or always)."""

    def __init__(self, real: Any) -> None:
        super().__init__(real)
        self.raising: dict[str, tuple[BaseException, bool]] = {}

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in self.raising:
            error, once = self.raising[host]
            if once:
                del self.raising[host]
            self.calls.append((str(host), "raised"))
            raise error
        return super().getaddrinfo(host, port, *args, **kwargs)


@pytest.fixture
def server() -> Iterator[CatalogServer]:
    with running(vouchers=VOUCHERS, token=TOKEN) as catalog:
        yield catalog


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> Iterator[FailingResolver]:
    with installed(FailingResolver(socket.getaddrinfo), monkeypatch) as fake:
        yield fake


def test_a_system_error_of_getaddrinfo_is_a_failed_connection_as_for_an_address(
    names: FailingResolver, server: CatalogServer
) -> None:
    # The same OSError from getaddrinfo for an address (urllib3's own
    # create_connection) and for a name (the resolver's thread): the same
    # error, in the same words.
    told = {}
    for host in ("127.0.0.2", "emfile.test"):
        names.raising[host] = (OSError(errno.EMFILE, "Too many open files"), False)
        error, _ = failure(driver_for(f"http://{host}:{server.port}", retries=1))
        told[host] = (type(error), str(error).replace(f"{host}:{server.port}", "HOST"))
    assert told["127.0.0.2"] == told["emfile.test"] == (
        base.CatalogUnavailable,
        "voucher catalog at http://HOST unavailable: cannot connect ([Errno 24] Too many "
        "open files)",
    )


# The resolver's thread ends with the SystemExit, as a thread does: pytest reports it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_lookup_ended_by_a_base_exception_leaves_neither_the_name_nor_the_pool_stuck(
    names: FailingResolver, server: CatalogServer
) -> None:
    # Each name's first lookup ends its thread with SystemExit. Its caller
    # hears a failed connection at once and the retry asks again, in a
    # thread of the pool, for every one of more names than the pool has
    # threads: no name stays joined to an unfinished lookup, no thread slot
    # is lost.
    for n in range(resolver.MAX_THREADS + 2):
        host = f"interrupted-{n}.test"
        names.raising[host] = (SystemExit(3), True)
        catalog = driver_for(f"http://{host}:{server.port}", connect_timeout=2.0, timeout=3.0)
        started = time.monotonic()
        try:
            assert catalog.get(CODE).code == CODE
        finally:
            catalog.close()
        # One failed connection and a retry, not a connect timeout's wait.
        assert time.monotonic() - started < 1.5
        assert [thread for asked, thread in names.calls if asked == host] == [
            "raised", resolver.THREAD_NAME]
    stats = resolver.stats()
    assert stats["lookups"] == stats["queued"] == 0
    assert stats["threads"] <= resolver.MAX_THREADS


def test_an_error_copy_cannot_rebuild_is_raised_as_it_is(names: FailingResolver) -> None:
    class Odd(Exception):
        def __init__(self, host: str, why: str) -> None:
            super().__init__(f"{host}: {why}")

    names.raising["odd.test"] = (Odd("odd.test", "refused by the resolver"), False)
    with pytest.raises(Odd, match=r"odd\.test: refused by the resolver"):
        resolver.getaddrinfo("odd.test", 80, socket.AF_UNSPEC, socket.SOCK_STREAM, timeout=2.0)


# -- under eventlet's monkey patching -------------------------------------------------------

EVENTLET_SCRIPT = """
import socket, sys, time
if sys.argv[1] == "before":  # the plugin imported first, patched after
    from ovh_credit_plugin.catalog.http import resolver
import eventlet
eventlet.monkey_patch()
import socket
from ovh_credit_plugin.catalog.http import resolver

answer = socket.getaddrinfo("127.0.0.1", 80, 0, socket.SOCK_STREAM)

def green_resolver(host, port, *args):
    if host == "hung.test":
        eventlet.sleep(30)  # a dead DNS server, to eventlet's greendns
    return answer

socket.getaddrinfo = green_resolver
ticks = [0]

def tick():
    while True:
        ticks[0] += 1
        eventlet.sleep(0.01)

eventlet.spawn(tick)
for host in ("catalog.test", "hung.test", "catalog.test"):
    ticks[0] = 0
    started = time.monotonic()
    try:
        resolver.getaddrinfo(host, 80, 0, socket.SOCK_STREAM, timeout=0.5)
        outcome = "resolved"
    except resolver.ResolutionTimeout:
        outcome = "timeout"
    print(host, outcome, time.monotonic() - started, ticks[0], flush=True)
"""


@pytest.mark.parametrize("imported", ["before", "after"])
def test_under_eventlet_a_hung_lookup_is_given_up_on_while_green_threads_run(
    imported: str, tmp_path: Path
) -> None:
    pytest.importorskip("eventlet")
    script = tmp_path / "green.py"
    script.write_text(textwrap.dedent(EVENTLET_SCRIPT))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    environment.pop("EVENTLET_NO_GREENDNS", None)
    try:
        done = subprocess.run([sys.executable, str(script), imported], check=False, cwd=ROOT,
                              env=environment, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"the process froze at the first lookup: {expired.stdout!r}")
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [(host, outcome) for host, outcome, _, _ in lines] == [
        ("catalog.test", "resolved"), ("hung.test", "timeout"), ("catalog.test", "resolved")]
    (_, _, first, _), (_, _, hung, ticks), (_, _, last, _) = lines
    assert float(first) < 0.3 and float(last) < 0.3
    # Given up on in time, the other green threads running meanwhile (a tick
    # every 10 ms: ~50 in 0.5 s; none while the hub is blocked).
    assert 0.45 <= float(hung) < 1.5, hung
    assert int(ticks) >= 10, ticks
