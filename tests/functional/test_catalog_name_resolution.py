"""The catalog's name resolution is bounded like its connections, against a real catalog.

``getaddrinfo`` blocks in C: a slow or dead DNS server would hold an
activation for the resolver's own timeouts (30 s or more) whatever the
deadline. A real slow resolver needs changes to the whole machine, so the
tests replace the system's resolver (``socket.getaddrinfo``, the part users
do not control) by one that hangs, or answers late, for chosen names, and
maps the other ``*.test`` names to the loopback catalog server.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
import trustme

from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.http import HttpVoucherCatalog, resolver
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.ledger.database import Database, create_engine
from ovh_credit_plugin.service import CreditService
from tests.functional.test_catalog_http_server import (  # noqa: F401 (fixtures)
    CODE,
    TOKEN,
    VOUCHERS,
    backend,
    conf_for,
)
from tests.support.catalog_server import CatalogServer, running
from tests.support.ledgers import Ledger

# How long a hung lookup hangs before the (fake) resolver gives up, as a dead
# DNS server's does (glibc: 5 s per try, times attempts and nameservers). Far
# above every deadline below, so that an unbounded lookup fails the tests.
HANG = 8.0


class Resolver:
    """``socket.getaddrinfo`` for the tests' names; the others go to the real one."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self._real = real
        self.hung: set[str] = set()
        self.slow: dict[str, float] = {}
        self.release = threading.Event()
        # (host, name of the thread that asked), for every call.
        self.calls: list[tuple[str, str]] = []

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((str(host), threading.current_thread().name))
        hangs = host in self.hung or re.fullmatch(r"hung-\d+\.test", str(host))
        if hangs and not self.release.wait(HANG):
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host == "unknown.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if host in self.slow:
            time.sleep(self.slow[host])
        if isinstance(host, str) and host.endswith(".test"):
            host = "127.0.0.1"
        return self._real(host, port, *args, **kwargs)

    def threads_of(self, host: str) -> set[str]:
        return {thread for asked, thread in self.calls if asked == host}


R = TypeVar("R", bound=Resolver)


@contextmanager
def installed(fake: R, monkeypatch: pytest.MonkeyPatch) -> Iterator[R]:
    """``fake`` as the system's resolver for the test."""
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    try:
        yield fake
    finally:
        # The lookups left behind end now, not in HANG seconds.
        fake.release.set()
        stop = time.monotonic() + 5
        while resolver.stats()["lookups"] and time.monotonic() < stop:
            time.sleep(0.01)


@pytest.fixture
def server() -> Iterator[CatalogServer]:
    with running(vouchers=VOUCHERS, token=TOKEN) as catalog:
        yield catalog


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    fake = Resolver(socket.getaddrinfo)
    fake.hung.add("hung.test")
    with installed(fake, monkeypatch):
        yield fake


def driver_for(endpoint: str, **options: Any) -> HttpVoucherCatalog:
    return HttpVoucherCatalog(conf=conf_for(endpoint, **options), backoff_factor=0.01)


def failure(catalog: HttpVoucherCatalog) -> tuple[base.CatalogError, float]:
    started = time.monotonic()
    try:
        with pytest.raises(base.CatalogError) as caught:
            catalog.get(CODE)
    finally:
        catalog.close()
    return caught.value, time.monotonic() - started


def resolver_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == resolver.THREAD_NAME)


@contextmanager
def unanswering_port() -> Iterator[int]:
    """A port whose connections time out: its listener's backlog is full.

    Linux drops the SYNs of a listener whose accept queue is full: a real
    connect timeout, on loopback.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    filler = socket.create_connection(("127.0.0.1", port))
    try:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                pass
            else:  # pragma: no cover - a kernel that does not drop them
                pytest.skip("this system answers connections beyond the backlog")
        yield port
    finally:
        filler.close()
        listener.close()


def retry_warnings(caplog: pytest.LogCaptureFixture, host: str) -> list[str]:
    """urllib3's warnings about retried connections, host and object ids blanked."""
    found = []
    for record in caplog.records:
        if record.name.startswith("urllib3") and "Retrying" in record.getMessage():
            line = record.getMessage().replace(host, "HOST")
            found.append(re.sub(r"0x[0-9a-f]+", "0x?", line))
    return found


# -- a hung resolution ends at the deadline, as a connect timeout does --------------------


def test_a_hung_resolution_ends_at_the_deadline(names: Resolver, server: CatalogServer) -> None:
    # connect_timeout (3.05) is capped by the 1 s deadline: one attempt,
    # given up when the deadline passes, not when the resolver does.
    catalog = driver_for(f"http://hung.test:{server.port}", timeout=1.0)
    error, elapsed = failure(catalog)
    assert type(error) is base.CatalogUnavailable
    assert str(error) == (f"voucher catalog at http://hung.test:{server.port} unavailable: no "
                          "complete answer within the 1 s deadline (last error: connection "
                          "timed out)")
    # The deadline plus slack for a loaded machine; HANG (8 s) without the bound.
    assert 0.9 <= elapsed < 2.5, elapsed
    assert server.calls() == []
    assert names.threads_of("hung.test")


def test_a_hung_resolution_is_told_and_retried_like_a_connect_timeout(
    names: Resolver, caplog: pytest.LogCaptureFixture
) -> None:
    # The same driver settings against a port whose connects time out (a
    # real connect timeout), and against a name that never resolves: the
    # same error class and message, the same retries, the same warnings.
    caplog.set_level("WARNING", logger="urllib3")
    options = {"timeout": 5.0, "connect_timeout": 0.3, "retries": 2}
    seen = {}
    with unanswering_port() as port:
        for kind, host in (("connect", "127.0.0.1"), ("resolve", "hung.test")):
            caplog.clear()
            error, elapsed = failure(driver_for(f"http://{host}:{port}", **options))
            where = f"{host}:{port}"
            seen[kind] = (type(error), str(error).replace(where, "HOST"), elapsed,
                          retry_warnings(caplog, host))
    (connect_type, connect_message, connect_elapsed, connect_warnings) = seen["connect"]
    (resolve_type, resolve_message, resolve_elapsed, resolve_warnings) = seen["resolve"]
    assert connect_type is resolve_type is base.CatalogUnavailable
    assert connect_message == resolve_message == (
        "voucher catalog at http://HOST unavailable: connection timed out")
    # Three attempts of 0.3 s each, well within the 5 s deadline; HANG each
    # (and another error: the resolver's own) without the bound.
    assert 0.85 <= connect_elapsed < 2.5, connect_elapsed
    assert 0.85 <= resolve_elapsed < 2.5, resolve_elapsed
    # urllib3 warns of each retry in the same words, the cause said in the
    # parenthesis.
    assert len(connect_warnings) == len(resolve_warnings) == 2
    for connect_line, resolve_line in zip(connect_warnings, resolve_warnings, strict=True):
        assert "ConnectTimeoutError" in connect_line
        assert resolve_line == connect_line.replace(
            "(connect timeout=0.3)", "(connect timeout=0.3, resolving the name)")
    # The three attempts waited on one lookup, not three.
    assert len([host for host, _ in names.calls if host == "hung.test"]) == 1


def test_a_resolution_slower_than_the_connect_timeout_is_answered_to_the_retry(
    names: Resolver, server: CatalogServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The name answers after 0.5 s; each attempt waits 0.3 s for it. The
    # first attempt gives up (a connect timeout, retried); the retry joins
    # the same lookup, still running, and gets its answer.
    caplog.set_level("WARNING")
    names.slow["slow.test"] = 0.5
    catalog = driver_for(f"http://slow.test:{server.port}", connect_timeout=0.3)
    try:
        assert catalog.get(CODE).code == CODE
    finally:
        catalog.close()
    assert len(names.threads_of("slow.test")) == 1
    assert len([host for host, _ in names.calls if host == "slow.test"]) == 1
    warnings = retry_warnings(caplog, "slow.test")
    assert len(warnings) == 1
    assert "(connect timeout=0.3, resolving the name)" in warnings[0]
    assert "2 attempt(s)" in caplog.text

    # A name the resolver says does not exist is told and retried as before:
    # a DNS failure, not a timeout.
    error, elapsed = failure(driver_for(f"http://unknown.test:{server.port}", retries=2))
    assert type(error) is base.CatalogUnavailable
    assert str(error) == (f"voucher catalog at http://unknown.test:{server.port} unavailable: "
                          "cannot connect ([Errno -2] Name or service not known)")
    assert elapsed < 1.5, elapsed
    assert len([host for host, _ in names.calls if host == "unknown.test"]) == 3


def test_an_activation_waiting_on_a_hung_resolution_ends_at_its_deadline(
    names: Resolver, server: CatalogServer, ledger: Ledger
) -> None:
    # What a customer waits for behind the REST API: the whole activation.
    service = CreditService(database=Database(create_engine(ledger.url)),
                            catalog=driver_for(f"http://hung.test:{server.port}", timeout=1.0,
                                               connect_timeout=0.4))
    try:
        started = time.monotonic()
        with pytest.raises(base.CatalogUnavailable, match="within the 1 s deadline"):
            service.activate_voucher("p1", CODE)
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 3, elapsed

        def counts(conn: sa.Connection) -> list[int]:
            failed = schema.voucher_attempts.c.succeeded.is_(False)
            queries = [sa.select(sa.func.count()).select_from(schema.credits),
                       sa.select(sa.func.count()).select_from(schema.voucher_activations),
                       sa.select(sa.func.count()).select_from(schema.voucher_attempts)
                       .where(failed)]
            return [int(conn.execute(query).scalar_one()) for query in queries]

        # An outage: nothing written, no failed try counted against the project.
        assert service.database.read(counts) == [0, 0, 0]
    finally:
        service.close()
    assert server.calls() == []


# -- threads left behind stay few ---------------------------------------------------------------


def _fail_concurrently(endpoints: list[str], *, calls: int, **options: Any) -> list[float]:
    """Each endpoint's ``get`` from a thread of its own, ``calls`` times; the elapsed times."""
    elapsed: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(endpoint: str) -> None:
        catalog = driver_for(endpoint, **options)
        try:
            for _ in range(calls):
                started = time.monotonic()
                try:
                    catalog.get(CODE)
                except base.CatalogUnavailable:
                    pass
                except BaseException as error:  # pragma: no cover - told below
                    with lock:
                        errors.append(error)
                with lock:
                    elapsed.append(time.monotonic() - started)
        finally:
            catalog.close()

    workers = [threading.Thread(target=work, args=(endpoint,)) for endpoint in endpoints]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert errors == []
    return elapsed


@contextmanager
def most_resolver_threads() -> Iterator[list[int]]:
    """The most resolver threads seen alive at once while the block runs."""
    most = [resolver_threads()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            most[0] = max(most[0], resolver_threads())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield most
    finally:
        done.set()
        sampler.join()


def test_one_hung_name_under_load_holds_one_thread(names: Resolver, server: CatalogServer) -> None:
    # Eight host threads activating at once, three times each, every
    # attempt (retries included) on a name that never answers: they all wait
    # on one lookup, in one thread, and each call still ends at its deadline.
    before = threading.active_count()
    with most_resolver_threads() as most:
        elapsed = _fail_concurrently([f"http://hung.test:{server.port}"] * 8, calls=3,
                                     timeout=0.6, connect_timeout=0.2)
        assert resolver.stats()["lookups"] == 1
    assert len(elapsed) == 24
    assert max(elapsed) < 2.0, sorted(elapsed)
    assert len([host for host, _ in names.calls if host == "hung.test"]) == 1
    assert most[0] <= resolver.MAX_THREADS
    assert threading.active_count() <= before + resolver.MAX_THREADS


def test_many_hung_names_never_hold_more_than_the_pool(
    names: Resolver, server: CatalogServer
) -> None:
    # Twelve names that never answer, at once: at most MAX_THREADS threads
    # wait in getaddrinfo; the other lookups queue, their callers give up at
    # their deadline all the same, and a lookup nobody waits for any more
    # leaves the queue.
    endpoints = [f"http://hung-{n}.test:{server.port}" for n in range(12)]
    before = threading.active_count()
    with most_resolver_threads() as most:
        elapsed = _fail_concurrently(endpoints, calls=2, timeout=0.6, connect_timeout=0.2)
        stats = resolver.stats()
    assert len(elapsed) == 24
    assert max(elapsed) < 2.0, sorted(elapsed)
    assert most[0] <= resolver.MAX_THREADS
    assert threading.active_count() <= before + resolver.MAX_THREADS
    assert stats["threads"] <= resolver.MAX_THREADS
    assert stats["queued"] == 0
    # Only the lookups that got a thread are left (until the resolver answers).
    assert stats["lookups"] <= resolver.MAX_THREADS
    asked = {host for host, _ in names.calls if host.startswith("hung-")}
    assert len(asked) <= resolver.MAX_THREADS


# -- what a bounded resolution must not change ------------------------------------------------


def tls_server(ca: trustme.CA, *identities: str, sni: list[str]) -> Any:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities).configure_cert(context)
    context.sni_callback = lambda _sock, name, _context: sni.append(name)
    return running(vouchers=VOUCHERS, token=TOKEN, ssl_context=context)


def test_https_by_name_sends_and_checks_the_name_not_the_address(
    names: Resolver, ca: trustme.CA, ca_file: str
) -> None:
    sni: list[str] = []
    # A certificate for the name only: the address it resolves to is not in it.
    with tls_server(ca, "catalog.test", sni=sni) as server:
        catalog = driver_for(f"https://catalog.test:{server.port}", ca_file=ca_file)
        try:
            assert catalog.get(CODE).code == CODE
        finally:
            catalog.close()
        # A name that hangs over HTTPS is bounded too.
        error, elapsed = failure(driver_for(f"https://hung.test:{server.port}",
                                            ca_file=ca_file, timeout=1.0))
        assert type(error) is base.CatalogUnavailable
        assert "within the 1 s deadline (last error: connection timed out)" in str(error)
        assert elapsed < 2.5, elapsed
    assert sni == ["catalog.test"]  # SNI: the name
    assert names.threads_of("catalog.test") == {resolver.THREAD_NAME}

    # A certificate for the address the name resolves to, not for the name:
    # refused, so the check is made against the name.
    sni.clear()
    with tls_server(ca, "127.0.0.1", sni=sni) as server:
        error, _ = failure(driver_for(f"https://catalog.test:{server.port}", ca_file=ca_file))
    assert type(error) is base.CatalogTLSError
    assert "not valid for the host of [voucher_catalog] endpoint" in str(error)
    assert sni == ["catalog.test"]


def test_addresses_and_localhost_are_resolved_where_they_are_asked(
    names: Resolver, server: CatalogServer
) -> None:
    # No DNS to wait for: no hand-off to another thread (the catalog
    # benchmark's loopback address costs nothing more). A name goes to the
    # resolver's threads.
    here = threading.current_thread().name
    for host in ("127.0.0.1", "localhost", "catalog.test"):
        catalog = driver_for(f"http://{host}:{server.port}")
        try:
            assert catalog.get(CODE).code == CODE
        finally:
            catalog.close()
    assert names.threads_of("127.0.0.1") == {here}
    assert names.threads_of("localhost") == {here}
    assert names.threads_of("catalog.test") == {resolver.THREAD_NAME}
