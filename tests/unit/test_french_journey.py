"""What a French customer reads: the catalogs' French, checked as a whole.

tests/unit/test_translations.py checks that every marked message has a French
text keeping its placeholders; here, that the French reads right: the
vocabulary of the customer guide the product comes from (« Ajouter du crédit
cloud »: crédit cloud, voucher, bon de commande, HT), French typography (a
no-break space before « : ; ? ! » and inside « »), no count before a noun that
would need a plural form (unless it is a plural form, ``i18n.ngettext``), and no entry
left empty, fuzzy or obsolete in either
catalog (the plugin's and the dashboard panel's), compiled as written.
tests/functional/test_french_journey_api.py reads the REST API's answers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages import mofile, pofile
from babel.messages.catalog import Catalog

from ovh_credit_plugin import exceptions, i18n, money

PACKAGE = Path(i18n.__file__).parent
CATALOGS = {
    "plugin": PACKAGE / "locale" / "fr" / "LC_MESSAGES" / "ovh_credit_plugin.po",
    "dashboard": PACKAGE / "dashboard" / "locale" / "fr" / "LC_MESSAGES" / "django.po",
}
NBSP = "\u00a0"
# Placeholders of both domains: oslo.i18n's named ones, Django's "%s".
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|%s")


def _read(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return pofile.read_po(handle, locale="fr")


def french_texts() -> list[tuple[str, str, str]]:
    """(catalog, English, French) for every message of both catalogs; a message with a
    count once per French form, with the English it is for (the French form [0], for 0
    and 1, with the singular; the others with the plural)."""
    found = []
    for name, path in CATALOGS.items():
        for message in _read(path):
            if not message.id:
                continue
            if isinstance(message.id, tuple):
                singular, plural = message.id
                found.extend((name, singular if n == 0 else plural, str(form))
                             for n, form in enumerate(message.string))
            else:
                found.append((name, str(message.id), str(message.string)))
    return found


TEXTS = french_texts()
#: The French forms for counts of 2 and more: a count before a plural noun is right there.
PLURAL_FORMS = {(name, english, french) for name, path in CATALOGS.items()
                for message in _read(path) if isinstance(message.id, tuple)
                for english, french in [(message.id[1], form) for form in message.string[1:]]}


def test_the_catalogs_are_read() -> None:
    # Guards the tests below: catalogs read as empty would pass them.
    assert {name for name, _en, _fr in TEXTS} == set(CATALOGS)
    assert len(TEXTS) > 300


@pytest.mark.parametrize("name", sorted(CATALOGS))
def test_no_entry_is_empty_fuzzy_or_obsolete(name: str) -> None:
    catalog = _read(CATALOGS[name])
    forms = {m.id: [m.string] if isinstance(m.string, str) else list(m.string)
             for m in catalog if m.id}
    assert [m.id for m in catalog if m.id and (not all(forms[m.id]) or m.fuzzy)] == []
    # A message with a count has every form the catalog's Plural-Forms names.
    assert {len(f) for i, f in forms.items() if isinstance(i, tuple)} <= {catalog.num_plurals}
    # A message the code no longer has: tools/update_catalogs.py drops it.
    assert list(catalog.obsolete) == []


@pytest.mark.parametrize("name", sorted(CATALOGS))
def test_the_compiled_catalog_is_the_written_one(name: str) -> None:
    # A .po edited but not compiled: the customer still reads the old French.
    def forms(string: Any) -> Any:
        return string if isinstance(string, str) else tuple(string)

    written = {forms(m.id): forms(m.string) for m in _read(CATALOGS[name]) if m.id}
    with CATALOGS[name].with_suffix(".mo").open("rb") as handle:
        compiled = {forms(m.id): forms(m.string) for m in mofile.read_mo(handle) if m.id}
    assert compiled == written


def test_every_french_text_keeps_the_placeholders_of_both_domains() -> None:
    for _name, english, french in TEXTS:
        assert sorted(PLACEHOLDER.findall(french)) == sorted(PLACEHOLDER.findall(english)), \
            english


# -- typography ----------------------------------------------------------------------

# A high punctuation mark after an ordinary space, or after no space at all
# (a word, a placeholder, a closing bracket right before it). Not a colon inside
# a token ("EUR:5", "cloud_credit:credit:list", "postgresql+psycopg://").
_ORDINARY_SPACE_BEFORE = re.compile(r" [:;?!]")
_NO_SPACE_BEFORE = re.compile(r"[^\s\u00a0«][:;?!](?=[\s\u00a0]|$)")
# Text quoted as written elsewhere: JSON (« {"vouchers": [...]} »).
_QUOTED = re.compile(r"\{[^{}]*\}")


def test_a_no_break_space_before_high_punctuation_and_inside_guillemets() -> None:
    wrong = []
    for _name, english, french in TEXTS:
        text = _QUOTED.sub("", french)
        if (_ORDINARY_SPACE_BEFORE.search(text) or _NO_SPACE_BEFORE.search(text)
                or "« " in text or " »" in text
                or re.search(r"«[^\u00a0]", text) or re.search(r"[^\u00a0]»", text)):
            wrong.append(english)
    assert wrong == [], "French typography (tools/fr_typography.py): " + "; ".join(wrong)


def test_the_typography_check_finds_what_it_looks_for() -> None:
    # Guards the test above.
    for bad in ("ressource inexistante : x", "ressource inexistante: x", "« x »",
                "réessayez ; puis", "vraiment ?"):
        text = _QUOTED.sub("", bad)
        assert (_ORDINARY_SPACE_BEFORE.search(text) or _NO_SPACE_BEFORE.search(text)
                or "« " in text or " »" in text), bad
    good = f"ressource inexistante{NBSP}: EUR:5, «{NBSP}x{NBSP}» {{\"a\": 1}}"
    assert not (_ORDINARY_SPACE_BEFORE.search(_QUOTED.sub("", good))
                or _NO_SPACE_BEFORE.search(_QUOTED.sub("", good)))


# -- vocabulary ----------------------------------------------------------------------

def _words(text: str) -> str:
    # Option and section names are not words a customer reads.
    return re.sub(r"\[?voucher_catalog\]?|\bvoided\b(?=[,)])", "", text)


def test_a_voucher_is_a_voucher_as_in_the_guide() -> None:
    # The guide says « Activer un voucher », « le code du voucher », « Crédits &
    # Vouchers »: never « bon d'achat » (an OVHcloud customer never met that word).
    assert [f for _n, _e, f in TEXTS if re.search(r"bons? d.achat", f, re.I)] == []
    lost = [english for _n, english, french in TEXTS
            if re.search(r"\bvouchers?\b", _words(english), re.I)
            and not re.search(r"\bvouchers?\b", _words(french), re.I)]
    assert lost == []


def test_a_purchase_order_is_a_bon_de_commande() -> None:
    orders = [(english, french) for _n, english, french in TEXTS
              if re.search(r"\b(purchase )?orders?\b",
                           re.sub(r"consumption order|in the order", "", english))]
    assert len(orders) > 10
    assert [english for english, french in orders if "commande" not in french] == []


def test_void_and_cancel_are_two_french_words() -> None:
    # A credit is voided (« invalidé »), an order cancelled (« annulé »): Horizon's
    # own Cancel button is « Annuler », beside the void form's submit button.
    for _name, english, french in TEXTS:
        if re.search(r"\bvoid", english, re.I):
            assert "invalid" in french.lower() and "annul" not in french.lower(), english
        if re.search(r"\bcancel", english, re.I):
            assert "annul" in french.lower(), english


@pytest.mark.parametrize(("english", "french"), [
    # The guide's own words for what the customer clicks and reads.
    ("Credits & Vouchers", "Crédits & Vouchers"),
    ("Add credit", "Acheter du crédit cloud"),
    ("Create the purchase order", "Générer un bon de commande"),
    ("Add a voucher", "Activer un voucher"),
    ("Activate", "Valider"),
    ("Voucher", "Voucher"),
    ("Void", "Invalider"),
    ("Cancelled", "Annulé"),
    ("Voided", "Invalidé"),
    ("Status", "Statut"),  # Horizon's French for every other table
])
def test_the_panel_speaks_the_guide(english: str, french: str) -> None:
    panel = {e: f for name, e, f in TEXTS if name == "dashboard"}
    assert panel[english] == french


def test_amounts_are_before_tax_where_a_customer_chooses_one() -> None:
    texts = {e: f for _n, e, f in TEXTS}
    assert texts["a credit purchase is between %(lowest)s and %(highest)s excluding tax"] \
        .endswith("%(highest)s HT")
    assert "(HT)" in texts["The amount of credit to buy, before tax. You pay it on the payment "
                           "page; the credit appears once paid."]


# -- counts and plurals --------------------------------------------------------------

# A count right before a noun in the plural reads wrong for 0 and 1 (« 1 décimales »).
# These counts are never 0 or 1: a body limit in bytes, a key's length over its
# limit, a number of pages past the client's cap, the panel's months of validity (one
# month has a message of its own).
ALWAYS_MANY = {"limit", "length", "pages", "months"}
_COUNT_THEN_NOUN = re.compile(r"%\((\w+)\)[ds] ([^\W\d_]+[sx])\b")
_NOT_NOUNS = {"dans", "après", "sans", "sous", "plus", "pas"}


def test_no_count_stands_before_a_plural_noun() -> None:
    found = [(english, match.group(0))
             for name, english, french in TEXTS if (name, english, french) not in PLURAL_FORMS
             for match in _COUNT_THEN_NOUN.finditer(french)
             if match.group(1) not in ALWAYS_MANY and match.group(2) not in _NOT_NOUNS]
    assert found == []
    # Guards it: the check finds what it looks for.
    assert _COUNT_THEN_NOUN.search("a plus de %(places)d décimales")


@pytest.fixture
def lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The REST API's mode: a message stays an oslo_i18n Message until translated.
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", True)


def _refusal(value: str, places: int) -> str:
    with pytest.raises(exceptions.InvalidAmount) as refused:
        money.parse_amount(value, places=places)
    return i18n.translate(exceptions.message_of(refused.value), "fr")


@pytest.mark.usefixtures("lazy")
@pytest.mark.parametrize(("value", "places", "french"), [
    ("10.5", 0, "amount\u00a0: 10.5 a trop de décimales (maximum\u00a0: 0)"),  # JPY
    ("10.001", 2, "amount\u00a0: 10.001 a trop de décimales (maximum\u00a0: 2)"),  # EUR
    ("0", 2, "amount\u00a0: un montant supérieur à zéro est attendu"),
    ("-3", 2, "amount\u00a0: -3 est négatif, ce qui n'est pas permis"),
    ("abc", 2, "amount\u00a0: 'abc' n'est pas un nombre décimal"),
])
def test_an_amount_refused_reads_right_in_french(value: str, places: int, french: str) -> None:
    assert _refusal(value, places) == french


def test_the_descriptions_a_customer_reads_on_credits() -> None:
    # Stored in English, shown in the reader's language (descriptions.localized).
    from ovh_credit_plugin import descriptions

    assert i18n.translate(descriptions.PURCHASED, "fr") % {"order": "ORD-1"} == \
        "Crédit cloud (bon de commande ORD-1)"
    assert i18n.translate(descriptions.VOUCHER, "fr") % {"code": "WEL…6"} == "Voucher WEL…6"


# -- the panel, in Django ------------------------------------------------------------

def _django_fr() -> Any:
    pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_I18N=True, USE_TZ=True, TIME_ZONE="UTC", LANGUAGE_CODE="en",
                           INSTALLED_APPS=["ovh_credit_plugin.dashboard"])
        import django

        django.setup()
    from django.utils import translation

    return translation


def test_the_panel_warns_of_credit_expiring_in_french() -> None:
    translation = _django_fr()
    with translation.override("fr"):
        warning = translation.gettext(
            "%(amount)s of your credit will expire unused on %(date)s: at your current usage "
            "it will not be spent before then.") % {"amount": "1,00\u00a0EUR",
                                                    "date": "1 février 2035"}
        places = translation.gettext(
            "%(currency)s amounts have at most %(places)d decimals.") % {
                "currency": "JPY", "places": 0}
    # Whatever the amount (1,00 EUR or 60,00 EUR): nothing agrees with it.
    assert warning == ("Votre crédit perdra 1,00\u00a0EUR à son expiration le 1 février 2035"
                       "\u00a0: à votre consommation actuelle, ce montant ne sera pas dépensé "
                       "d'ici là.")
    assert places == "Nombre maximal de décimales d'un montant en JPY\u00a0: 0."


def test_a_message_with_a_count_is_made_in_lazy_mode_too(lazy: None) -> None:
    # oslo.i18n's lazy plural message raises ValueError when made: a command's
    # count line would fail in a process (a test run) that enabled lazy mode.
    singular = "%(total)d invoice refused, none settled (its error is in the output)"
    plural = "all %(total)d invoices refused, none settled (each refusal's error is in the output)"
    assert i18n.ngettext(singular, plural, 1) % {"total": 1} == (
        "1 invoice refused, none settled (its error is in the output)")
    assert i18n.ngettext(singular, plural, 3) % {"total": 3} == (
        "all 3 invoices refused, none settled (each refusal's error is in the output)")
