"""The HTTP transport, built the way requests builds one: a Session, an HTTPAdapter, a Retry.

Each part is a small subclass that makes it keep the operation's deadline
(``deadline``): the Retry never sleeps past it, and the connections tell
the operation holding them, so that its watchdog can shut them down. The
rest is requests' and urllib3's own.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
import socket
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import connection as urllib3_connection
from urllib3 import connectionpool
from urllib3 import exceptions as urllib3_exceptions
from urllib3.util import Retry
from urllib3.util.connection import allowed_gai_family

from ovh_credit_plugin.catalog.http import deadline, resolver

# Statuses worth another try: throttling and the server errors a proxy or a
# restarting catalog produce. Anything else is an answer.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# The retries the running call may still make: the driver retries a
# broken-off answer itself, by calling again, and that call must not get a
# fresh urllib3 budget ((retries + 1)² attempts on a catalog in trouble).
_RETRIES_LEFT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "ovh_credit_catalog_retries_left", default=None
)


@contextlib.contextmanager
def retries_left(left: int) -> Iterator[None]:
    """Within the block, urllib3 retries at most ``left`` times (what the call has left)."""
    token = _RETRIES_LEFT.set(max(0, left))
    try:
        yield
    finally:
        _RETRIES_LEFT.reset(token)


class CatalogRetry(Retry):
    """urllib3's Retry, bounded by the operation's deadline.

    Backoff is exponential with jitter (half fixed, half random: workers
    that failed together do not retry together), ``Retry-After`` is capped
    at ``max_retry_after``, and no sleep outlasts the deadline: when the
    wait the catalog asks for does not fit, retrying stops at once.
    """

    # 413 is in urllib3's default set; our requests are tiny, never "too large".
    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})
    max_retry_after: float = 30.0

    def new(self, **kw: Any) -> CatalogRetry:
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        return retry

    def wanted_retry_after(self, response: Any) -> float | None:
        """The catalog's Retry-After in seconds, capped; None when absent or unreadable."""
        header = response.headers.get("Retry-After") if response is not None else None
        if header is None:
            return None
        try:
            seconds = self.parse_retry_after(header)
        except urllib3_exceptions.InvalidHeader:
            return None
        return min(seconds, self.max_retry_after)

    def get_retry_after(self, response: Any) -> float | None:
        seconds = self.wanted_retry_after(response)
        remaining = deadline.remaining()
        if seconds is None or remaining is None:
            return seconds
        return max(0.0, min(seconds, remaining))

    def get_backoff_time(self) -> float:
        failures = 0
        for event in reversed(self.history):
            if event.redirect_location is not None:
                break
            failures += 1
        if failures == 0 or self.backoff_factor <= 0:
            return 0.0
        ceiling = float(min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1)))
        wait = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
        remaining = deadline.remaining()
        return wait if remaining is None else max(0.0, min(wait, remaining))

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> CatalogRetry:
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        left = _RETRIES_LEFT.get()
        if left is not None and len(retry.history) > left:
            # The call's budget is spent (partly by retries of broken-off answers).
            reason = error or urllib3_exceptions.ResponseError("too many retries")
            raise urllib3_exceptions.MaxRetryError(_pool, url or "", reason) from reason
        operation = deadline.current()
        if operation is not None:
            wanted = retry.wanted_retry_after(response) if response is not None else None
            if operation.out_of_time() or (wanted is not None and wanted >= operation.remaining()):
                # Another attempt cannot finish in time: stop now, with the
                # last answer (or error) rather than after a useless sleep.
                reason = error or urllib3_exceptions.ResponseError("deadline reached")
                raise urllib3_exceptions.MaxRetryError(_pool, url or "", reason) from reason
        return retry


# -- connections the watchdog can reach ------------------------------------------------


class _Watched(urllib3_connection.HTTPConnection):
    """Registers the connection with the watchdog before it connects or sends.

    And resolves the host's name within the connect timeout (``resolver``):
    the watchdog cannot reach a thread stuck in ``getaddrinfo``.
    """

    # The operation holding the connection, until the pool gets it back.
    operation: deadline.Operation | None = None

    def connect(self) -> None:
        _watch(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        """urllib3's ``_new_conn``, the name resolved in a bounded time.

        A name not resolved within the connect timeout (capped by the
        deadline, as it always is) is a ``ConnectTimeoutError``, as if the
        connect had timed out: retried as one, told as one. Only the socket
        is made here: TLS (SNI, the certificate's host name) still uses the
        host's name (``self.host``), never the address found.
        """
        host = self._dns_host.strip("[]")
        if not resolver.needs_lookup(host):
            # An IP address or localhost: no DNS to wait for, urllib3's own way.
            return super()._new_conn()
        seconds = _connect_seconds(self.timeout)
        if seconds is None:  # no time limit at all (not a catalog call)
            return super()._new_conn()
        try:
            host.encode("idna")
        except UnicodeError:
            raise urllib3_exceptions.LocationParseError(
                f"'{host}', label empty or too long"
            ) from None
        try:
            addresses = resolver.getaddrinfo(
                host, self.port, allowed_gai_family(), socket.SOCK_STREAM, timeout=seconds
            )
        except socket.gaierror as error:
            raise urllib3_exceptions.NameResolutionError(self.host, self, error) from error
        except TimeoutError as error:  # resolver.ResolutionTimeout: no answer in time
            raise urllib3_exceptions.ConnectTimeoutError(
                self,
                f"Connection to {self.host} timed out. (connect timeout={self.timeout}, "
                "resolving the name)",
            ) from error
        except OSError as error:
            # getaddrinfo's EAI_SYSTEM is an OSError of errno (EMFILE: too many
            # open files), not a gaierror: a connection that failed, as urllib3
            # tells it, not a bare OSError (a "Connection aborted." read error).
            raise urllib3_exceptions.NewConnectionError(
                self, f"Failed to establish a new connection: {error}"
            ) from error
        # What resolving took is not given back: the connect gets the
        # connect timeout still, but never beyond the deadline.
        seconds = _connect_seconds(self.timeout) or seconds
        try:
            sock = _connect_any(addresses, seconds, self.source_address, self.socket_options)
        except TimeoutError as error:
            raise urllib3_exceptions.ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from error
        except OSError as error:
            raise urllib3_exceptions.NewConnectionError(
                self, f"Failed to establish a new connection: {error}"
            ) from error
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


def _connect_seconds(timeout: Any) -> float | None:
    """The connect timeout capped by the running operation's deadline; None: no limit."""
    seconds = float(timeout) if isinstance(timeout, int | float) else None
    remaining = deadline.remaining()
    if remaining is not None:
        seconds = remaining if seconds is None else min(seconds, remaining)
    return None if seconds is None else max(0.001, seconds)


def _connect_any(
    addresses: list[tuple[Any, ...]],
    timeout: float,
    source_address: tuple[str, int] | None,
    socket_options: Any,
) -> socket.socket:
    """A socket connected to the first of ``addresses`` that accepts: urllib3's loop."""
    error: OSError | None = None
    for family, kind, proto, _name, address in addresses:
        sock = None
        try:
            sock = socket.socket(family, kind, proto)
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(address)
            return sock
        except OSError as caught:
            error = caught
            if sock is not None:
                sock.close()
    if error is not None:
        try:
            raise error
        finally:
            error = None  # no reference cycle through the traceback
    raise OSError("getaddrinfo returns an empty list")


class WatchedHTTPConnection(_Watched):
    """An HTTP connection the running operation's watchdog can shut down."""


class WatchedHTTPSConnection(_Watched, urllib3_connection.HTTPSConnection):
    """An HTTPS connection the running operation's watchdog can shut down."""


def _watch(connection: _Watched) -> None:
    operation = deadline.current()
    if operation is not None:
        operation.watch(connection)


class _ReleasingPool(connectionpool.HTTPConnectionPool):
    """Tells the holding operation when a connection comes back to the pool."""

    def _put_conn(self, conn: Any) -> None:
        # Every way back goes through here (an answer read to its end, one
        # drained before a retry, an error that dropped it). The connection
        # names its holder: no reliance on which thread or context runs this.
        operation = getattr(conn, "operation", None)
        if operation is not None:
            operation.release(conn)
        super()._put_conn(conn)


class WatchedHTTPConnectionPool(_ReleasingPool):
    """urllib3's HTTP pool, of watched connections given back to their operation."""

    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(_ReleasingPool, connectionpool.HTTPSConnectionPool):
    """urllib3's HTTPS pool, of watched connections given back to their operation."""

    ConnectionCls = WatchedHTTPSConnection


_STANDARD_POOLS = {"http": connectionpool.HTTPConnectionPool,
                   "https": connectionpool.HTTPSConnectionPool}


def _use_watched_pools(manager: Any) -> None:
    # Only managers that use urllib3's own pools (direct, HTTP(S) proxies);
    # a SOCKS manager keeps its pools and relies on the timeouts alone.
    if getattr(manager, "pool_classes_by_scheme", None) == _STANDARD_POOLS:
        # Our own dict: the class attribute is shared by every PoolManager.
        manager.pool_classes_by_scheme = {"http": WatchedHTTPConnectionPool,
                                          "https": WatchedHTTPSConnectionPool}


class CatalogAdapter(HTTPAdapter):
    """requests' adapter, whose pool managers (direct and proxied) use watched pools."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _use_watched_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _use_watched_pools(manager)
        return manager


# -- the session ----------------------------------------------------------------------------


def new_session(
    *,
    retries: int,
    backoff_factor: float,
    backoff_max: float,
    max_retry_after: float,
    headers: Mapping[str, str],
) -> requests.Session:
    """A session whose every request is retried by :class:`CatalogRetry`.

    429, 500, 502, 503, 504, connection errors and read errors are retried;
    the redemption POST too (its idempotency key makes a replay return the
    same redemption). The last answer is returned, not raised: the driver
    maps it to an error, with its status.
    """
    retry = CatalogRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        # TLS failures and the like: another try gives the same answer.
        other=0,
        allowed_methods=frozenset({"GET", "POST"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        # The last answer is mapped to an error by us, with its status.
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    retry.max_retry_after = max_retry_after

    session = requests.Session()
    adapter = CatalogAdapter(max_retries=retry, pool_connections=1, pool_maxsize=4)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(headers)
    return session


def read_environment_once(
    session: requests.Session,
    *,
    url: str,
    verify: bool | str,
    cert: str | tuple[str, str] | None,
) -> tuple[dict[str, str], bool | str]:
    """The proxies and the CA bundle for ``url``, read now; the session stops reading them.

    requests reads the proxy variables (HTTPS_PROXY, NO_PROXY...) and the
    CA bundle variables again on every request, and ~/.netrc for
    credentials: ~0.1 ms a call, a tenth of a loopback round trip. They are
    read once here instead, like the rest of the configuration; netrc is
    not used at all (the catalog's credential is its auth token). The
    caller passes the returned proxies and verify with every request.
    """
    environment = session.merge_environment_settings(url, {}, None, verify, cert)
    session.trust_env = False
    proxies = dict(environment["proxies"])
    return proxies, (environment["verify"] if environment["verify"] is not None else True)
