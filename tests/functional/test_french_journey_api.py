"""A French customer's refusals, read from the REST API over a socket.

Every error a customer can meet on the way (buying credit, activating a
voucher, reading their lists) answered with ``Accept-Language: fr``: its title
and detail read exactly as pinned here, differ from the English answer to the
same request (an untranslated message, or an English piece inside a French
sentence, would not), keep the error code (clients branch on it) and follow
French typography. The vocabulary is the customer guide's (docs/translations.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.support.api import call, standalone
from tests.support.ledgers import Ledger

NBSP = "\u00a0"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    # The language is the API's business, not the database's.
    return str(request.param)


def member(project: str) -> dict[str, str]:
    return {"X-Project-Id": project, "X-User-Id": f"user-{project}",
            "X-Roles": "member,reader"}


PAYER = {"X-Project-Id": "payments", "X-User-Id": "psp", "X-Roles": "service"}


@dataclass
class Refusal:
    label: str
    method: str
    path: str
    status: int
    code: str
    title: str
    detail: str  # exact; with ``prefix``: how it starts
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    data: bytes | None = None
    prefix: bool = False
    suffix: str = ""


def ask(url: str, refusal: Refusal, language: str) -> requests.Response:
    headers = {**refusal.headers, "Accept-Language": language}
    if refusal.data is not None:
        headers["Content-Type"] = "application/json"
    return call(refusal.method, f"{url}/v1{refusal.path}", headers=headers,
                json_body=refusal.body, data=refusal.data)


def error(response: requests.Response) -> dict[str, Any]:
    return dict(response.json()["errors"][0])


def typography_faults(text: str) -> list[str]:
    """Where ``text`` breaks French typography: an ordinary space, or none, before
    ``: ; ? !``; an ordinary space inside guillemets."""
    faults = re.findall(r"\S* [:;?!]|[^\s\u00a0«][:;?!](?=\s)|« | »", text)
    # What other systems said, quoted as they said it, is not ours to fix.
    return [f for f in faults if not f.startswith(("SSLError", "ovh-credit"))]


def test_every_refusal_on_the_customer_journey_reads_in_french(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        # -- setup: a project billed in EUR with a paid order; a voucher used up.
        buyer = member("buyer")
        order = call("POST", f"{url}/v1/orders", headers=buyer,
                     json_body={"amount": "10", "currency": "EUR"}).json()
        paid = call("POST", f"{url}/v1/orders/{order['id']}/payment", headers=PAYER,
                    json_body={"amount": "10", "currency": "EUR"})
        assert paid.status_code == 200, paid.text
        call("POST", f"{url}/v1/orders", headers={**buyer, "Idempotency-Key": "k1"},
             json_body={"amount": "30"})
        used = call("POST", f"{url}/v1/vouchers", headers=member("first"),
                    json_body={"code": "GPU-ONLY"})
        assert used.status_code == 201, used.text
        # A project guessing codes: refused once it tried too many.
        guesser = member("guesser")
        for attempt in range(5):
            call("POST", f"{url}/v1/vouchers", headers=guesser,
                 json_body={"code": f"GUESS-{attempt:04d}"})

        invalid, amount = "Requête invalide", "Montant invalide"
        refusals = [
            # Buying credit.
            Refusal("too many decimals", "POST", "/orders", 400, "invalid_amount", amount,
                    f"amount{NBSP}: 10.001 a trop de décimales (maximum{NBSP}: 2)",
                    headers=buyer, body={"amount": "10.001", "currency": "EUR"}),
            Refusal("decimals in a currency without", "POST", "/orders", 400, "invalid_amount",
                    amount, f"amount{NBSP}: 10.5 a trop de décimales (maximum{NBSP}: 0)",
                    headers=member("yen"), body={"amount": "10.5", "currency": "JPY"}),
            Refusal("not a number", "POST", "/orders", 400, "invalid_amount", amount,
                    f"amount{NBSP}: 'abc' n'est pas un nombre décimal",
                    headers=buyer, body={"amount": "abc"}),
            Refusal("no amount", "POST", "/orders", 400, "invalid_amount", amount,
                    f"amount{NBSP}: ce champ est obligatoire", headers=buyer, body={}),
            Refusal("below the minimum", "POST", "/orders", 400, "invalid_amount", amount,
                    f"un achat de crédit cloud est compris entre 5,00 et "
                    f"100{NBSP}000,00{NBSP}EUR HT",
                    headers=buyer, body={"amount": "1"}),
            Refusal("above the maximum", "POST", "/orders", 400, "invalid_amount", amount,
                    f"un achat de crédit cloud est compris entre 5,00 et "
                    f"100{NBSP}000,00{NBSP}EUR HT",
                    headers=buyer, body={"amount": "1000000"}),
            Refusal("another currency than the project's", "POST", "/orders", 409,
                    "currency_mismatch", "Devise différente",
                    f"le projet buyer est facturé en EUR, pas en USD{NBSP}: le crédit n'est "
                    "jamais converti (la devise d'un projet est libérée quand il n'a plus de "
                    "crédit ni de bon de commande en attente)",
                    headers=buyer, body={"amount": "10", "currency": "USD"}),
            Refusal("the same key for another order", "POST", "/orders", 409,
                    "idempotency_conflict", "Clé d'idempotence réutilisée",
                    "la clé d'idempotence 'k1' a servi pour une autre demande de bon de "
                    "commande", headers={**buyer, "Idempotency-Key": "k1"},
                    body={"amount": "31"}),
            Refusal("an unknown order", "GET", "/orders/ORD-NOPE", 404, "not_found",
                    "Introuvable", "aucun bon de commande ORD-NOPE", headers=buyer),
            Refusal("another project's order", "GET", f"/orders/{order['id']}", 404,
                    "not_found", "Introuvable", f"aucun bon de commande {order['id']}",
                    headers=member("someone-else")),
            Refusal("cancelling a paid order", "POST", f"/orders/{order['id']}/cancel", 409,
                    "order_not_pending", "Bon de commande non en attente de paiement",
                    f"le bon de commande {order['id']} est déjà payé{NBSP}; seul un bon de "
                    "commande en attente de paiement peut être annulé", headers=buyer),
            # Activating a voucher (each on a project of its own: failures are counted).
            Refusal("an unknown voucher", "POST", "/vouchers", 404, "voucher_unknown",
                    "Voucher inconnu", "ce code de voucher ne peut pas être activé",
                    headers=member("v1"), body={"code": "NOPE-1234"}),
            Refusal("a voucher already used", "POST", "/vouchers", 409, "voucher_redeemed",
                    "Voucher déjà utilisé", "ce code de voucher ne peut pas être activé",
                    headers=member("v2"), body={"code": "GPU-ONLY"}),
            Refusal("a voucher expired or revoked", "POST", "/vouchers", 410,
                    "voucher_expired", "Voucher non valable",
                    "ce code de voucher ne peut pas être activé",
                    headers=member("v3"), body={"code": "REVOKED-1"}),
            Refusal("a voucher in another currency", "POST", "/vouchers", 409,
                    "currency_mismatch", "Devise différente",
                    "ce voucher est en JPY, mais le projet buyer est facturé en EUR",
                    headers=buyer, body={"code": "YEN-1000"}),
            Refusal("a malformed code", "POST", "/vouchers", 400, "invalid_request", invalid,
                    "un code de voucher compte de 4 à 64 lettres, chiffres ou tirets",
                    headers=member("v4"), body={"code": "no!"}),
            Refusal("no code", "POST", "/vouchers", 400, "invalid_request", invalid,
                    f"code{NBSP}: ce champ est obligatoire", headers=member("v5"), body={}),
            Refusal("checking an unknown code", "GET", "/vouchers/NOPE-9999", 404,
                    "voucher_unknown", "Voucher inconnu", "ce code de voucher n'existe pas",
                    headers=member("v6")),
            Refusal("too many wrong codes", "POST", "/vouchers", 429, "voucher_throttled",
                    "Trop de tentatives de voucher",
                    f"trop de tentatives de voucher ont échoué sur ce projet{NBSP}: réessayez "
                    "après le ", headers=guesser, body={"code": "GUESS-9999"}, prefix=True),
            # Reading, and what the customer may not do.
            Refusal("another project's credit list", "GET", "/credits?project_id=other", 403,
                    "forbidden", "Accès refusé",
                    "la politique d'accès n'autorise pas cloud_credit:credit:list sur le "
                    "projet other", headers=buyer),
            Refusal("voiding a credit", "POST", f"/credits/{paid.json()['credit_id']}/void",
                    403, "forbidden", "Accès refusé",
                    "la politique d'accès n'autorise pas cloud_credit:credit:void",
                    headers=buyer, body={"reason": "x"}),
            Refusal("no credentials", "GET", "/credits", 401, "unauthorized",
                    "Authentification requise", "la requête ne porte aucune authentification"),
            Refusal("an unknown credit", "GET", "/credits/99999", 404, "not_found",
                    "Introuvable", "crédit 99999 introuvable", headers=buyer),
            Refusal("a bad marker (orders)", "GET", "/orders?marker=NOPE", 400,
                    "invalid_request", invalid, "marqueur 'NOPE' inconnu", headers=buyer),
            Refusal("a bad marker (credits)", "GET", "/credits?marker=99999", 400,
                    "invalid_request", invalid, "marqueur '99999' inconnu", headers=buyer),
            Refusal("a bad limit", "GET", "/credits?limit=0", 400, "invalid_request", invalid,
                    "limit est un entier de 1 à 1000", headers=buyer),
            Refusal("an unknown parameter", "GET", "/credits?page=2", 400, "invalid_request",
                    invalid, f"paramètre de requête inconnu «{NBSP}page{NBSP}»",
                    headers=buyer),
            Refusal("broken JSON", "POST", "/orders", 400, "invalid_request", invalid,
                    f"JSON mal formé{NBSP}: une valeur est attendue (ligne 1, colonne 12)",
                    headers=buyer, data=b'{"amount": '),
        ]

        wrong = []
        for refusal in refusals:
            french, english = ask(url, refusal, "fr"), ask(url, refusal, "en")
            said, english_said = error(french), error(english)
            got = (french.status_code, said["code"], french.headers.get("Content-Language"))
            if got != (refusal.status, f"cloud_credit.{refusal.code}", "fr"):
                wrong.append(f"{refusal.label}: {got} {said}")
                continue
            detail = said["detail"]
            reads = (detail.startswith(refusal.detail) and detail.endswith(refusal.suffix)
                     if refusal.prefix else detail == refusal.detail)
            if said["title"] != refusal.title or not reads:
                wrong.append(f"{refusal.label}: {said['title']!r} / {detail!r}")
            # Translated, not English passed through (nor an English piece in French).
            if said["title"] == english_said["title"] or detail == english_said["detail"]:
                wrong.append(f"{refusal.label}: the same as in English: {english_said}")
            if english_said["code"] != said["code"]:
                wrong.append(f"{refusal.label}: the code depends on the language")
            faults = typography_faults(f"{said['title']} {detail}")
            if faults:
                wrong.append(f"{refusal.label}: typography {faults}")
        assert wrong == [], "\n".join(wrong)
        assert call("POST", f"{url}/v1/vouchers", headers=guesser,
                    json_body={"code": "GUESS-9999"}).headers.get("Retry-After")


def test_the_typography_check_finds_faults() -> None:
    assert typography_faults("ressource inexistante : x")
    assert typography_faults("ressource inexistante: x")
    assert typography_faults("« page »")
    assert typography_faults("réessayez ; puis")
    assert not typography_faults(f"ressource inexistante{NBSP}: EUR:5 «{NBSP}x{NBSP}»")
