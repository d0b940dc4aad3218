"""The one place that turns what went wrong into a ``CatalogError``.

As requests' adapter turns urllib3's errors into its own, this module
turns a network failure (:func:`from_exception`), a refusing answer
(:func:`from_answer`) or an answer off the contract (:func:`from_wire_error`)
into the error class that says what it means, with one message style:
where the catalog is, the code masked, secrets hidden, the catalog's own
message when it gave one.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import pydantic
import requests
from urllib3 import exceptions as urllib3_exceptions

from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.http import redaction, wire
from ovh_credit_plugin.catalog.http.deadline import Operation
from ovh_credit_plugin.i18n import _


def from_exception(
    error: BaseException | None, *, operation: Operation, where: str, code: str
) -> base.CatalogTLSError | base.CatalogUnavailable:
    """The error for a failed exchange; ``error`` None when the deadline passed without one.

    TLS failures are their own class (another try gives the same answer and
    the fix is a configuration option); everything else is the catalog
    being unavailable, said as a passed deadline when it is one.
    """
    if isinstance(error, requests.exceptions.SSLError):
        return _tls_error(error, where=where, code=code)
    if operation.out_of_time():
        detail = f"no complete answer within the {operation.seconds:g} s deadline"
        if error is not None:
            detail += f" (last error: {describe(error, code=code)})"
    else:
        detail = describe(error, code=code) if error is not None else "no answer"
    return base.CatalogUnavailable(f"voucher catalog at {where} unavailable: {detail}")


def _tls_error(error: BaseException, *, where: str, code: str) -> base.CatalogTLSError:
    detail = describe(error, code=code)
    hint = ("set [voucher_catalog] ca_file to the CA that signed the catalog's certificate"
            if "CERTIFICATE_VERIFY_FAILED" in detail or "certificate verify failed" in detail
            else "check [voucher_catalog] TLS options (ca_file, cert_file, key_file)")
    return base.CatalogTLSError(
        f"TLS with the voucher catalog at {where} failed: {detail}; {hint}"
    )


def from_answer(answer: wire.Answer, *, where: str, code: str) -> base.CatalogError:
    """The error for a non-success answer: one class per meaning."""
    masked = base.mask_code(code)
    status, request_id = answer.status, answer.request_id
    detail = _error_detail(answer.body, code=code)
    kwargs: dict[str, Any] = {"status": status, "request_id": request_id,
                              "response": redaction.decoded_body(answer.body)}
    if status in (401, 403):
        return base.CatalogAuthError(
            f"the voucher catalog at {where} refused our credentials "
            f"(HTTP {status}{detail}): check [voucher_catalog] auth_token",
            **kwargs,
        )
    if status == 404:
        return base.VoucherNotFound(_("unknown voucher %(code)s") % {"code": masked}, **kwargs)
    if status == 409:
        return base.VoucherAlreadyRedeemed(_("voucher %(code)s is used up") % {"code": masked},
                                           **kwargs)
    if status == 410:
        return base.VoucherUnavailable(
            _("voucher %(code)s is revoked or expired%(detail)s")
            % {"code": masked, "detail": detail}, **kwargs
        )
    if status == 429:
        wait = f", it asks to wait {answer.retry_after} s" if answer.retry_after else ""
        return base.CatalogThrottled(
            f"the voucher catalog at {where} is throttling us (HTTP 429 after "
            f"{answer.attempts} attempt(s){wait})",
            **kwargs,
        )
    if status >= 500:
        return base.CatalogUnavailable(
            f"voucher catalog at {where} unavailable: HTTP {status} after "
            f"{answer.attempts} attempt(s){detail}",
            **kwargs,
        )
    return base.CatalogProtocolError(
        f"unexpected HTTP {status} from the voucher catalog at {where}{detail}",
        **kwargs,
    )


def from_wire_error(error: wire.WireError, *, code: str) -> base.CatalogProtocolError:
    """The error for an answer that does not follow the contract."""
    answer = error.answer
    return base.CatalogProtocolError(
        redaction.scrub(
            f"the voucher catalog's {error.what} for {base.mask_code(code)} {error.problem}",
            code=code,
        ),
        status=answer.status, request_id=answer.request_id,
        response=redaction.decoded_body(answer.body),
    )


def _error_detail(body: bytes, *, code: str) -> str:
    """``: <the catalog's message>``, one short line without the code, or nothing."""
    document = redaction.decoded_body(body)
    if not isinstance(document, dict):
        return ""
    try:
        message = wire.ErrorDocument.model_validate(document).message
    except pydantic.ValidationError:
        return ""
    if not message:
        return ""
    text = " ".join(redaction.scrub(message, code=code).split())
    return f": {text[:200]}"


def describe(error: BaseException, *, code: str) -> str:
    """One line about a network failure, from its innermost cause."""
    reason: BaseException = error
    for _depth in range(8):
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
    return redaction.scrub(text, code=code)[:300]
