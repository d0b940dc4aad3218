"""``money.WITHDRAWN_PLACES`` keeps up with the ``iso4217`` package.

A ledger may hold any currency with a minor unit that a release of ``iso4217`` the
packaging accepts (``>= 1.11``) listed. When a newer release drops one (CI pins the
package; ``.ci/freeze-constraints`` bumps it), this fails and names it: its credits
would no longer read (tests/service/test_withdrawn_currency.py).
"""

from __future__ import annotations

import pytest
from iso4217 import Currency

from ovh_credit_plugin import exceptions, money

# Every code with a minor unit in iso4217 1.11.20220401 to 1.16.20260101 (none of them
# changed its minor unit between those releases).
LISTED_SINCE_1_11 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL
BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF
DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG
HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN
NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG
SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAD XAF XCD XCG XOF XPF YER ZAR
ZMW ZWG ZWL
""".split())  # noqa: SIM905 - the table as a block reads best


def test_every_currency_a_ledger_may_hold_still_has_its_decimals() -> None:
    listed_now = {currency.code for currency in Currency}
    dropped = sorted(LISTED_SINCE_1_11 - listed_now - set(money.WITHDRAWN_PLACES))
    assert not dropped, (
        f"iso4217 no longer lists {dropped}: add them to money.WITHDRAWN_PLACES with "
        "their minor unit from the release before")
    for code in LISTED_SINCE_1_11:
        assert money.held_places(code) >= 0


@pytest.mark.parametrize("code", sorted(money.WITHDRAWN_PLACES))
def test_a_withdrawn_currency_takes_no_new_money(code: str) -> None:
    # Shown from the table, never accepted: an order, a voucher, a charge or the
    # configuration check it with check_currency / currency_places.
    with pytest.raises(exceptions.InvalidCurrency):
        money.check_currency(code)
    assert money.held_places(code) == money.WITHDRAWN_PLACES[code]
