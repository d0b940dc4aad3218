"""API errors in the OpenStack API-SIG format, and the plugin's errors mapped to them.

Body: ``{"errors": [{"status", "code": "cloud_credit.<name>", "title", "detail",
"request_id"}]}``; see DESIGN.md section 4 for the codes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import webob

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.catalog import base as catalog_base

#: The request id oslo.middleware's RequestId puts in the WSGI environ.
REQUEST_ID_ENV = "openstack.request_id"
REQUEST_ID_HEADER = "X-Openstack-Request-Id"
JSON = "application/json"

# code -> (HTTP status, title)
CODES: dict[str, tuple[int, str]] = {
    "invalid_request": (400, "Invalid request"),
    "invalid_amount": (400, "Invalid amount"),
    "unauthorized": (401, "Authentication required"),
    "forbidden": (403, "Forbidden"),
    "not_found": (404, "Not found"),
    "voucher_unknown": (404, "Unknown voucher"),
    "method_not_allowed": (405, "Method not allowed"),
    "voucher_redeemed": (409, "Voucher already redeemed"),
    "currency_mismatch": (409, "Currency mismatch"),
    "order_not_pending": (409, "Order not pending"),
    "invalid_state": (409, "Invalid state"),
    "idempotency_conflict": (409, "Idempotency key reused"),
    "voucher_expired": (410, "Voucher expired"),
    "too_large": (413, "Request body too large"),
    "voucher_throttled": (429, "Too many voucher attempts"),
    "internal_error": (500, "Internal error"),
    "catalog_unavailable": (503, "Voucher catalog unavailable"),
    "service_unavailable": (503, "Service unavailable"),
}

# Seconds a client should wait after a catalog outage before trying again.
CATALOG_RETRY_AFTER = 30

# Plain HTTP errors (pecan's routing, webob, middlewares) by status.
_CODE_OF_STATUS = {400: "invalid_request", 401: "unauthorized", 403: "forbidden",
                   404: "not_found", 405: "method_not_allowed", 413: "too_large",
                   503: "service_unavailable"}


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


def error_document(error: ApiError, request_id: str | None) -> dict[str, Any]:
    return {"errors": [{"status": error.status, "code": f"cloud_credit.{error.code}",
                        "title": CODES[error.code][1], "detail": error.detail,
                        "request_id": request_id}]}


def error_response(error: ApiError, request_id: str | None) -> webob.Response:
    response = webob.Response(
        status=error.status, content_type=JSON, charset="UTF-8",
        body=json.dumps(error_document(error, request_id)).encode(),
    )
    for name, value in error.headers.items():
        response.headers[name] = value
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
        return ApiError("voucher_throttled", str(error),
                        headers={"Retry-After": str(retry_after)})
    if isinstance(error, exceptions.VoucherRefused):
        code = next((code for cause, code in _REFUSAL_CAUSES
                     if isinstance(error.__cause__, cause)), "voucher_redeemed")
        return ApiError(code, str(error))
    found = next((code for kind, code in _BY_TYPE if isinstance(error, kind)), None)
    if found is not None:
        return ApiError(found, str(error))
    if isinstance(error, catalog_base.REFUSALS):
        # A preview (GET vouchers/{code}) of an unknown code.
        return ApiError("voucher_unknown", "no such voucher code")
    if isinstance(error, catalog_base.CatalogError):
        # Down, slow, broken or refusing our credentials: not the caller's doing.
        return ApiError("catalog_unavailable", "the voucher catalog cannot be reached; "
                        "try again later", headers={"Retry-After": str(CATALOG_RETRY_AFTER)})
    if isinstance(error, exceptions.DatabaseNotReady):
        return ApiError("service_unavailable", "the credit ledger is not ready")
    return ApiError("internal_error", "internal error; the request id finds it in the logs")
