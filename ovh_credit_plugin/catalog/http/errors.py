"""The one place that turns what went wrong into a ``CatalogError``.

As requests' adapter turns urllib3's errors into its own, this module
turns a network failure (:func:`from_exception`), a refusing answer
(:func:`from_answer`) or an answer off the contract (:func:`from_wire_error`)
into the error class that says what it means, with one message style:
where the catalog is, the code masked, secrets hidden, the catalog's own
message when it gave one. Each message is one whole sentence marked for
translation (docs/translations.md); what the catalog or the system said is
quoted in it as said.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

import pydantic
import requests
from urllib3 import exceptions as urllib3_exceptions

from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.http import redaction, wire
from ovh_credit_plugin.catalog.http.deadline import Operation
from ovh_credit_plugin.i18n import _, count, deferred

# Our words about a network failure (:func:`describe`): English in a log
# line, in the reader's language in an error message.
_CANNOT_CONNECT = deferred("cannot connect (%(reason)s)")
_CONNECTION_FAILED = deferred("cannot connect (connection failed)")
_CONNECT_TIMED_OUT = deferred("connection timed out")
_READ_TIMED_OUT = deferred("read timed out")

# An answer off the contract, by what was read: one whole sentence each, so
# that a translation never has an English word in it.
_NOT_JSON: dict[wire.WireWhat, str] = {
    "voucher": deferred("the voucher catalog's voucher for %(code)s is not a JSON object"),
    "redemption": deferred("the voucher catalog's redemption for %(code)s is not a JSON object"),
    "answer": deferred("the voucher catalog's answer for %(code)s is not a JSON object"),
}
_INVALID: dict[wire.WireWhat, str] = {
    "voucher": deferred("the voucher catalog's voucher for %(code)s is invalid: %(problem)s"),
    "redemption":
        deferred("the voucher catalog's redemption for %(code)s is invalid: %(problem)s"),
    "answer": deferred("the voucher catalog's answer for %(code)s is invalid: %(problem)s"),
}


def from_exception(
    error: BaseException | None, *, operation: Operation, where: str, code: str
) -> base.CatalogTLSError | base.CatalogUnavailable:
    """The error for a failed exchange; ``error`` None when the deadline passed without one.

    TLS failures are their own class (another try gives the same answer and
    the fix is a configuration option); everything else is the catalog
    being unavailable, said as a passed deadline when it is one.
    """
    if error is not None and (isinstance(error, requests.exceptions.SSLError)
                              or _is_tls_file_error(error)):
        return _tls_error(error, where=where, code=code)
    if operation.out_of_time():
        values = {"where": where, "seconds": count(f"{operation.seconds:g}")}
        if error is None:
            return base.CatalogUnavailable(
                _("voucher catalog at %(where)s unavailable: no complete answer within the "
                  "%(seconds)s s deadline") % values
            )
        return base.CatalogUnavailable(
            _("voucher catalog at %(where)s unavailable: no complete answer within the "
              "%(seconds)s s deadline (last error: %(error)s)")
            % {**values, "error": describe(error, code=code, translated=True)}
        )
    if error is None:
        return base.CatalogUnavailable(
            _("voucher catalog at %(where)s unavailable: no answer") % {"where": where}
        )
    return base.CatalogUnavailable(
        _("voucher catalog at %(where)s unavailable: %(error)s")
        % {"where": where, "error": describe(error, code=code, translated=True)}
    )


def _is_tls_file_error(error: BaseException) -> bool:
    """requests' own check of the TLS files (a plain OSError: "Could not find the TLS ...")."""
    return (isinstance(error, OSError)
            and not isinstance(error, requests.RequestException | urllib3_exceptions.HTTPError)
            and "TLS" in str(error))


def _tls_error(error: BaseException, *, where: str, code: str) -> base.CatalogTLSError:
    found = describe(error, code=code)
    values = {"where": where, "error": describe(error, code=code, translated=True)}
    if "CERTIFICATE_VERIFY_FAILED" in found or "certificate verify failed" in found:
        if "mismatch" in found or "doesn't match" in found:
            # The CA is trusted; the certificate names another host.
            return base.CatalogTLSError(
                _("TLS with the voucher catalog at %(where)s failed: %(error)s; the "
                  "catalog's certificate is not valid for the host of [voucher_catalog] "
                  "endpoint") % values
            )
        return base.CatalogTLSError(
            _("TLS with the voucher catalog at %(where)s failed: %(error)s; set "
              "[voucher_catalog] ca_file to the CA that signed the catalog's certificate")
            % values
        )
    return base.CatalogTLSError(
        _("TLS with the voucher catalog at %(where)s failed: %(error)s; check "
          "[voucher_catalog] TLS options (ca_file, cert_file, key_file)") % values
    )


def from_answer(answer: wire.Answer, *, where: str, code: str) -> base.CatalogError:
    """The error for a non-success answer: one class per meaning.

    The catalog's own message, when it gave one, is quoted as it is (a
    sentence of ours with it, another without).
    """
    status, request_id = answer.status, answer.request_id
    detail = _error_detail(answer.body, code=code)
    # Retry-After is seconds or an HTTP date (RFC 9110): each has its own words.
    seconds = answer.retry_after if answer.retry_after and (
        answer.retry_after.isascii() and answer.retry_after.isdigit()) else None
    values = {"where": where, "status": status, "attempts": count(answer.attempts),
              "code": base.mask_code(code), "detail": detail,
              "wait": count(seconds) if seconds else None, "date": answer.retry_after}
    kwargs: dict[str, Any] = {"status": status, "request_id": request_id,
                              "response": redaction.decoded_body(answer.body)}
    if status in (401, 403):
        return base.CatalogAuthError(
            (_("the voucher catalog at %(where)s refused our credentials (HTTP %(status)d: "
               "%(detail)s): check [voucher_catalog] auth_token") if detail else
             _("the voucher catalog at %(where)s refused our credentials (HTTP %(status)d): "
               "check [voucher_catalog] auth_token")) % values,
            **kwargs,
        )
    if status == 404:
        return base.VoucherNotFound(_("unknown voucher %(code)s") % values, **kwargs)
    if status == 409:
        return base.VoucherAlreadyRedeemed(_("voucher %(code)s is used up") % values, **kwargs)
    if status == 410:
        return base.VoucherUnavailable(
            (_("voucher %(code)s is revoked or expired: %(detail)s") if detail else
             _("voucher %(code)s is revoked or expired")) % values,
            **kwargs,
        )
    if status == 429:
        return base.CatalogThrottled(
            (_("the voucher catalog at %(where)s is throttling us (HTTP 429 after "
               "%(attempts)s attempt(s), it asks to wait %(wait)s s)") if seconds else
             _("the voucher catalog at %(where)s is throttling us (HTTP 429 after "
               "%(attempts)s attempt(s), it asks to wait until %(date)s)") if answer.retry_after
             else _("the voucher catalog at %(where)s is throttling us (HTTP 429 after "
                    "%(attempts)s attempt(s))")) % values,
            **kwargs,
        )
    if status >= 500:
        return base.CatalogUnavailable(
            (_("voucher catalog at %(where)s unavailable: HTTP %(status)d after %(attempts)s "
               "attempt(s): %(detail)s") if detail else
             _("voucher catalog at %(where)s unavailable: HTTP %(status)d after %(attempts)s "
               "attempt(s)")) % values,
            **kwargs,
        )
    return base.CatalogProtocolError(
        (_("unexpected HTTP %(status)d from the voucher catalog at %(where)s: %(detail)s")
         if detail else
         _("unexpected HTTP %(status)d from the voucher catalog at %(where)s")) % values,
        **kwargs,
    )


def from_wire_error(error: wire.WireError, *, code: str) -> base.CatalogProtocolError:
    """The error for an answer that does not follow the contract."""
    answer = error.answer
    masked = base.mask_code(code)
    if error.problem is None:
        message = _(_NOT_JSON[error.what]) % {"code": masked}
    else:
        message = (_(_INVALID[error.what])
                   % {"code": masked, "problem": _scrubbed(error.problem, code=code)})
    return base.CatalogProtocolError(
        message, status=answer.status, request_id=answer.request_id,
        response=redaction.decoded_body(answer.body),
    )


def _scrubbed(text: str, *, code: str) -> str:
    """``text`` with secrets hidden and ``code`` masked.

    A lazy message with nothing to hide stays one, translated when it is
    read (hiding makes it a plain string, in English).
    """
    scrubbed = redaction.scrub(text, code=code)
    return text if scrubbed == text else scrubbed


def _error_detail(body: bytes, *, code: str) -> str:
    """The catalog's message, one short line without the code; "" when it gave none."""
    document = redaction.decoded_body(body)
    if not isinstance(document, dict):
        return ""
    try:
        message = wire.ErrorDocument.model_validate(document).message
    except pydantic.ValidationError:
        return ""
    if not message:
        return ""
    return " ".join(redaction.scrub(message, code=code).split())[:200]


def describe(error: BaseException, *, code: str, translated: bool = False) -> str:
    """One line about a network failure, from its innermost cause.

    In English, for a log line; ``translated``, for an error message: our
    words in the reader's language (a lazy message in the REST API). What
    the system said (an errno's text, an exception's message) stays as said.
    """
    say: Callable[[str], str] = _ if translated else str
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
        if found is None:
            return say(_CONNECTION_FAILED)
        return say(_CANNOT_CONNECT) % {"reason": _said(found.group(0).strip(), code=code)}
    if isinstance(reason, urllib3_exceptions.ConnectTimeoutError):
        return say(_CONNECT_TIMED_OUT)
    if isinstance(reason, urllib3_exceptions.ReadTimeoutError | socket.timeout):
        return say(_READ_TIMED_OUT)
    if isinstance(reason, urllib3_exceptions.ResponseError):
        return _said(str(reason), code=code)
    first = (str(reason).splitlines() or [""])[0]
    return _said(f"{type(reason).__name__}: {first}" if first else type(reason).__name__,
                 code=code)


def _said(text: str, *, code: str) -> str:
    """What the system said, fit for a message: secrets hidden, code masked, one short line."""
    return redaction.scrub(text, code=code)[:300]
