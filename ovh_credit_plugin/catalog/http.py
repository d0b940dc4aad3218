"""The ``http`` voucher catalog: the remote catalog over HTTP(S).

The wire contract is ``docs/voucher-catalog.openapi.yaml``; the models
below follow it and a test keeps them in step. What this client guarantees:

* one ``requests.Session`` with an ``HTTPAdapter`` and a urllib3 ``Retry``:
  429, 500, 502, 503, 504, connection errors and read errors are retried
  with jittered exponential backoff, ``Retry-After`` is honoured up to
  ``max_retry_after``. The redemption POST is retried too: its idempotency
  key makes a replay return the same redemption;
* a **total deadline** per operation (``timeout``), retries, sleeps and
  body included. Timeouts of each attempt shrink to what is left, the body
  is read chunk by chunk with the deadline checked in between, and a
  watchdog shuts the socket down when the deadline passes, so even an
  answer whose headers drip one byte at a time cannot outlive it;
* every answer is validated before it is returned: not JSON, a missing
  field, a bad amount or currency, an answer about another code or
  project: :class:`~base.CatalogProtocolError`;
* codes are checked offline before any call and masked in every log line
  (ours and urllib3's); the auth token is never logged nor kept in errors,
  not even when the catalog echoes it back (it is replaced by ``***``).
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import json
import logging
import os
import random
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import requests
from oslo_config import cfg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from requests.adapters import HTTPAdapter
from urllib3 import connection as urllib3_connection
from urllib3 import connectionpool
from urllib3 import exceptions as urllib3_exceptions
from urllib3.util import Retry, Timeout

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.catalog import base

LOG = logging.getLogger(__name__)

API_PREFIX = "/v1/vouchers"
REQUEST_ID_HEADER = "X-Request-Id"
AUTH_HEADER = "X-Auth-Token"
# Statuses worth another try: throttling and the server errors a proxy or a
# restarting catalog produce. Anything else is an answer.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A catalog answer is a few hundred bytes; a megabyte is a broken server.
MAX_BODY_BYTES = 1 << 20
_CHUNK = 16 * 1024

# The wire patterns; docs/voucher-catalog.openapi.yaml carries the same ones.
CODE_PATTERN = r"^[A-Z0-9-]{4,64}$"
AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
_IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)

try:
    _VERSION = metadata.version("ovh-credit-plugin")
except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    _VERSION = "unknown"


# -- wire models (docs/voucher-catalog.openapi.yaml) ----------------------------------


class _Wire(BaseModel):
    # Fields the contract does not name are ignored (a catalog may grow);
    # every field it names must be there, with its JSON type: no number for
    # an amount, no string for a count.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


WireCode = Annotated[str, Field(pattern=CODE_PATTERN)]
WireAmount = Annotated[str, Field(pattern=AMOUNT_PATTERN)]
WireCurrency = Annotated[str, Field(pattern=CURRENCY_PATTERN)]


class VoucherDocument(_Wire):
    """``Voucher`` of the contract: the answer to ``GET /v1/vouchers/{code}``."""

    code: WireCode
    amount: WireAmount
    currency: WireCurrency
    status: models.VoucherStatus
    valid_from: AwareDatetime | None
    valid_until: AwareDatetime | None
    validity_days: Annotated[int, Field(ge=1, le=36600)] | None
    products: list[Annotated[str, Field(min_length=1, max_length=255)]]
    max_redemptions: Annotated[int, Field(ge=1)] | None
    redemptions: Annotated[int, Field(ge=0)]
    description: Annotated[str, Field(max_length=1000)]


class RedemptionDocument(_Wire):
    """``Redemption`` of the contract: the answer to ``POST .../redemptions``."""

    id: Annotated[str, Field(min_length=1, max_length=255)]
    code: WireCode
    project_id: Annotated[str, Field(min_length=1, max_length=255)]
    amount: WireAmount
    currency: WireCurrency
    valid_from: AwareDatetime | None
    valid_until: AwareDatetime | None
    validity_days: Annotated[int, Field(ge=1, le=36600)] | None
    products: list[Annotated[str, Field(min_length=1, max_length=255)]]
    description: Annotated[str, Field(max_length=1000)]
    redeemed_at: AwareDatetime


class RedemptionRequest(_Wire):
    """``RedemptionRequest`` of the contract: the body we POST."""

    project_id: Annotated[str, Field(min_length=1, max_length=255)]
    idempotency_key: Annotated[str, Field(pattern=IDEMPOTENCY_KEY_PATTERN)]


class ErrorDocument(BaseModel):
    """``Error`` of the contract: what a 4xx/5xx may carry (all optional)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message: str | None = None
    request_id: str | None = None


# -- the deadline of one operation ------------------------------------------------------


class _Operation:
    """One catalog operation (retries included) and its deadline.

    The watchdog shuts down the sockets the operation holds once the deadline
    passes: a read timeout bounds each ``recv``, not an answer that keeps
    sending one byte just before every timeout. Only the sockets it *holds*:
    a connection it gave back to the pool may be another thread's by then,
    in the middle of a call well within that call's own budget.
    """

    def __init__(self, *, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.expired = False
        self._finished = False
        self._lock = threading.Lock()
        self._connections: list[_Watched] = []
        _WATCHDOG.watch(self)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def out_of_time(self) -> bool:
        return self.expired or self.remaining() <= 0

    def watch(self, connection: _Watched) -> None:
        with self._lock:
            if self.expired:
                _shutdown(connection)
            elif connection not in self._connections:
                self._connections.append(connection)
                connection.operation = self

    def release(self, connection: _Watched) -> None:
        """``connection`` goes back to the pool: no longer this operation's to shut down."""
        # Under the lock, so that _expire either shuts it down before it is
        # back in the pool or never sees it.
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)
            if connection.operation is self:
                connection.operation = None

    def _expire(self) -> None:
        with self._lock:
            if self._finished:  # its connections went back to the pool, for others
                return
            self.expired = True
            for connection in self._connections:
                _shutdown(connection)

    def finish(self) -> None:
        with self._lock:
            self._finished = True
            for connection in self._connections:
                if connection.operation is self:
                    connection.operation = None
            self._connections.clear()


class _Watchdog:
    """One daemon thread that expires operations when their deadlines pass.

    A ``threading.Timer`` per operation cost a thread start per activation
    (~0.2 ms, a tenth of two loopback round trips, more on a loaded host).
    Operations are kept in a heap by deadline; finished ones are not taken
    out (their ``_expire`` does nothing) but dropped when their deadline
    comes, so the heap holds at most one ``timeout`` worth of operations.
    The thread is woken only when a new deadline comes before the one it
    sleeps until: with one configured timeout, deadlines arrive in order,
    so in the steady state registering an operation wakes nobody.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Operation]] = []
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def reset_after_fork(self) -> None:
        # A forked child has no watchdog thread, and the parent's lock may
        # have been held at the fork; the parent's operations are not the
        # child's.
        self._condition = threading.Condition(threading.Lock())
        self._heap = []
        self._thread = None

    def watch(self, operation: _Operation) -> None:
        with self._condition:
            first = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (operation.deadline, next(self._sequence), operation))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ovh-credit-catalog-deadlines", daemon=True
                )
                self._thread.start()
            elif first is None or operation.deadline < first:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            due: list[_Operation] = []
            with self._condition:
                while not due:
                    now = time.monotonic()
                    while self._heap and self._heap[0][0] <= now:
                        due.append(heapq.heappop(self._heap)[2])
                    if not due:
                        wait = self._heap[0][0] - now if self._heap else None
                        self._condition.wait(wait)
            # Outside the heap's lock: an operation's lock is never taken under it.
            for operation in due:
                operation._expire()


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.reset_after_fork)


def _shutdown(connection: urllib3_connection.HTTPConnection) -> None:
    sock = connection.sock
    if sock is None:
        return
    # socket.socket's own shutdown, also on an SSLSocket: the OS-level
    # shutdown wakes the reading thread; SSLSocket.shutdown would unwrap
    # the TLS object under its feet.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


# The operation running in this thread (urllib3 calls back into the Retry,
# the Timeout and the connection in the caller's thread).
_OPERATION: contextvars.ContextVar[_Operation | None] = contextvars.ContextVar(
    "ovh_credit_catalog_operation", default=None
)


def _remaining() -> float | None:
    operation = _OPERATION.get()
    return None if operation is None else operation.remaining()


class _DeadlineTimeout(Timeout):
    """Connect and read timeouts of one attempt, never beyond the deadline."""

    def __init__(self, *, connect: float, read: float, operation: _Operation) -> None:
        super().__init__(connect=connect, read=read)
        self._operation = operation

    def clone(self) -> _DeadlineTimeout:
        # urllib3 clones the timeout for every attempt: that is where the
        # attempt's share of the deadline is fixed.
        return _DeadlineTimeout(
            connect=float(self._connect),  # type: ignore[arg-type]
            read=float(self._read),  # type: ignore[arg-type]
            operation=self._operation,
        )

    @property
    def connect_timeout(self) -> float:
        return max(0.001, min(float(self._connect), self._operation.remaining()))  # type: ignore[arg-type]

    @property
    def read_timeout(self) -> float:
        # 0 makes urllib3 give up the attempt at once (ReadTimeoutError).
        return max(0.0, min(float(self._read), self._operation.remaining()))  # type: ignore[arg-type]


class _CatalogRetry(Retry):
    """urllib3's Retry, bounded by the operation's deadline.

    Backoff is exponential with jitter (half fixed, half random: workers
    that failed together do not retry together), ``Retry-After`` is capped
    at ``max_retry_after``, and no sleep outlasts the deadline: when the
    wait the catalog asks for does not fit, retrying stops at once.
    """

    # 413 is in urllib3's default set; our requests are tiny, never "too large".
    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})
    max_retry_after: float = 30.0

    def new(self, **kw: Any) -> _CatalogRetry:
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
        remaining = _remaining()
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
        remaining = _remaining()
        return wait if remaining is None else max(0.0, min(wait, remaining))

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _CatalogRetry:
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        operation = _OPERATION.get()
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
    """Registers the connection with the watchdog before it connects or sends."""

    # The operation holding the connection, until the pool gets it back.
    operation: _Operation | None = None

    def connect(self) -> None:
        _watch(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3_connection.HTTPSConnection):
    pass


def _watch(connection: _Watched) -> None:
    operation = _OPERATION.get()
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


class _HTTPPool(_ReleasingPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(_ReleasingPool, connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_STANDARD_POOLS = {"http": connectionpool.HTTPConnectionPool,
                   "https": connectionpool.HTTPSConnectionPool}


def _use_watched_pools(manager: Any) -> None:
    # Only managers that use urllib3's own pools (direct, HTTP(S) proxies);
    # a SOCKS manager keeps its pools and relies on the timeouts alone.
    if getattr(manager, "pool_classes_by_scheme", None) == _STANDARD_POOLS:
        # Our own dict: the class attribute is shared by every PoolManager.
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class _CatalogAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _use_watched_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _use_watched_pools(manager)
        return manager


# -- codes and tokens out of logs and errors -----------------------------------------------

_CODE_IN_PATH = re.compile(r"(/v1/vouchers/)([A-Za-z0-9%._~-]+)")

HIDDEN = "***"


class _Secrets:
    """The auth tokens of the drivers built in this process, to hide.

    A catalog may echo the token it refused ("unknown X-Auth-Token ..."):
    whatever we take from an answer into a message, a log line or an
    error's ``response`` has them replaced by ``***``. Process-wide like the
    log filter, which hides them too; kept after a driver closes (still a
    secret).
    """

    # Shorter ones would replace bits of ordinary words, and are no secret.
    MIN_LENGTH = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Replaced whole, never mutated: read without the lock. Longest
        # first, so that a token containing another is hidden whole.
        self._known: tuple[str, ...] = ()

    def add(self, secret: str) -> None:
        if len(secret) >= self.MIN_LENGTH:
            with self._lock:
                if secret not in self._known:
                    self._known = tuple(sorted((*self._known, secret), key=len, reverse=True))

    def hide(self, text: str) -> str:
        for secret in self._known:
            text = text.replace(secret, HIDDEN)
        return text


_SECRETS = _Secrets()


def _mask_paths(text: str) -> str:
    return _CODE_IN_PATH.sub(lambda m: m.group(1) + base.mask_code(m.group(2)), text)


class _MaskVoucherCodes(logging.Filter):
    """Masks voucher codes in the URLs urllib3 logs (its retry warnings name them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        masked = _mask_paths(_SECRETS.hide(message))
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_FILTER = _MaskVoucherCodes()


def _install_log_filter() -> None:
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


# -- the driver -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    request_id: str | None
    attempts: int
    retry_after: str | None


class _BodyError(Exception):
    """The answer broke off mid-body: urllib3 does not retry that, we do."""


class HttpVoucherCatalog(base.VoucherCatalog):
    """The remote voucher catalog (``[voucher_catalog] driver = http``)."""

    def __init__(
        self,
        *,
        conf: cfg.ConfigOpts,
        backoff_factor: float = 0.25,
        backoff_max: float = 5.0,
        **_: Any,
    ) -> None:
        group = conf.voucher_catalog
        self._base_url, self._where = _check_endpoint(group.endpoint)
        self._timeout = float(group.timeout)
        self._connect_timeout = min(float(group.connect_timeout), self._timeout)
        # Half the deadline per attempt: a stalled attempt leaves time for a retry.
        self._read_timeout = self._timeout / 2
        self._retries = int(group.retries)
        self._backoff_factor = backoff_factor
        self._backoff_max = backoff_max
        self._verify = _verify_option(group)
        self._cert = _cert_option(group)

        retry = _CatalogRetry(
            total=self._retries,
            connect=self._retries,
            read=self._retries,
            status=self._retries,
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
        retry.max_retry_after = float(group.max_retry_after)

        session = requests.Session()
        adapter = _CatalogAdapter(max_retries=retry, pool_connections=1, pool_maxsize=4)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({
            "User-Agent": f"ovh-credit-plugin/{_VERSION}",
            "Accept": "application/json",
            # A catalog answer is small; compressed bodies only complicate the cap.
            "Accept-Encoding": "identity",
        })
        if group.auth_token:
            session.headers[AUTH_HEADER] = group.auth_token
            _SECRETS.add(group.auth_token)
        # requests reads the proxy variables (HTTPS_PROXY, NO_PROXY...) and
        # the CA bundle variables again on every request, and ~/.netrc for
        # credentials: ~0.1 ms a call, a tenth of a loopback round trip. They
        # are read once here instead, like the rest of the configuration;
        # netrc is not used at all (the catalog's credential is auth_token).
        environment = session.merge_environment_settings(
            self._base_url, {}, None, self._verify, self._cert
        )
        session.trust_env = False
        self._proxies = dict(environment["proxies"])
        self._verify = environment["verify"] if environment["verify"] is not None else True
        self._session = session
        _install_log_filter()

    def __repr__(self) -> str:  # no token, ever
        return f"<HttpVoucherCatalog {self._where}>"

    def close(self) -> None:
        self._session.close()

    @contextlib.contextmanager
    def deadline(self) -> Iterator[None]:
        if _OPERATION.get() is not None:  # already inside one: it keeps its budget
            yield
            return
        operation = _Operation(seconds=self._timeout)
        token = _OPERATION.set(operation)
        try:
            yield
        finally:
            _OPERATION.reset(token)
            operation.finish()

    # -- the contract ---------------------------------------------------------------

    def get(self, code: str) -> models.Voucher:
        code = base.normalize_code(code)
        answer = self._exchange("GET", f"{API_PREFIX}/{code}", code=code)
        if answer.status != 200:
            raise self._refusal(answer, code)
        document = _parse(VoucherDocument, answer, code=code, what="voucher")
        if document.code != code:
            raise base.CatalogProtocolError(
                f"the voucher catalog answered about another code than {base.mask_code(code)}",
                status=answer.status, request_id=answer.request_id,
            )
        return _convert(models.Voucher, document, answer, code=code)

    def redeem(
        self,
        code: str,
        *,
        project_id: str,
        idempotency_key: str,
        at: Any = None,
    ) -> models.Redemption:
        code = base.normalize_code(code)
        if not isinstance(project_id, str) or not models.ID_RE.fullmatch(project_id):
            raise exceptions.InvalidInput(f"invalid project id {project_id!r}")
        if not _IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
            raise exceptions.InvalidInput("invalid idempotency key")
        # ``at`` is ignored: a remote catalog keeps its own clock.
        payload = RedemptionRequest(project_id=project_id, idempotency_key=idempotency_key)
        answer = self._exchange(
            "POST", f"{API_PREFIX}/{code}/redemptions", code=code, payload=payload.model_dump()
        )
        if answer.status not in (200, 201):
            raise self._refusal(answer, code)
        document = _parse(RedemptionDocument, answer, code=code, what="redemption")
        masked = base.mask_code(code)
        if document.code != code:
            raise base.CatalogProtocolError(
                f"the voucher catalog redeemed another code than {masked}",
                status=answer.status, request_id=answer.request_id,
            )
        if document.project_id != project_id:
            raise base.CatalogProtocolError(
                f"the voucher catalog redeemed {masked} for another project than {project_id}",
                status=answer.status, request_id=answer.request_id,
            )
        if Decimal(document.amount) <= 0:
            raise base.CatalogProtocolError(
                f"the voucher catalog redeemed {masked} for a zero amount",
                status=answer.status, request_id=answer.request_id,
            )
        if answer.status == 200:
            LOG.info("voucher %s: the catalog replayed redemption %s (same idempotency key)",
                     masked, document.id)
        return _convert(models.Redemption, document, answer, code=code)

    # -- HTTP ---------------------------------------------------------------------------

    def _exchange(
        self, method: str, path: str, *, code: str, payload: dict[str, Any] | None = None
    ) -> _Answer:
        """One operation: urllib3's retries inside, ours for broken bodies, one deadline.

        Inside :meth:`deadline` the operation spends what is left of that
        budget; otherwise it gets a whole ``timeout`` of its own.
        """
        outer = _OPERATION.get()
        operation = outer or _Operation(seconds=self._timeout)
        token = _OPERATION.set(operation)
        masked_path = path.replace(code, base.mask_code(code))
        started = time.monotonic()
        failures = 0
        try:
            while True:
                try:
                    answer = self._attempt(method, path, payload, operation, code=code)
                except _BodyError as error:
                    failures += 1
                    if failures > self._retries or operation.out_of_time():
                        raise self._unavailable(error.__cause__ or error, operation,
                                                code=code) from None
                    wait = self._backoff_factor * 2 ** (failures - 1)
                    wait = min(self._backoff_max, wait) * random.uniform(0.5, 1)  # noqa: S311
                    LOG.warning("voucher catalog %s %s: answer broken off (%s); retrying",
                                method, masked_path, _describe(error.__cause__ or error, code))
                    time.sleep(max(0.0, min(wait, operation.remaining())))
                    continue
                LOG.debug("voucher catalog %s %s -> %d in %.3fs, %d attempt(s)%s",
                          method, masked_path, answer.status, time.monotonic() - started,
                          answer.attempts,
                          f", request id {answer.request_id}" if answer.request_id else "")
                return answer
        finally:
            _OPERATION.reset(token)
            if outer is None:
                operation.finish()

    def _attempt(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        operation: _Operation,
        *,
        code: str,
    ) -> _Answer:
        if operation.out_of_time():
            raise self._unavailable(None, operation, code=code)
        timeout = _DeadlineTimeout(
            connect=self._connect_timeout, read=self._read_timeout, operation=operation
        )
        try:
            response = self._session.request(
                method,
                self._base_url + path,
                json=payload,
                proxies=self._proxies,
                # requests hands a urllib3 Timeout through untouched (its stubs
                # do not say so): that is how each attempt gets its share.
                timeout=timeout,  # type: ignore[arg-type]
                verify=self._verify,
                cert=self._cert,
                stream=True,
                # A redirect would carry X-Auth-Token to wherever it points.
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as error:
            raise self._tls_error(error, code=code) from None
        except (requests.RequestException, urllib3_exceptions.HTTPError) as error:
            raise self._unavailable(error, operation, code=code) from None
        try:
            body = self._read_body(response, operation, code=code)
        finally:
            response.close()
        history = getattr(getattr(response.raw, "retries", None), "history", ())
        return _Answer(
            status=response.status_code,
            body=body,
            request_id=_header(response, REQUEST_ID_HEADER),
            attempts=len(history) + 1,
            retry_after=_header(response, "Retry-After"),
        )

    def _read_body(
        self, response: requests.Response, operation: _Operation, *, code: str
    ) -> bytes:
        raw = response.raw
        body = bytearray()
        while True:
            if operation.out_of_time():
                raise self._unavailable(None, operation, code=code)
            # Each read waits at most what is left of the deadline.
            sock = getattr(getattr(raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(max(0.001, min(self._read_timeout, operation.remaining())))
            try:
                chunk = raw.read1(_CHUNK, decode_content=True)
            except (urllib3_exceptions.HTTPError, OSError, ValueError) as error:
                if operation.out_of_time():
                    raise self._unavailable(error, operation, code=code) from None
                raise _BodyError(str(error)) from error
            if not chunk:
                break
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise base.CatalogProtocolError(
                    f"the voucher catalog's answer is larger than {MAX_BODY_BYTES} bytes",
                    status=response.status_code,
                    request_id=_header(response, REQUEST_ID_HEADER),
                )
        # An end of body caused by the watchdog is no end of body.
        if operation.out_of_time():
            raise self._unavailable(None, operation, code=code)
        return bytes(body)

    # -- errors -------------------------------------------------------------------------

    def _unavailable(
        self, error: BaseException | None, operation: _Operation, *, code: str
    ) -> base.CatalogUnavailable:
        if operation.out_of_time():
            detail = f"no complete answer within the {operation.seconds:g} s deadline"
            if error is not None:
                detail += f" (last error: {_describe(error, code)})"
        else:
            detail = _describe(error, code) if error is not None else "no answer"
        return base.CatalogUnavailable(f"voucher catalog at {self._where} unavailable: {detail}")

    def _tls_error(self, error: BaseException, *, code: str) -> base.CatalogTLSError:
        detail = _describe(error, code)
        hint = ("set [voucher_catalog] ca_file to the CA that signed the catalog's certificate"
                if "CERTIFICATE_VERIFY_FAILED" in detail or "certificate verify failed" in detail
                else "check [voucher_catalog] TLS options (ca_file, cert_file, key_file)")
        return base.CatalogTLSError(
            f"TLS with the voucher catalog at {self._where} failed: {detail}; {hint}"
        )

    def _refusal(self, answer: _Answer, code: str) -> base.CatalogError:
        """The error for a non-success answer: one class per meaning."""
        masked = base.mask_code(code)
        status, request_id = answer.status, answer.request_id
        detail = _error_detail(answer.body, code)
        kwargs: dict[str, Any] = {"status": status, "request_id": request_id,
                                  "response": _decoded(answer.body)}
        if status in (401, 403):
            return base.CatalogAuthError(
                f"the voucher catalog at {self._where} refused our credentials "
                f"(HTTP {status}{detail}): check [voucher_catalog] auth_token",
                **kwargs,
            )
        if status == 404:
            return base.VoucherNotFound(f"unknown voucher {masked}", **kwargs)
        if status == 409:
            return base.VoucherAlreadyRedeemed(f"voucher {masked} is used up", **kwargs)
        if status == 410:
            return base.VoucherUnavailable(
                f"voucher {masked} is revoked or expired{detail}", **kwargs
            )
        if status == 429:
            wait = f", it asks to wait {answer.retry_after} s" if answer.retry_after else ""
            return base.CatalogThrottled(
                f"the voucher catalog at {self._where} is throttling us (HTTP 429 after "
                f"{answer.attempts} attempt(s){wait})",
                **kwargs,
            )
        if status >= 500:
            return base.CatalogUnavailable(
                f"voucher catalog at {self._where} unavailable: HTTP {status} after "
                f"{answer.attempts} attempt(s){detail}",
                **kwargs,
            )
        return base.CatalogProtocolError(
            f"unexpected HTTP {status} from the voucher catalog at {self._where}{detail}",
            **kwargs,
        )


# -- helpers ------------------------------------------------------------------------------

_Model = TypeVar("_Model", models.Voucher, models.Redemption)
_Document = TypeVar("_Document", VoucherDocument, RedemptionDocument)


def _check_endpoint(endpoint: str | None) -> tuple[str, str]:
    """The base URL, and how messages name it (no credentials, no path)."""
    if not endpoint:
        raise exceptions.ConfigError("[voucher_catalog] endpoint is required by the http driver")
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise exceptions.ConfigError(
            f"[voucher_catalog] endpoint must be an http(s) URL, not {endpoint!r}"
        )
    if parts.username or parts.password:
        # They would end up in logs; the token option is the secret one.
        raise exceptions.ConfigError(
            "[voucher_catalog] endpoint must not carry credentials: use auth_token"
        )
    if parts.query or parts.fragment:
        raise exceptions.ConfigError(
            "[voucher_catalog] endpoint must not have a query or fragment"
        )
    try:
        port = parts.port
    except ValueError:
        raise exceptions.ConfigError(
            f"[voucher_catalog] endpoint has an invalid port: {endpoint!r}"
        ) from None
    where = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return endpoint.rstrip("/"), where


def _verify_option(group: Any) -> bool | str:
    if not group.verify:
        LOG.warning("[voucher_catalog] verify = false: the catalog's TLS certificate "
                    "is not checked; anyone on the path can impersonate it")
        return False
    if group.ca_file:
        if not Path(group.ca_file).is_file():
            raise exceptions.ConfigError(
                f"[voucher_catalog] ca_file {group.ca_file!r} is not a readable file"
            )
        return str(group.ca_file)
    return True


def _cert_option(group: Any) -> str | tuple[str, str] | None:
    cert_file, key_file = group.cert_file, group.key_file
    if key_file and not cert_file:
        raise exceptions.ConfigError("[voucher_catalog] key_file needs cert_file")
    for name, value in (("cert_file", cert_file), ("key_file", key_file)):
        if value and not Path(value).is_file():
            raise exceptions.ConfigError(
                f"[voucher_catalog] {name} {value!r} is not a readable file"
            )
    if cert_file and key_file:
        return (str(cert_file), str(key_file))
    return str(cert_file) if cert_file else None


def _header(response: requests.Response, name: str) -> str | None:
    value = response.headers.get(name)
    if value is None:
        return None
    # One short printable line: it ends up in error messages. Hidden before
    # it is cut, or the cut could leave a token's first characters.
    value = _SECRETS.hide("".join(c for c in value if c.isprintable()))[:128].strip()
    return value or None


def _decoded(body: bytes) -> object:
    """The answer's body as kept in an error's ``response``, tokens hidden."""
    try:
        return _hidden_in(json.loads(body, parse_float=Decimal))
    except ValueError:
        return _SECRETS.hide(body.decode("utf-8", "replace"))[:1024]


def _hidden_in(document: object) -> object:
    # In the decoded strings, not the raw body: JSON may spell a token with
    # escapes (\/, \u00e9) that a search of the bytes would miss.
    if isinstance(document, str):
        return _SECRETS.hide(document)
    if isinstance(document, list):
        return [_hidden_in(item) for item in document]
    if isinstance(document, dict):
        return {_SECRETS.hide(key): _hidden_in(value) for key, value in document.items()}
    return document


def _error_detail(body: bytes, code: str) -> str:
    """``: <the catalog's message>``, one short line without the code, or nothing."""
    document = _decoded(body)
    if not isinstance(document, dict):
        return ""
    try:
        message = ErrorDocument.model_validate(document).message
    except pydantic.ValidationError:
        return ""
    if not message:
        return ""
    text = " ".join(_scrub(message, code).split())
    return f": {text[:200]}"


def _scrub(text: str, code: str) -> str:
    # Tokens first: masking the code inside one would leave the rest of it.
    return _mask_paths(_SECRETS.hide(text).replace(code, base.mask_code(code)))


def _describe(error: BaseException, code: str) -> str:
    """One line about a network failure, from its innermost cause."""
    reason: BaseException = error
    for _ in range(8):
        if isinstance(reason, urllib3_exceptions.MaxRetryError) and reason.reason is not None:
            reason = reason.reason
        elif (isinstance(reason, requests.RequestException | urllib3_exceptions.ProtocolError)
              and reason.args and isinstance(reason.args[-1], BaseException)):
            reason = reason.args[-1]
        else:
            break
    if isinstance(reason, urllib3_exceptions.NewConnectionError):
        found = re.search(r"\[Errno -?\d+\][^()]*", str(reason))
        text = f"cannot connect ({found.group(0).strip() if found else 'connection failed'})"
    elif isinstance(reason, urllib3_exceptions.ConnectTimeoutError):
        text = "connection timed out"
    elif isinstance(reason, urllib3_exceptions.ReadTimeoutError | socket.timeout):
        text = "read timed out"
    elif isinstance(reason, urllib3_exceptions.ResponseError):
        text = str(reason)
    else:
        first = (str(reason).splitlines() or [""])[0]
        text = f"{type(reason).__name__}: {first}" if first else type(reason).__name__
    return _scrub(text, code)[:300]


def _parse(
    model: type[_Document],
    answer: _Answer,
    *,
    code: str,
    what: str,
) -> _Document:
    try:
        return model.model_validate_json(answer.body)
    except pydantic.ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] in ("json_invalid", "json_type", "model_type"):
            problem = "is not a JSON object"
        else:
            problem = f"is invalid: {where}: {first['msg']}" if where else first["msg"]
        raise base.CatalogProtocolError(
            _scrub(f"the voucher catalog's {what} for {base.mask_code(code)} {problem}", code),
            status=answer.status, request_id=answer.request_id, response=_decoded(answer.body),
        ) from None


def _convert(
    model: type[_Model],
    document: VoucherDocument | RedemptionDocument,
    answer: _Answer,
    *,
    code: str,
) -> _Model:
    """The wire document as the plugin's model (currency and decimals checked)."""
    try:
        return model.model_validate(document.model_dump())
    except (pydantic.ValidationError, exceptions.InvalidInput, ValueError) as error:
        if isinstance(error, pydantic.ValidationError):
            first = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            detail = f"{where}: {first['msg']}" if where else first["msg"]
        else:
            detail = str(error)
        raise base.CatalogProtocolError(
            _scrub(f"the voucher catalog's answer for {base.mask_code(code)} is invalid: "
                   f"{detail}", code),
            status=answer.status, request_id=answer.request_id, response=_decoded(answer.body),
        ) from None


__all__ = [
    "AMOUNT_PATTERN",
    "CODE_PATTERN",
    "ErrorDocument",
    "HttpVoucherCatalog",
    "RedemptionDocument",
    "RedemptionRequest",
    "VoucherDocument",
]
