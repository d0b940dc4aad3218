"""The ``http`` voucher catalog: the remote catalog over HTTP(S).

The wire contract is ``docs/voucher-catalog.openapi.yaml``. What this
client guarantees, and the module that keeps each promise:

* ``transport``: one ``requests.Session`` with an ``HTTPAdapter`` and a
  urllib3 ``Retry``: 429, 500, 502, 503, 504, connection errors and read
  errors are retried with jittered exponential backoff, ``Retry-After`` is
  honoured up to ``max_retry_after``. The redemption POST is retried too:
  its idempotency key makes a replay return the same redemption;
* ``deadline``: a **total deadline** per operation (``timeout``), retries,
  sleeps and body included. Timeouts of each attempt shrink to what is
  left, the body is read chunk by chunk with the deadline checked in
  between (``driver``), and a watchdog shuts the socket down when the
  deadline passes, so even an answer whose headers drip one byte at a time
  cannot outlive it;
* ``resolver``: the endpoint's name is resolved in a small shared pool of
  threads and waited for no longer than the connect timeout (``transport``'s
  connections), so that a hung DNS server cannot outlive the deadline
  either: it fails the attempt as a connect timeout would;
* ``wire``: every answer is validated before it is returned: not JSON, a
  missing field, a bad amount or currency; ``driver``: an answer about
  another code or project. Either is a :class:`~base.CatalogProtocolError`,
  made like every other error in ``errors``;
* ``driver``: a call made for a REST API request carries that request's id
  (``ovh_credit_plugin.request_ids``, set by the API's handlers) as
  ``X-OpenStack-Request-ID``, the same on every attempt, and only when it is
  a ``req-<uuid>``;
* ``redaction``: codes are checked offline before any call and masked in
  every log line (ours and urllib3's); the auth token is never logged nor
  kept in errors, not even when the catalog echoes it back (it is replaced
  by ``***``).

Import direction: ``wire``, ``redaction``, ``deadline`` and ``resolver`` are
leaves; ``transport`` uses ``deadline`` and ``resolver``; ``errors`` uses ``wire`` and
``redaction`` (and reads a ``deadline.Operation`` to say that a deadline
passed); ``driver`` uses them all. The entry point is
``ovh_credit_plugin.catalog.http:HttpVoucherCatalog``.
"""

from __future__ import annotations

from ovh_credit_plugin.catalog.http.driver import HttpVoucherCatalog
from ovh_credit_plugin.catalog.http.wire import (
    AMOUNT_PATTERN,
    CODE_PATTERN,
    CURRENCY_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_BODY_BYTES,
    ErrorDocument,
    RedemptionDocument,
    RedemptionRequest,
    VoucherDocument,
)

__all__ = [
    "AMOUNT_PATTERN",
    "CODE_PATTERN",
    "CURRENCY_PATTERN",
    "IDEMPOTENCY_KEY_PATTERN",
    "MAX_BODY_BYTES",
    "ErrorDocument",
    "HttpVoucherCatalog",
    "RedemptionDocument",
    "RedemptionRequest",
    "VoucherDocument",
]
