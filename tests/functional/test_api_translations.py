"""The customer reads the API's errors, and the CLI's, in French when they ask for it.

The API picks the language from Accept-Language (oslo.i18n's lazy messages,
translated when the answer is written); the CLI from the locale (LANGUAGE).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from tests.support.api import PROJECT, call, standalone
from tests.support.ledgers import Ledger


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    # The language is the API's business, not the database's.
    return str(request.param)


MEMBER = {"X-Project-Id": PROJECT, "X-User-Id": "alice", "X-Roles": "member,reader"}


def first_error(response: requests.Response) -> dict[str, str]:
    return dict(response.json()["errors"][0])


def test_a_bad_voucher_code_is_answered_in_the_language_asked(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        def activate(code: str, language: str | None) -> requests.Response:
            headers = dict(MEMBER, **({"Accept-Language": language} if language else {}))
            return call("POST", f"{url}/v1/vouchers", headers=headers, json_body={"code": code})

        french = activate("NOPE-1234", "fr-FR,fr;q=0.9,en;q=0.5")
        assert french.status_code == 404
        assert french.headers["Content-Language"] == "fr"
        assert first_error(french)["title"] == "Voucher inconnu"
        assert first_error(french)["detail"] == "ce code de voucher ne peut pas être activé"
        assert first_error(french)["code"] == "cloud_credit.voucher_unknown"  # codes stay

        english = activate("NOPE-1234", None)
        assert english.headers["Content-Language"] == "en"
        assert (first_error(english)["title"], first_error(english)["detail"]) == (
            "Unknown voucher", "this voucher code cannot be activated")

        # The same process answers each request in its own language.
        assert first_error(activate("NOPE-1234", "de, fr;q=0.5"))["title"] == "Voucher inconnu"
        assert first_error(activate("NOPE-1234", "de"))["title"] == "Unknown voucher"


def test_errors_with_values_and_errors_of_the_layers_below_are_translated(
        ledger: Ledger) -> None:
    french = {**MEMBER, "Accept-Language": "fr"}
    with standalone(ledger) as url:
        too_precise = call("POST", f"{url}/v1/orders", headers=french,
                           json_body={"amount": "10.001", "currency": "EUR"})
        assert too_precise.status_code == 400
        assert first_error(too_precise)["title"] == "Montant invalide"
        assert first_error(too_precise)["detail"] == (
            "amount\u00a0: 10.001 a trop de décimales (maximum\u00a0: 2)")

        not_sold = call("POST", f"{url}/v1/orders", headers=french,
                        json_body={"amount": "10", "currency": "GBP"})
        assert not_sold.status_code == 400
        # The customer's words: no option names (those are the operator's, in the log).
        assert first_error(not_sold)["detail"] == "le crédit cloud n'est pas vendu en GBP"

        no_such_route = call("GET", f"{url}/v1/nothing-here", headers=french)
        assert no_such_route.status_code == 404
        assert first_error(no_such_route)["detail"] == (
            "ressource inexistante\u00a0: /v1/nothing-here")

        not_a_member = call("GET", f"{url}/v1/credits?project_id=other", headers=french)
        assert not_a_member.status_code == 403
        assert first_error(not_a_member)["title"] == "Accès refusé"
        assert first_error(not_a_member)["detail"].startswith(
            "la politique d'accès n'autorise pas cloud_credit:credit:list")


def test_the_answers_of_the_layers_below_are_translated_too(ledger: Ledger) -> None:
    french = {**MEMBER, "Accept-Language": "fr"}
    with standalone(ledger) as url:
        # pecan refuses an Accept without JSON before any handler runs.
        xml = call("GET", f"{url}/v1/credits", headers={**french, "Accept": "application/xml"})
        assert xml.status_code == 406
        assert xml.headers["Content-Language"] == "fr"
        assert first_error(xml)["code"] == "cloud_credit.not_acceptable"
        assert (first_error(xml)["title"], first_error(xml)["detail"]) == (
            "Non acceptable",
            "les réponses sont uniquement en application/json, ce que l'en-tête Accept refuse")
        english = call("GET", f"{url}/v1/credits", headers={**MEMBER, "Accept": "text/xml"})
        assert (english.status_code, first_error(english)["detail"]) == (
            406, "answers are application/json only, which the Accept header refuses")

        # What webob cannot decode.
        query = call("GET", f"{url}/v1/credits?status=%ff", headers=french)
        assert query.status_code == 400
        assert (first_error(query)["title"], first_error(query)["detail"]) == (
            "Requête invalide", "les paramètres de requête ne sont pas en UTF-8")
        path = requests.get(f"{url}/v1/orders/%ff", headers=french, timeout=60)
        assert path.status_code == 400
        assert first_error(path)["detail"] == (
            "le chemin de la requête n'est pas en UTF-8\u00a0: /v1/orders/\ufffd")

        # pecan's routing.
        not_allowed = call("DELETE", f"{url}/v1/orders/x", headers=french)
        assert (not_allowed.status_code, not_allowed.headers["Allow"]) == (405, "GET, HEAD")
        assert (first_error(not_allowed)["title"], first_error(not_allowed)["detail"]) == (
            "Méthode non autorisée", "DELETE n'est pas autorisé sur /v1/orders/x")

        huge = call("POST", f"{url}/v1/orders", data=b'{"amount": ' + b"7" * 5000 + b"}",
                    headers={**french, "Content-Type": "application/json"})
        assert huge.status_code == 400
        assert first_error(huge)["detail"] == (
            "JSON mal formé\u00a0: un nombre a trop de chiffres")

        # Python's decoder words its errors in English: ours, with the place.
        broken = call("POST", f"{url}/v1/orders", data=b'{"amount": "10",\n "currency" "EUR"}',
                      headers={**french, "Content-Type": "application/json"})
        assert broken.status_code == 400
        assert first_error(broken)["detail"] == (
            "JSON mal formé\u00a0: «\u00a0:\u00a0» est attendu (ligne 2, colonne 13)")
        english = call("POST", f"{url}/v1/orders", data=b'{"amount": }',
                       headers={**MEMBER, "Content-Type": "application/json"})
        assert first_error(english)["detail"] == (
            "malformed JSON: a value is expected (line 1, column 12)")


@pytest.mark.parametrize(("language", "expected"), [
    ("fr", "ovh-credit: un code de voucher compte de 4 à 64 lettres, chiffres ou tirets"),
    ("en", "ovh-credit: a voucher code is 4 to 64 letters, digits or dashes"),
])
def test_the_cli_speaks_the_language_of_the_locale(ledger: Ledger, language: str,
                                                   expected: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ovh_credit_plugin.cli.app", "--config-file", str(ledger.config),
         "voucher", "activate", PROJECT, "no!"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "LANGUAGE": language},
    )
    assert done.returncode != 0
    assert done.stderr.strip() == expected


PAYER = {"X-Project-Id": "payments", "X-User-Id": "psp", "X-Roles": "service"}


def test_the_descriptions_the_plugin_writes_are_shown_in_the_language_asked(
        ledger: Ledger) -> None:
    french = {**MEMBER, "Accept-Language": "fr"}
    with standalone(ledger) as url:
        order = call("POST", f"{url}/v1/orders", headers=MEMBER,
                     json_body={"amount": "10", "currency": "EUR"}).json()
        paid = call("POST", f"{url}/v1/orders/{order['id']}/payment", headers=PAYER,
                    json_body={"amount": "10", "currency": "EUR"})
        assert paid.status_code == 200, paid.text
        welcome = call("POST", f"{url}/v1/vouchers", headers=french,
                       json_body={"code": "WELCOME-2026"})
        assert welcome.status_code == 201, welcome.text
        # The catalog's own description is the catalog's text: shown as sent.
        assert welcome.json()["description"] == "Welcome voucher"

        listed = call("GET", f"{url}/v1/credits", headers=french)
        assert listed.headers["Content-Language"] == "fr"
        described = {c["kind"]: c["description"] for c in listed.json()["credits"]}
        assert described == {"purchased": f"Crédit cloud (bon de commande {order['id']})",
                             "voucher": "Welcome voucher"}
        english = call("GET", f"{url}/v1/credits", headers=MEMBER).json()["credits"]
        assert {c["kind"]: c["description"] for c in english}["purchased"] == (
            f"Cloud credit (order {order['id']})")

        purchased = next(c for c in listed.json()["credits"] if c["kind"] == "purchased")
        ovh_view = call("GET", f"{url}/v1/ovh/cloud/project/{PROJECT}/credit/{purchased['id']}",
                        headers=french)
        assert ovh_view.json()["description"] == f"Crédit cloud (bon de commande {order['id']})"

        # A voucher the catalog sent no description for: the plugin's, in French.
        yen = {"X-Project-Id": "yen", "X-User-Id": "kenji", "X-Roles": "member,reader",
               "Accept-Language": "fr"}
        activated = call("POST", f"{url}/v1/vouchers", headers=yen,
                         json_body={"code": "YEN-1000"})
        assert activated.status_code == 201, activated.text
        assert activated.json()["description"] == "Voucher YE…"
        assert activated.headers["Content-Language"] == "fr"

    # The ledger keeps the source language: every tool reading it reads the same.
    stored = ledger.service().list_credits(PROJECT)
    assert {c.kind: c.description for c in stored}["purchased"] == (
        f"Cloud credit (order {order['id']})")


def test_problems_with_the_shape_of_a_body_are_translated(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        def activate(body: dict[str, object], language: str) -> dict[str, str]:
            return first_error(call("POST", f"{url}/v1/vouchers",
                                    headers={**MEMBER, "Accept-Language": language},
                                    json_body=body))

        assert activate({}, "fr")["detail"] == "code\u00a0: ce champ est obligatoire"
        assert activate({}, "en")["detail"] == "code: this field is required"
        assert activate({"code": "WELCOME-2026", "coupon": 1}, "fr")["detail"] == (
            "coupon\u00a0: champ inconnu")
        assert activate({"code": 12}, "fr")["detail"] == (
            "code\u00a0: une chaîne de caractères est attendue")


def test_the_cli_shows_errors_and_descriptions_in_the_language_of_the_locale(
        ledger: Ledger) -> None:
    service = ledger.service()
    order = service.create_order(PROJECT, "10")
    service.pay_order(order.id)

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ovh_credit_plugin.cli.app", "--config-file",
             str(ledger.config), *args],
            capture_output=True, text=True, timeout=120, check=False, input=stdin,
            env={**os.environ, "LANGUAGE": "fr"},
        )

    refused = cli("credit", "list", PROJECT, "--summary", "--long")
    assert refused.returncode != 0
    assert refused.stderr.strip() == (
        "ovh-credit: --summary et --long ne vont pas ensemble\u00a0: le résumé a ses propres "
        "colonnes")
    listed = cli("credit", "list", PROJECT, "-f", "value", "-c", "description")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == f"Crédit cloud (bon de commande {order.id})"

    # Python's decoder words its errors in English: the line is refused in French.
    broken = cli("settle", "-", "-f", "json", stdin='{"id": "I1",\n "lines": [}\n')
    assert broken.returncode != 0
    assert broken.stderr.strip() == ("ovh-credit: l'entrée n'est pas du JSON valide\u00a0: "
                                     "une valeur est attendue (ligne 2, colonne 12)")
    lines = cli("settle", "-", "-f", "json", stdin='{"id": "I1"}\n\n{"id": \n')
    assert json.loads(lines.stdout)[1]["error"] == (
        "la ligne 3 n'est pas du JSON valide\u00a0: une valeur est attendue (ligne 3, "
        "colonne 8)")
    assert lines.stderr.strip() == (
        "ovh-credit: les 2 factures sont refusées, aucune n'est réglée (l'erreur de "
        "chaque refus est dans la sortie)")
    huge = cli("settle", "-", "-f", "json", stdin='{"id": "I1"}\n{"id": ' + "7" * 5000 + "}\n")
    assert json.loads(huge.stdout)[1]["error"] == (
        "la ligne 2 n'est pas du JSON valide\u00a0: un nombre a trop de chiffres")
