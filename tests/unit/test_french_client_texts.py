"""What the command lines and the panel write around the server's words, in French.

``openstack rating credit ...`` (osc/): each command's description and every
help text it adds are marked for translation and come out in the language of
the locale (``LANG=fr_FR.UTF-8``); the settlement explanation (explained.py)
names a credit's kind in the reader's words and joins its parts with the
language's « ; »; an API error's title and detail are joined as the language
of the answer writes it (« Montant invalide : ... »), on the command line and
in the dashboard panel alike.

The command lines translate when a message is made, in the language the
process started with: the French runs are processes of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("keystoneauth1")
pytest.importorskip("cliff")

from ovh_credit_plugin import explained, i18n
from ovh_credit_plugin.osc import client as credit_client
from ovh_credit_plugin.osc import noauth, plugin, v1

NBSP = "\u00a0"


def french_process(program: str) -> Any:
    """Runs ``program`` (which prints JSON) under a French locale, as a customer's shell has it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    env["LANG"] = "fr_FR.UTF-8"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, env=env, timeout=120)
    return json.loads(done.stdout)


# -- openstack rating credit ... --help ----------------------------------------------

# Our part of each command's help: its description and the arguments it adds to
# cliff's (the formatter options are cliff's, translated or not by cliff).
HELP_TEXTS = """
import argparse, json
from keystoneauth1 import loading
from ovh_credit_plugin.osc import noauth, plugin, v1

def ours(cls, name):
    command = cls(None, None)
    parser = command.get_parser(name)
    cliffs = {a.dest for a in super(v1._CreditCommand, command).get_parser(name)._actions}
    return {"description": command.get_description(),
            "helps": {a.dest: a.help for a in parser._actions if a.dest not in cliffs},
            "help": parser.format_help()}

texts = {name: ours(cls, "openstack " + name.replace("_", " "))
         for name, cls in sorted(v1.COMMANDS.items())}
option = plugin.build_option_parser(argparse.ArgumentParser())._actions[-1]
texts["--os-cloud-credit-api"] = {"description": "", "helps": {"mode": option.help}, "help": ""}
texts["ovh-credit-noauth"] = {
    "description": "", "help": "",
    "helps": {o.dest: o.help for o in noauth.CreditNoAuthLoader().get_options()
              if o.dest in ("endpoint", "project_id", "user_id", "roles")}}
print(json.dumps(texts))
"""


def english_texts() -> dict[str, Any]:
    # This process's language: the tests run in English (the catalogs' msgids).
    texts: dict[str, Any] = {}
    for name, cls in sorted(v1.COMMANDS.items()):
        command = cls(None, None)
        prog = "openstack " + name.replace("_", " ")
        parser = command.get_parser(prog)
        cliffs = {a.dest for a in super(v1._CreditCommand, command).get_parser(prog)._actions}
        texts[name] = {"description": command.get_description(),
                       "helps": {a.dest: a.help for a in parser._actions
                                 if a.dest not in cliffs}}
    option = plugin.build_option_parser(argparse.ArgumentParser())._actions[-1]
    texts["--os-cloud-credit-api"] = {"description": "", "helps": {"mode": option.help}}
    texts["ovh-credit-noauth"] = {
        "description": "",
        "helps": {o.dest: o.help for o in noauth.CreditNoAuthLoader().get_options()
                  if o.dest in ("endpoint", "project_id", "user_id", "roles")}}
    return texts


@pytest.fixture(scope="module")
def french_help() -> dict[str, Any]:
    return french_process(HELP_TEXTS)


def test_every_description_and_help_text_is_in_french(french_help: dict[str, Any]) -> None:
    english = english_texts()
    assert set(french_help) == set(english)
    helps = [(name, dest) for name, texts in english.items() for dest in texts["helps"]]
    assert len(helps) > 25  # guards the check: the helps were found
    same = [name for name, texts in english.items()
            if texts["description"] and french_help[name]["description"] == texts["description"]]
    same += [f"{name} {dest}" for name, dest in helps
             if french_help[name]["helps"][dest] == english[name]["helps"][dest]]
    assert same == [], "still in English under LANG=fr_FR.UTF-8"
    missing = [f"{name} {dest}" for name, dest in helps if not english[name]["helps"][dest]]
    assert missing == [], "an argument without help"


def test_credit_list_help_reads_in_french(french_help: dict[str, Any]) -> None:
    listing = french_help["rating_credit_list"]
    assert listing["description"] == (
        "Lister les crédits d'un projet (vouchers et crédit acheté) dans l'ordre de "
        "consommation.")
    assert listing["helps"]["status"] == "Uniquement ceux qui ont ce statut"
    assert listing["helps"]["project"] == (
        f"Agir sur ce projet (identifiant) plutôt que sur celui du jeton{NBSP}: administrateurs "
        "uniquement (envoyé dans le paramètre de requête project_id).")
    # What --help prints, its wrapped lines joined back: argparse never breaks a
    # line at a no-break space.
    text = re.sub(r"[ \n]+", " ", listing["help"])
    assert "Lister les crédits d'un projet" in text
    assert f"jeton{NBSP}: administrateurs" in text
    order = french_help["rating_credit_order_create"]
    assert order["helps"]["amount"] == "Montant HT, par exemple 50.00"
    assert order["description"].startswith(f"Acheter du crédit cloud{NBSP}: un bon de commande")
    assert french_help["rating_credit_void"]["description"].startswith("Invalider un crédit")
    assert french_help["rating_credit_order_cancel"]["description"] == (
        "Annuler un bon de commande en attente.")
    assert french_help["--os-cloud-credit-api"]["helps"]["mode"].startswith(
        "Le serveur qui répond aux commandes «\u00a0openstack rating credit\u00a0»")
    assert french_help["ovh-credit-noauth"]["helps"]["roles"] == (
        "Rôles séparés par des virgules (X-Roles), par exemple admin ou service")


def test_in_english_the_help_is_as_written() -> None:
    english = english_texts()
    assert english["rating_credit_list"]["description"] == (
        "List a project's credits (vouchers and purchased credit) in consumption order.")
    assert english["rating_credit_list"]["helps"]["long"] == "Every field"
    assert english["--os-cloud-credit-api"]["helps"]["mode"].endswith(
        "(ovh-credit-api, path /v1). Env: OS_CLOUD_CREDIT_API; clouds.yaml: cloud_credit_api.")


# -- the settlement explained --------------------------------------------------------

ALLOCATIONS = [
    {"line_id": "c", "credit_id": 8, "kind": "purchased", "amount": "30.00",
     "explanation": {"place": 2, "reason": "scope",
                     "order_key": {"kind": "purchased", "valid_until": None,
                                   "created_at": "2026-01-31T10:00:00Z", "credit_id": 8},
                     "skipped": [{"credit_id": 7, "cause": "not_covered", "products": []}]}},
    {"line_id": "d", "credit_id": 2, "kind": "voucher", "amount": "5.00", "explanation": None},
    {"line_id": "e", "credit_id": 3, "kind": "gift", "amount": "1.00", "explanation": None},
]
SENTENCES = f"""
import json
from ovh_credit_plugin import explained
print(json.dumps([explained.sentence(a, "EUR") for a in {ALLOCATIONS!r}]))
"""


def test_the_settlement_explained_in_french_names_the_kind_and_puts_a_no_break_space() -> None:
    purchased, voucher, unknown = french_process(SENTENCES)
    assert purchased == (
        f"ligne c{NBSP}: 30,00{NBSP}EUR du crédit 8 (crédit acheté), rang 2 dans l'ordre de "
        f"consommation (sans date de fin, créé le 2026-01-31T10:00:00Z){NBSP}; le crédit 7 "
        "passe avant mais ne couvre pas le produit de cette ligne")
    assert voucher == (f"ligne d{NBSP}: 5,00{NBSP}EUR du crédit 2 (voucher){NBSP}; "
                       "enregistré sans explication")
    # A kind this client does not know (a newer server's): as the API gives it.
    assert unknown == f"ligne e{NBSP}: 1,00{NBSP}EUR du crédit 3 (gift){NBSP}; enregistré sans " \
        "explication"


def test_the_settlement_explained_in_english_is_unchanged() -> None:
    assert [explained.sentence(a, "EUR") for a in ALLOCATIONS] == [
        f"line c: 30.00{NBSP}EUR from credit 8 (purchased), place 2 in the consumption order "
        "(no end date, created 2026-01-31T10:00:00Z); credit 7 comes first but does not cover "
        "this line's product",
        f"line d: 5.00{NBSP}EUR from credit 2 (voucher); recorded without an explanation",
        f"line e: 1.00{NBSP}EUR from credit 3 (gift); recorded without an explanation",
    ]


def test_every_kind_of_the_contract_has_a_label() -> None:
    from typing import get_args

    from ovh_credit_plugin import contracts

    assert set(get_args(contracts.CreditKind)) == set(explained.KINDS)
    assert {i18n.translate(label, "fr") for label in explained.KINDS.values()} == {
        "voucher", "crédit acheté"}


# -- an API error's title and detail -------------------------------------------------

FRENCH_ERROR = json.dumps({"errors": [{
    "status": 400, "code": "cloud_credit.invalid_amount", "title": "Montant invalide",
    "detail": f"amount{NBSP}: 10.5 a trop de décimales (maximum{NBSP}: 0)",
    "request_id": "req-1"}]}).encode()


@pytest.mark.parametrize("content_language", ["fr", "fr-FR", "fr-CH, en"])
def test_a_french_answer_is_joined_with_a_french_colon(content_language: str) -> None:
    failure = credit_client.error_message(400, FRENCH_ERROR, {"Content-Language":
                                                              content_language})
    assert failure.text == (f"Montant invalide{NBSP}: amount{NBSP}: 10.5 a trop de décimales "
                            f"(maximum{NBSP}: 0)")
    # The header's name in any case (a plain mapping, not requests' headers).
    lower = credit_client.error_message(400, FRENCH_ERROR, {"content-language": "fr"})
    assert lower.text == failure.text


def test_an_english_answer_or_one_that_does_not_say_keeps_the_english_colon() -> None:
    body = json.dumps({"errors": [{"status": 400, "code": "cloud_credit.invalid_amount",
                                   "title": "Invalid amount", "detail": "amount: too precise"}]})
    for headers in ({"Content-Language": "en"}, {}, {"Content-Language": "de"}):
        failure = credit_client.error_message(400, body.encode(), headers)
        assert failure.text == "Invalid amount: amount: too precise"


def test_the_dashboard_shows_the_french_answer_joined_in_french() -> None:
    pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(USE_I18N=True, USE_TZ=True, TIME_ZONE="UTC", LANGUAGE_CODE="en",
                           INSTALLED_APPS=["ovh_credit_plugin.dashboard"])
        import django

        django.setup()
    from django.utils import translation

    from ovh_credit_plugin.dashboard.content.credits import common

    # The panel asked in its user's language; the Horizon process runs in English.
    failure = credit_client.error_message(400, FRENCH_ERROR, {"Content-Language": "fr"})
    with translation.override("fr"):
        assert common.error_text(failure) == (
            f"Montant invalide{NBSP}: amount{NBSP}: 10.5 a trop de décimales "
            f"(maximum{NBSP}: 0)")
