"""How an amount is written inside a translated sentence (``i18n.amount``, ``money.in_sentence``).

CLDR's forms through Babel: French ``1 234,50``, English ``1,234.50``; the
French group separator and the space before the currency are U+00A0, as the
dashboard panel (Django) writes them. Exactly the amount's own decimal places,
never rounded or padded, whatever the thread's decimal context. A lazy message
(the REST API) writes its amounts in the language it is translated into, and
keeps the machine form (``1234.50 EUR``) for ``str()``, which log lines quote.
tests/functional/test_amounts_in_sentences.py reads them from the real API and CLI.
"""

from __future__ import annotations

import copy
import decimal
import os
import pickle
import subprocess
import sys
from decimal import Decimal

import pytest

from ovh_credit_plugin import explained, i18n, money
from ovh_credit_plugin.i18n import _

NBSP = "\u00a0"
RANGE = "a credit purchase is between %(lowest)s and %(highest)s excluding tax"


@pytest.fixture
def lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The REST API's mode: a message stays an oslo_i18n Message until translated.
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", True)


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    # A command line's mode; an in-process API test earlier in the session leaves
    # lazy mode on (api.controllers.Runtime turns it on for the process).
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", False)


@pytest.mark.parametrize(("text", "currency", "french", "english"), [
    ("10000.00", "EUR", f"10{NBSP}000,00{NBSP}EUR", f"10,000.00{NBSP}EUR"),
    ("10.00", "EUR", f"10,00{NBSP}EUR", f"10.00{NBSP}EUR"),
    ("0.50", "EUR", f"0,50{NBSP}EUR", f"0.50{NBSP}EUR"),
    ("1234.567", "KWD", f"1{NBSP}234,567{NBSP}KWD", f"1,234.567{NBSP}KWD"),
    ("1234.500", "BHD", f"1{NBSP}234,500{NBSP}BHD", f"1,234.500{NBSP}BHD"),
    ("1500", "JPY", f"1{NBSP}500{NBSP}JPY", f"1,500{NBSP}JPY"),
    # Rated usage below the cent: every digit, none added.
    ("0.123456", "EUR", f"0,123456{NBSP}EUR", f"0.123456{NBSP}EUR"),
    ("999999999999999999.999999", "EUR",
     f"999{NBSP}999{NBSP}999{NBSP}999{NBSP}999{NBSP}999,999999{NBSP}EUR",
     f"999,999,999,999,999,999.999999{NBSP}EUR"),
    # The places written are the text's own, whatever the currency's.
    ("5.00", "JPY", f"5,00{NBSP}JPY", f"5.00{NBSP}JPY"),
])
def test_french_and_english_write_an_amount_with_exactly_its_places(
        text: str, currency: str, french: str, english: str) -> None:
    assert i18n.written(text, currency, "fr") == french
    assert i18n.written(text, currency, "en") == english
    assert i18n.written(Decimal(text), currency, "fr") == french


def test_the_threads_decimal_context_changes_nothing() -> None:
    # A host may lower the precision (prec=6 rounds 1234.567891 to 1234.57) or
    # trap what Babel does; the amount is written as it is all the same.
    with decimal.localcontext(decimal.Context(prec=3, traps=[decimal.Inexact,
                                                            decimal.Rounded])):
        assert i18n.written("123456789012.345678", "EUR", "fr") == (
            f"123{NBSP}456{NBSP}789{NBSP}012,345678{NBSP}EUR")
        assert i18n.written("1234.567891", None, "en") == "1,234.567891"


def test_a_number_without_currency_and_a_language_babel_does_not_know() -> None:
    assert i18n.written("12000", None, "fr") == f"12{NBSP}000"
    assert i18n.written("12000", None, "xx") == "12,000"  # English, the source's
    # Not a plain decimal (a newer server's JSON, say): shown as given.
    assert i18n.written("1e3", "EUR", "fr") == f"1e3{NBSP}EUR"


def test_the_panel_writes_the_same_characters() -> None:
    pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_I18N=True, USE_TZ=True, TIME_ZONE="UTC", LANGUAGE_CODE="en",
                           INSTALLED_APPS=["ovh_credit_plugin.dashboard"])
        import django

        django.setup()
    from django.utils import translation

    from ovh_credit_plugin.dashboard.content.credits.common import money as panel_money

    for text, currency in (("1234.50", "EUR"), ("10000.00", "EUR"), ("1234.567", "KWD"),
                           ("1500", "JPY"), ("0.123456", "EUR")):
        for language in ("fr", "en"):
            with translation.override(language):
                assert panel_money(text, currency) == i18n.written(text, currency, language)


@pytest.mark.usefixtures("eager")
def test_a_command_line_writes_amounts_in_its_own_language_at_once() -> None:
    # The tests run with LANGUAGE=en (tests/__init__.py).
    assert i18n.amount("12345.50", "EUR") == f"12,345.50{NBSP}EUR"
    assert money.in_sentence(Decimal("12345.500000"), "EUR") == f"12,345.50{NBSP}EUR"
    assert money.in_sentence(Decimal("12345.505000"), "EUR") == f"12,345.505{NBSP}EUR"
    assert money.in_sentence(Decimal("500.000000"), "JPY") == f"500{NBSP}JPY"
    assert money.in_sentence(Decimal("5"), "KWD", with_currency=False) == "5.000"
    assert i18n.amount(Decimal("1E+4")) == "10,000"  # a Decimal's own exponent: no places
    assert (_(RANGE) % {"lowest": "5.00", "highest": money.in_sentence(Decimal(10**5), "EUR")}
            == f"a credit purchase is between 5.00 and 100,000.00{NBSP}EUR excluding tax")


@pytest.mark.usefixtures("lazy")
def test_a_lazy_message_writes_its_amounts_in_the_language_it_is_translated_into() -> None:
    message = _(RANGE) % {"lowest": money.in_sentence(Decimal(5), "EUR", with_currency=False),
                          "highest": money.in_sentence(Decimal(100000), "EUR")}
    assert i18n.translate(message, "fr") == (
        f"un achat de crédit cloud est compris entre 5,00 et 100{NBSP}000,00{NBSP}EUR HT")
    assert i18n.translate(message, "en") == (
        f"a credit purchase is between 5.00 and 100,000.00{NBSP}EUR excluding tax")
    # str(): what a log line quotes, the machine form as before.
    assert str(message) == "a credit purchase is between 5.00 and 100000.00 EUR excluding tax"
    # Copied (oslo.i18n snapshots a message's parameters) or pickled, it still knows.
    for again in (copy.deepcopy(message), pickle.loads(pickle.dumps(message))):
        assert i18n.translate(again, "fr") == i18n.translate(message, "fr")
    # Alone, too.
    assert i18n.translate(i18n.amount("1234.5", "EUR"), "fr") == f"1{NBSP}234,5{NBSP}EUR"


@pytest.mark.usefixtures("lazy")
def test_a_settlement_explained_is_written_at_once_even_in_lazy_mode() -> None:
    # explained.sentence is the command lines' table text: rendered now.
    sentence = explained.sentence({"line_id": "c", "credit_id": 2, "kind": "voucher",
                                   "amount": "1234.50", "explanation": None}, "EUR")
    assert sentence.startswith(f"line c: 1,234.50{NBSP}EUR from credit 2 (voucher)")


def test_a_french_process_explains_a_settlement_with_french_numbers() -> None:
    program = (
        "from ovh_credit_plugin import explained\n"
        "print(explained.sentence({'line_id': 'c', 'credit_id': 8, 'kind': 'purchased',\n"
        "    'amount': '12345.678', 'explanation': None}, 'KWD'))\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, env={**env, "LC_ALL": "fr_FR.UTF-8"}, timeout=60)
    assert done.stdout.strip() == (
        f"ligne c{NBSP}: 12{NBSP}345,678{NBSP}KWD du crédit 8 (crédit acheté){NBSP}; "
        "enregistré sans explication")
