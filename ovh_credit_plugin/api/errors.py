"""API errors in the OpenStack API-SIG format, and the plugin's errors mapped to them.

Body: ``{"errors": [{"status", "code": "cloud_credit.<name>", "title", "detail",
"request_id"}]}``; see DESIGN.md section 4 for the codes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

import webob
from sqlalchemy import exc as sa_exc

from ovh_credit_plugin import exceptions, i18n
from ovh_credit_plugin.catalog import base as catalog_base
from ovh_credit_plugin.i18n import _, deferred
from ovh_credit_plugin.ledger.database import is_canceled, is_retryable

#: The request id oslo.middleware's RequestId puts in the WSGI environ.
REQUEST_ID_ENV = "openstack.request_id"
#: The status of the API-SIG document written for the request (:func:`error_response`):
#: an answer to HEAD has no body to tell it by.
API_SIG_STATUS_ENV = "ovh_credit.api_sig_status"
REQUEST_ID_HEADER = "X-Openstack-Request-Id"
JSON = "application/json"
#: The Cache-Control of every answer but the version document's: each depends on
#: the caller's token, which a shared cache does not key on (X-Auth-Token is not
#: Authorization), and a balance read again must be read from the ledger.
NO_STORE = "no-store"

# code -> (HTTP status, title); titles are translated when an answer is written.
CODES: dict[str, tuple[int, str]] = {
    "invalid_request": (400, deferred("Invalid request")),
    "invalid_amount": (400, deferred("Invalid amount")),
    "unauthorized": (401, deferred("Authentication required")),
    "forbidden": (403, deferred("Forbidden")),
    "not_found": (404, deferred("Not found")),
    "voucher_unknown": (404, deferred("Unknown voucher")),
    "method_not_allowed": (405, deferred("Method not allowed")),
    "not_acceptable": (406, deferred("Not acceptable")),
    "voucher_redeemed": (409, deferred("Voucher already redeemed")),
    "currency_mismatch": (409, deferred("Currency mismatch")),
    "order_not_pending": (409, deferred("Order not pending")),
    "invalid_state": (409, deferred("Invalid state")),
    "idempotency_conflict": (409, deferred("Idempotency key reused")),
    "voucher_expired": (410, deferred("Voucher not valid")),
    "length_required": (411, deferred("Length required")),
    "too_large": (413, deferred("Request body too large")),
    "voucher_throttled": (429, deferred("Too many voucher attempts")),
    "internal_error": (500, deferred("Internal error")),
    "catalog_unavailable": (503, deferred("Voucher catalog unavailable")),
    "service_unavailable": (503, deferred("Service unavailable")),
    "ledger_unavailable": (503, deferred("Service temporarily unavailable")),
}

INTERNAL_ERROR_DETAIL = deferred("internal error; the request id finds it in the logs")
LENGTH_REQUIRED_DETAIL = deferred(
    "a request body needs a Content-Length header: chunked bodies are not read here")

# Seconds a client should wait after a catalog outage before trying again.
CATALOG_RETRY_AFTER = 30
# The same after the ledger database could not serve a request, or was not
# ready: not migrated yet, or migrated by a newer release during a rolling
# upgrade. An operator's 'db upgrade' or the rest of the upgrade ends that
# within minutes; a client or a load balancer polling every 30 s sees it soon
# enough, and each poll costs the ledger one schema check.
LEDGER_RETRY_AFTER = 30

# Plain HTTP errors (pecan's routing, webob, middlewares) by status.
_CODE_OF_STATUS = {400: "invalid_request", 401: "unauthorized", 403: "forbidden",
                   404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
                   411: "length_required", 413: "too_large", 503: "service_unavailable",
                   # An HTTP version the standalone server does not speak: the
                   # client's request, not a server fault.
                   505: "invalid_request"}


class ApiError(Exception):
    """An error answer: its code fixes the status and title; ``detail`` is for the caller."""

    def __init__(self, code: str, detail: str, *, headers: Mapping[str, str] | None = None,
                 status: int | None = None) -> None:
        if code not in CODES:
            raise ValueError(f"unknown API error code {code!r}")
        super().__init__(detail)
        self.code = code
        # Another status than the code's: an HTTP error of a layer below
        # (a 502 of a proxy, a 415) that has no code of its own.
        self.status = status or CODES[code][0]
        self.detail = detail
        self.headers = dict(headers or {})


def code_for_status(status: int) -> str:
    return _CODE_OF_STATUS.get(status, "internal_error" if status >= 500 else "invalid_request")


def _raw_path(environ: Mapping[str, Any], *, errors: str) -> bytes:
    """``SCRIPT_NAME`` + ``PATH_INFO`` as the bytes the client sent (WSGI, PEP 3333,
    carries them as latin-1 text); ``errors`` for a server that breaks that rule."""
    text = f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
    return text.encode("latin-1", errors)


def request_path(environ: Mapping[str, Any]) -> str:
    """The request's path (``SCRIPT_NAME`` + ``PATH_INFO``), as text whatever its bytes.

    webob's ``request.path`` raises UnicodeDecodeError for a percent-escape
    that is not UTF-8 (``/v1/credits/%ff``); here such bytes become U+FFFD.
    """
    return _raw_path(environ, errors="replace").decode("utf-8", "replace")


_VOUCHER_IN_PATH = re.compile(r"(/vouchers/)([^/?\s]+)")


def logged_path(environ: Mapping[str, Any]) -> str:
    """:func:`request_path` for the logs: a voucher code in it masked, as every log
    line shows codes (``GET /v1/vouchers/WEL…6``): a log is read by more people
    than may activate a customer's voucher."""
    return masked_vouchers(request_path(environ))


def masked_vouchers(text: str) -> str:
    """``text`` (a path, a request line) with the code after ``/vouchers/`` masked."""
    return _VOUCHER_IN_PATH.sub(
        lambda found: found[1] + catalog_base.mask_code(unquote(found[2]).strip().upper()),
        text)


def undecodable(environ: Mapping[str, Any]) -> str | None:
    """Why the request's path or query string cannot be read as UTF-8; None if they can.

    The detail of a 400: webob (and pecan, which answers 400 for it) would fail
    to decode them.
    """
    try:
        _raw_path(environ, errors="strict").decode("utf-8")
    except UnicodeError:
        return _("the request path is not UTF-8: %(path)s") % {"path": request_path(environ)}
    query = str(environ.get("QUERY_STRING", "")).encode("latin-1", "replace")
    try:
        unquote_to_bytes(query).decode("utf-8")
    except UnicodeError:
        return _("the query string is not UTF-8")
    return None


def http_error(status: int, environ: Mapping[str, Any], method: str) -> ApiError:
    """The API error for a plain HTTP error of a layer below (pecan's routing, webob,
    keystonemiddleware): its code by status, a translated detail."""
    path = request_path(environ)
    if status == 400:
        detail = undecodable(environ) or _("the request is malformed")
    elif status == 401:
        detail = _("a valid X-Auth-Token is required")
    elif status == 404:
        detail = _("no such resource: %(path)s") % {"path": path}
    elif status == 405:
        detail = _("%(method)s is not allowed on %(path)s") % {"method": method, "path": path}
    elif status == 406:
        detail = _("answers are application/json only, which the Accept header refuses")
    elif status == 411:
        detail = LENGTH_REQUIRED_DETAIL
    elif status == 413:
        detail = _("the request body is too large")
    else:
        detail = _("the request failed with HTTP status %(status)d") % {"status": status}
    return ApiError(code_for_status(status), detail, status=status)


def error_document(error: ApiError, request_id: str | None, *,
                   language: str = i18n.SOURCE_LANGUAGE) -> dict[str, Any]:
    return {"errors": [{"status": error.status, "code": f"cloud_credit.{error.code}",
                        "title": i18n.translate(CODES[error.code][1], language),
                        "detail": i18n.translate(error.detail, language),
                        "request_id": request_id}]}


def error_response(error: ApiError, request: webob.Request) -> webob.Response:
    """The answer to ``request`` for ``error``, in the language its Accept-Language picks."""
    request_id = request.environ.get(REQUEST_ID_ENV)
    language = i18n.best_language(request.accept_language)
    document = error_document(error, str(request_id) if request_id else None,
                              language=language)
    response = webob.Response(
        status=error.status, content_type=JSON, charset="UTF-8",
        body=json.dumps(document).encode(),
    )
    response.headers["Content-Language"] = language
    response.headers["Cache-Control"] = NO_STORE
    for name, value in error.headers.items():
        response.headers[name] = value
    request.environ[API_SIG_STATUS_ENV] = error.status
    return response


# The plugin's errors by type, checked in order: subclasses before their bases
# (CurrencyMismatch and InvalidAmount are InvalidInput).
_BY_TYPE: tuple[tuple[type[BaseException], str], ...] = (
    (exceptions.CurrencyMismatch, "currency_mismatch"),
    (exceptions.InvalidAmount, "invalid_amount"),
    (exceptions.InvalidInput, "invalid_request"),
    (exceptions.NotFound, "not_found"),
    (exceptions.IdempotencyConflict, "idempotency_conflict"),
    (exceptions.InvalidState, "invalid_state"),
)

# A refused activation by the catalog's reason (its cause); any other: used up.
_REFUSAL_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (catalog_base.VoucherNotFound, "voucher_unknown"),
    (catalog_base.VoucherUnavailable, "voucher_expired"),
)


def from_exception(error: BaseException, *, throttle_window: int) -> ApiError:
    """The API error for one of the plugin's errors; anything else is a 500 (logged by the caller).

    TooManyAttempts is a VoucherRefused: checked first.
    """
    if isinstance(error, ApiError):
        return error
    if isinstance(error, exceptions.TooManyAttempts):
        # The message says when; Retry-After the same (the window when unknown).
        retry_after = error.retry_after or throttle_window
        return ApiError("voucher_throttled", exceptions.message_of(error),
                        headers={"Retry-After": str(retry_after)})
    if isinstance(error, exceptions.VoucherRefused):
        code = next((code for cause, code in _REFUSAL_CAUSES
                     if isinstance(error.__cause__, cause)), "voucher_redeemed")
        return ApiError(code, exceptions.message_of(error))
    found = next((code for kind, code in _BY_TYPE if isinstance(error, kind)), None)
    if found is not None:
        return ApiError(found, exceptions.message_of(error))
    if isinstance(error, catalog_base.REFUSALS):
        # A preview (GET vouchers/{code}) of an unknown code.
        return ApiError("voucher_unknown", _("no such voucher code"))
    if isinstance(error, catalog_base.CatalogError):
        # Down, slow, broken or refusing our credentials: not the caller's doing.
        return ApiError("catalog_unavailable",
                        _("the voucher catalog cannot be reached; try again later"),
                        headers={"Retry-After": str(CATALOG_RETRY_AFTER)})
    if isinstance(error, exceptions.DatabaseNotReady):
        return ApiError("service_unavailable", _("the credit ledger is not ready"),
                        headers={"Retry-After": str(LEDGER_RETRY_AFTER)})
    if ledger_unavailable(error):
        return ApiError("ledger_unavailable",
                        _("the credit service is temporarily unavailable; try again later"),
                        headers={"Retry-After": str(LEDGER_RETRY_AFTER)})
    return ApiError("internal_error", INTERNAL_ERROR_DETAIL)


def ledger_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the ledger database cannot serve now, not that the code is wrong.

    - What the ledger retries (``ledger.database.is_retryable``) and still
      failed when the attempts ran out: the connection lost (a server gone, a
      failover), deadlocks and serialization failures, a lock wait timeout, a
      SQLite database locked beyond its busy timeout, a Galera node not ready.
      Not a unique-constraint violation, which it retries too: one that
      outlived the retries is a bug. Among them, a server that refuses
      writes as read-only (a standby, a primary demoted by a failover:
      PostgreSQL's 25006, MariaDB's 1290 and 1792): the ledger reconnects
      and retries it.
    - A statement the server canceled (``ledger.database.is_canceled``):
      statement_timeout, max_statement_time, an operator's cancel. An
      overload, or a lock held too long; not retried by the ledger.
    - An OperationalError outside any statement (SQLAlchemy names none): the
      connection could not be opened (refused, unknown host, too many
      connections, the server starting or shutting down, credentials
      refused, a SQLite file that cannot be opened), or the server failed a
      COMMIT's round trip. The drivers also raise OperationalError for
      statements that are wrong (SQLite's "no such column", MySQL's 1054):
      those name their statement, and stay 500s.
    - The connection pool exhausted (SQLAlchemy's TimeoutError): every
      connection busy for ``pool_timeout``; an overload.
    """
    if isinstance(error, sa_exc.TimeoutError):
        return True
    if not isinstance(error, sa_exc.DBAPIError) or isinstance(error, sa_exc.IntegrityError):
        return False
    if is_retryable(error) or is_canceled(error):
        return True
    return isinstance(error, sa_exc.OperationalError) and error.statement is None
