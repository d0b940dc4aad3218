"""Codes and tokens out of logs and errors.

Codes are masked in every log line (ours and urllib3's, whose retry
warnings name the URL) and in every message; the auth token is never
logged nor kept in errors, not even when the catalog echoes it back: it
is replaced by ``***`` wherever text taken from an answer goes.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from decimal import Decimal

from ovh_credit_plugin.catalog import base

HIDDEN = "***"

_CODE_IN_PATH = re.compile(r"(/v1/vouchers/)([A-Za-z0-9%._~-]+)")


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


def add_secret(secret: str) -> None:
    """Hide ``secret`` from now on, in this process (a driver's auth token)."""
    _SECRETS.add(secret)


def hide(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    return _SECRETS.hide(text)


def _mask_paths(text: str) -> str:
    return _CODE_IN_PATH.sub(lambda m: m.group(1) + base.mask_code(m.group(2)), text)


def scrub(text: str, *, code: str) -> str:
    """``text`` fit for a message: secrets hidden, ``code`` masked, also in URL paths."""
    # Tokens first: masking the code inside one would leave the rest of it.
    return _mask_paths(_SECRETS.hide(text).replace(code, base.mask_code(code)))


def safe_header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value as one short printable line, secrets hidden; None when absent or empty."""
    value = headers.get(name)
    if value is None:
        return None
    # One short printable line: it ends up in error messages. Hidden before
    # it is cut, or the cut could leave a token's first characters.
    value = _SECRETS.hide("".join(c for c in value if c.isprintable()))[:128].strip()
    return value or None


def decoded_body(body: bytes) -> object:
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


def install_log_filter() -> None:
    """Mask codes and hide secrets in urllib3's log lines (idempotent)."""
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
