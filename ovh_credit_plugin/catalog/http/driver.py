"""``HttpVoucherCatalog``: the contract's two calls over the package's parts.

The driver checks its configuration, builds the transport once, and for
each call: checks the code offline, runs one exchange under the
operation's deadline, and reads the answer into the plugin's model, every
failure told through ``errors``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import time
import urllib.parse
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import requests
from oslo_config import cfg
from urllib3 import exceptions as urllib3_exceptions

from ovh_credit_plugin import contracts, exceptions, models, request_ids
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.http import errors, redaction, transport, wire
from ovh_credit_plugin.catalog.http.deadline import DeadlineTimeout, Operation, running
from ovh_credit_plugin.catalog.http.wire import (
    API_PREFIX,
    MAX_BODY_BYTES,
    OPENSTACK_REQUEST_ID_HEADER,
    REQUEST_ID_HEADER,
)
from ovh_credit_plugin.i18n import _, count

# The logger the module had before it became a package: operators' logging
# configuration names it.
LOG = logging.getLogger("ovh_credit_plugin.catalog.http")

_CHUNK = 16 * 1024

try:
    _VERSION = metadata.version("ovh-credit-plugin")
except metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    _VERSION = "unknown"


class _BodyError(Exception):
    """The answer broke off mid-body: urllib3 does not retry that, we do."""

    #: Attempts the failed call made (urllib3's retries included).
    attempts = 1


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
        verify = _verify_option(group)
        self._cert = _cert_option(group)
        headers = {
            "User-Agent": f"ovh-credit-plugin/{_VERSION}",
            "Accept": "application/json",
            # A catalog answer is small; compressed bodies only complicate the cap.
            "Accept-Encoding": "identity",
        }
        if group.auth_token:
            _check_token(group.auth_token)
            headers[wire.AUTH_HEADER] = group.auth_token
            redaction.add_secret(group.auth_token)
        self._session = transport.new_session(
            retries=self._retries,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            max_retry_after=float(group.max_retry_after),
            headers=headers,
        )
        self._proxies, self._verify = transport.read_environment_once(
            self._session, url=self._base_url, verify=verify, cert=self._cert
        )
        redaction.install_log_filter()

    def __repr__(self) -> str:  # no token, ever
        return f"<HttpVoucherCatalog {self._where}>"

    def close(self) -> None:
        self._session.close()

    # The deadline module's names are imported, not the module: this method
    # would shadow it in the class body.
    @contextlib.contextmanager
    def deadline(self) -> Iterator[None]:
        with running(seconds=self._timeout):
            yield

    # -- the contract ---------------------------------------------------------------

    def get(self, code: str) -> models.Voucher:
        code = base.normalize_code(code)
        answer = self._exchange("GET", f"{API_PREFIX}/{code}", code=code)
        if answer.status != 200:
            raise errors.from_answer(answer, where=self._where, code=code)
        try:
            document = wire.parse(wire.VoucherDocument, answer, what="voucher")
            if document.code != code:
                raise base.CatalogProtocolError(
                    _("the voucher catalog answered about another code than %(code)s")
                    % {"code": base.mask_code(code)},
                    status=answer.status, request_id=answer.request_id,
                )
            return wire.convert(models.Voucher, document, answer)
        except wire.WireError as error:
            raise errors.from_wire_error(error, code=code) from None

    def redeem(
        self,
        code: str,
        *,
        project_id: str,
        idempotency_key: str,
        at: Any = None,
    ) -> models.Redemption:
        code = base.normalize_code(code)
        if not isinstance(project_id, str) or not contracts.ID_RE.fullmatch(project_id):
            raise exceptions.InvalidInput(_("invalid project id %(project_id)r")
                                          % {"project_id": project_id})
        if not wire.IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
            raise exceptions.InvalidInput(_("invalid idempotency key"))
        # ``at`` is ignored: a remote catalog keeps its own clock.
        payload = wire.RedemptionRequest(project_id=project_id, idempotency_key=idempotency_key)
        answer = self._exchange(
            "POST", f"{API_PREFIX}/{code}/redemptions", code=code, payload=payload.model_dump()
        )
        if answer.status not in (200, 201):
            raise errors.from_answer(answer, where=self._where, code=code)
        try:
            document = wire.parse(wire.RedemptionDocument, answer, what="redemption")
            if answer.status == 200:
                LOG.info("voucher %s: the catalog replayed redemption %s (same idempotency key)",
                         base.mask_code(code), document.id)
            redemption = wire.convert(models.Redemption, document, answer)
        except wire.WireError as error:
            raise errors.from_wire_error(error, code=code) from None
        base.check_redemption(redemption, code=code, project_id=project_id,
                              status=answer.status, request_id=answer.request_id)
        return redemption

    # -- HTTP ---------------------------------------------------------------------------

    def _exchange(
        self, method: str, path: str, *, code: str, payload: dict[str, Any] | None = None
    ) -> wire.Answer:
        """One operation: urllib3's retries inside, ours for broken bodies, one deadline.

        Inside :meth:`deadline` the operation spends what is left of that
        budget; otherwise it gets a whole ``timeout`` of its own. The request
        id of the API request it is made for, if any, goes with every attempt.
        """
        ours = request_ids.current()
        headers = {OPENSTACK_REQUEST_ID_HEADER: ours} if ours else None
        for_request = f", for request {ours}" if ours else ""
        with running(seconds=self._timeout) as operation:
            masked_path = path.replace(code, base.mask_code(code))
            started = time.monotonic()
            # Attempts made so far: urllib3's retries and ours share one
            # budget of ``retries`` after the first attempt.
            made = 0
            while True:
                try:
                    with transport.retries_left(self._retries - made):
                        answer = self._attempt(method, path, payload, operation, code=code,
                                               headers=headers)
                except _BodyError as error:
                    made += error.attempts
                    cause = error.__cause__ or error
                    if made > self._retries or operation.out_of_time():
                        raise errors.from_exception(
                            cause, operation=operation, where=self._where, code=code
                        ) from None
                    wait = self._backoff_factor * 2 ** (made - 1)
                    wait = min(self._backoff_max, wait) * random.uniform(0.5, 1)  # noqa: S311
                    LOG.warning("voucher catalog %s %s: answer broken off (%s); retrying%s",
                                method, masked_path, errors.describe(cause, code=code),
                                for_request)
                    time.sleep(max(0.0, min(wait, operation.remaining())))
                    continue
                if made:
                    answer = dataclasses.replace(answer, attempts=made + answer.attempts)
                # Retried (a 429, a 5xx, a connection error on the way): a
                # warning, once per call, so that a flaky or throttling
                # catalog shows in a host's log; urllib3 logs its status
                # retries at DEBUG only.
                LOG.log(logging.WARNING if answer.attempts > 1 else logging.DEBUG,
                        "voucher catalog %s %s -> %d in %.3fs, %d attempt(s)%s%s",
                        method, masked_path, answer.status, time.monotonic() - started,
                        answer.attempts,
                        f", request id {answer.request_id}" if answer.request_id else "",
                        for_request)
                return answer

    def _attempt(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        operation: Operation,
        *,
        code: str,
        headers: dict[str, str] | None = None,
    ) -> wire.Answer:
        if operation.out_of_time():
            raise self._failure(None, operation, code=code)
        timeout = DeadlineTimeout(
            connect=self._connect_timeout, read=self._read_timeout, operation=operation
        )
        try:
            response = self._session.request(
                method,
                self._base_url + path,
                json=payload,
                # Merged with the session's; urllib3's retries resend them as they are.
                headers=headers,
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
        except (requests.RequestException, urllib3_exceptions.HTTPError) as error:
            raise self._failure(error, operation, code=code) from None
        except OSError as error:
            # requests looks for ca_file, cert_file and key_file on every
            # call: one gone since the driver was built (a certificate
            # rotation) is a plain OSError, told like any TLS failure.
            raise self._failure(error, operation, code=code) from None
        history = getattr(getattr(response.raw, "retries", None), "history", ())
        try:
            body = self._read_body(response, operation, code=code)
        except _BodyError as error:
            error.attempts = len(history) + 1
            raise
        finally:
            response.close()
        return wire.Answer(
            status=response.status_code,
            body=body,
            request_id=redaction.safe_header(response.headers, REQUEST_ID_HEADER),
            attempts=len(history) + 1,
            retry_after=redaction.safe_header(response.headers, "Retry-After"),
        )

    def _read_body(
        self, response: requests.Response, operation: Operation, *, code: str
    ) -> bytes:
        raw = response.raw
        body = bytearray()
        while True:
            if operation.out_of_time():
                raise self._failure(None, operation, code=code)
            # Each read waits at most what is left of the deadline.
            sock = getattr(getattr(raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(max(0.001, min(self._read_timeout, operation.remaining())))
            try:
                chunk = raw.read1(_CHUNK, decode_content=True)
            except (urllib3_exceptions.HTTPError, OSError, ValueError) as error:
                if operation.out_of_time():
                    raise self._failure(error, operation, code=code) from None
                raise _BodyError(str(error)) from error
            if not chunk:
                break
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise base.CatalogProtocolError(
                    _("the voucher catalog's answer is larger than %(limit)s bytes")
                    % {"limit": count(MAX_BODY_BYTES)},
                    status=response.status_code,
                    request_id=redaction.safe_header(response.headers, REQUEST_ID_HEADER),
                )
        # An end of body caused by the watchdog is no end of body.
        if operation.out_of_time():
            raise self._failure(None, operation, code=code)
        return bytes(body)

    def _failure(
        self, error: BaseException | None, operation: Operation, *, code: str
    ) -> base.CatalogError:
        return errors.from_exception(error, operation=operation, where=self._where, code=code)


# -- configuration --------------------------------------------------------------------------


def _check_endpoint(endpoint: str | None) -> tuple[str, str]:
    """The base URL, and how messages name it (no credentials, no path)."""
    if not endpoint:
        raise exceptions.ConfigError(_("[voucher_catalog] endpoint is required by the http "
                                       "driver"))
    parts = urllib.parse.urlsplit(endpoint)
    # Credentials first: every later message quotes the endpoint.
    if parts.username or parts.password or "@" in parts.netloc:
        # They would end up in logs; the token option is the secret one.
        raise exceptions.ConfigError(
            _("[voucher_catalog] endpoint must not carry credentials: use auth_token")
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise exceptions.ConfigError(
            _("[voucher_catalog] endpoint must be an http(s) URL, not %(endpoint)r")
            % {"endpoint": endpoint}
        )
    if parts.query or parts.fragment:
        raise exceptions.ConfigError(
            _("[voucher_catalog] endpoint must not have a query or fragment")
        )
    try:
        port = parts.port
    except ValueError:
        raise exceptions.ConfigError(
            _("[voucher_catalog] endpoint has an invalid port: %(endpoint)r")
            % {"endpoint": endpoint}
        ) from None
    where = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return endpoint.rstrip("/"), where


def _check_token(token: str) -> None:
    """A token an HTTP header can carry (latin-1, no control character); never quoted."""
    try:
        token.encode("latin-1")
    except UnicodeEncodeError:
        valid = False
    else:
        valid = all(" " <= c != "\x7f" for c in token)
    if not valid:
        raise exceptions.ConfigError(
            _("[voucher_catalog] auth_token has characters an HTTP header cannot carry")
        )


def _verify_option(group: Any) -> bool | str:
    if not group.verify:
        LOG.warning("[voucher_catalog] verify = false: the catalog's TLS certificate "
                    "is not checked; anyone on the path can impersonate it")
        return False
    if group.ca_file:
        if not Path(group.ca_file).is_file():
            raise exceptions.ConfigError(
                _("[voucher_catalog] ca_file %(ca_file)r is not a readable file")
                % {"ca_file": group.ca_file}
            )
        return str(group.ca_file)
    return True


def _cert_option(group: Any) -> str | tuple[str, str] | None:
    cert_file, key_file = group.cert_file, group.key_file
    if key_file and not cert_file:
        raise exceptions.ConfigError(_("[voucher_catalog] key_file needs cert_file"))
    for name, value in (("cert_file", cert_file), ("key_file", key_file)):
        if value and not Path(value).is_file():
            raise exceptions.ConfigError(
                _("[voucher_catalog] %(name)s %(value)r is not a readable file")
                % {"name": name, "value": value}
            )
    if cert_file and key_file:
        return (str(cert_file), str(key_file))
    return str(cert_file) if cert_file else None
