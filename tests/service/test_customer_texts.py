"""What a customer reads in a refusal: whole sentences (a status word formatted into one
stays English in French), and times to the second."""

from __future__ import annotations

import datetime as dt

import pytest

from ovh_credit_plugin import exceptions, i18n
from ovh_credit_plugin.service import CreditService
from tests.service.test_vouchers import eager, throttled_service

__all__ = ["eager"]
from tests.support.ledgers import T0


@pytest.mark.usefixtures("eager")
def test_a_throttled_try_says_a_whole_second_never_before_it_may_try_again(
        service: CreditService) -> None:
    throttled_service(service, limit=1, window=600)
    at = T0 + dt.timedelta(microseconds=250_000)
    with pytest.raises(exceptions.VoucherRefused):
        service.activate_voucher("p1", "WRONG-1", at=at)
    with pytest.raises(exceptions.TooManyAttempts) as throttled:
        service.activate_voucher("p1", "WRONG-2", at=at)
    allowed = at + dt.timedelta(seconds=throttled.value.retry_after or 0)
    said = str(throttled.value).rsplit("try again after ", 1)[1]
    # As English writes a moment, to the second (CLDR's medium form, in UTC).
    moment = dt.datetime.strptime(said, "%b %d, %Y, %I:%M:%S\u00a0%p\u00a0UTC")
    assert moment.replace(tzinfo=dt.timezone.utc) >= allowed
    assert moment.replace(tzinfo=dt.timezone.utc) - allowed < dt.timedelta(seconds=1)


@pytest.fixture
def lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The REST API's mode: a message stays an oslo_i18n Message until translated.
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", True)


@pytest.mark.usefixtures("lazy")
@pytest.mark.parametrize("state", ["paid", "expired"])
def test_cancelling_an_order_that_is_not_pending_reads_whole_in_french(
        service: CreditService, state: str) -> None:
    order = service.create_order("p1", "10", at=T0)
    if state == "paid":
        service.pay_order(order.id, at=T0)
    with pytest.raises(exceptions.InvalidState) as refused:
        service.cancel_order(order.id, at=T0 + dt.timedelta(days=60))
    message = exceptions.message_of(refused.value)
    french = i18n.translate(message, "fr")
    assert french != i18n.translate(message, "en"), french
    assert state not in french.replace(";", " ").split(), french


@pytest.mark.usefixtures("lazy")
def test_a_throttled_try_says_when_in_the_readers_words_and_logs_rfc_3339() -> None:
    # The REST API's 429 detail wrote « réessayez après le 2035-01-01T12:01:30Z »:
    # a machine's time in a French sentence. Log lines keep RFC 3339.
    import oslo_i18n

    from ovh_credit_plugin.service.voucher_throttle import throttled

    error = throttled(dt.datetime(2035, 1, 1, 12, 0, tzinfo=dt.timezone.utc), 90)
    message = error.args[0]
    assert oslo_i18n.translate(message, "fr") == (
        "trop de tentatives de voucher ont échoué sur ce projet\u00a0: réessayez après le "
        "1 janv. 2035, 12:01:30\u00a0UTC")
    assert oslo_i18n.translate(message, "en") == (
        "too many failed voucher attempts on this project: try again after "
        "Jan 1, 2035, 12:01:30\u00a0PM\u00a0UTC")
    assert str(message).endswith("try again after 2035-01-01T12:01:30Z")
