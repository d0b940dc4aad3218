"""The dashboard panel's words and numbers, without Horizon running (tests/integration/
test_dashboard.py drives the panel in a browser).

Only Django is needed (the ``dashboard`` extra): skipped without it.
"""

from __future__ import annotations

import datetime as dt

import pytest

pytest.importorskip("django")

from django.conf import settings

if not settings.configured:
    settings.configure(USE_I18N=True, USE_TZ=True, TIME_ZONE="UTC", LANGUAGE_CODE="en",
                       INSTALLED_APPS=["ovh_credit_plugin.dashboard"])
    import django

    django.setup()

from django.utils import translation

from ovh_credit_plugin.dashboard.content.credits import common
from ovh_credit_plugin.osc.client import CreditAPIError, error_message

NOW = dt.datetime(2035, 1, 1, 10, 0, tzinfo=dt.timezone.utc)


def _throttled(retry_after: str | None) -> CreditAPIError:
    body = (b'{"errors": [{"status": 429, "code": "cloud_credit.voucher_throttled", '
            b'"title": "Too many attempts", "detail": "try again after 2035-01-01T10:20:00Z"}]}')
    headers = {"Retry-After": retry_after} if retry_after else {}
    return error_message(429, body, headers)


def test_the_api_error_keeps_its_words_and_when_to_retry() -> None:
    error = _throttled("1200")
    assert error.code == "cloud_credit.voucher_throttled"
    assert error.retry_after == 1200
    # The server's words without the HTTP status and request id: a customer reads them.
    assert error.text == "Too many attempts: try again after 2035-01-01T10:20:00Z"
    assert _throttled(None).retry_after is None


def test_too_many_tries_says_when_to_try_again() -> None:
    with translation.override("en"):
        words = common.voucher_refusal(_throttled("1200"), now=NOW)
    assert words == ("Too many wrong voucher codes were tried on this project: you can try "
                     "again after Jan. 1, 2035, 10:20 a.m.")
    with translation.override("en"):
        assert common.voucher_refusal(_throttled(None), now=NOW).endswith("Try again later.")


@pytest.mark.parametrize(("code", "words"), [
    ("cloud_credit.voucher_unknown", "This voucher code is unknown"),
    ("cloud_credit.voucher_redeemed", "This voucher has already been used."),
    ("cloud_credit.voucher_expired",
     "This voucher cannot be used: it has expired, was withdrawn or is not valid yet."),
])
def test_each_refusal_in_plain_words(code: str, words: str) -> None:
    with translation.override("en"):
        assert common.voucher_refusal(CreditAPIError("x", code=code)).startswith(words)


def test_another_refusal_shows_the_server_words() -> None:
    error = CreditAPIError("raw (HTTP 400)", code="cloud_credit.invalid_request",
                           text="the server's words")
    assert common.voucher_refusal(error) == "the server's words"


def test_french_words_and_numbers() -> None:
    with translation.override("fr"):
        assert common.voucher_refusal(_throttled("1200"), now=NOW).startswith(
            "Trop de codes de voucher erronés")
        assert common.money("1234.50", "EUR") == "1\xa0234,50\xa0EUR"
        assert common.day("2035-02-01T00:00:00Z") == "1 février 2035"
    with translation.override("en"):
        assert common.money("1234.50", "EUR") == "1,234.50\xa0EUR"
        assert common.money("0.004", "EUR") == "0.004\xa0EUR"
        assert common.day("2035-02-01T00:00:00Z") == "Feb. 1, 2035"
