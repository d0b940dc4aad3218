"""A French-speaking customer's walk through the REST API and ``openstack rating credit``.

Every customer operation asked with ``Accept-Language: fr`` (the API over a socket)
or a French locale (the real ``openstack`` program): what is meant for people reads in
French with French typography and French numbers, what a program reads (codes, JSON
keys, enum values, JSON amounts) stays as it is in English. The refusals
tests/functional/test_french_journey_api.py pins word for word are not repeated here:
these are the others a customer meets (bad amounts and bodies, the settlements view,
HTTP-level refusals, used-up and lapsed things), checked for what any French answer
must be, and the places where the review found the French (or the English) wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.functional.test_french_journey_api import typography_faults
from tests.support import api_stack
from tests.support.api import call, standalone
from tests.support.ledgers import VOUCHERS, Ledger

NBSP = "\u00a0"
UTC = dt.timezone.utc
PAYER = {"X-Project-Id": "payments", "X-User-Id": "psp", "X-Roles": "service"}

# More vouchers than the shared catalog file has: each way a code can be unusable.
MORE_VOUCHERS = [
    {"code": "USEDUP-1", "amount": "5.00", "currency": "EUR", "status": "exhausted",
     "products": [], "description": "Used up"},
    {"code": "OLD-2020", "amount": "5.00", "currency": "EUR", "status": "active",
     "valid_from": None, "valid_until": "2020-01-01T00:00:00Z", "validity_days": None,
     "products": [], "max_redemptions": None, "redemptions": 0, "description": "Old"},
    {"code": "FUTURE-2099", "amount": "5.00", "currency": "EUR", "status": "active",
     "valid_from": "2099-01-01T00:00:00Z", "valid_until": None, "validity_days": 30,
     "products": [], "max_redemptions": None, "redemptions": 0, "description": "Later"},
]

# English words that have no business in a French sentence (whole words, any case).
ENGLISH = re.compile(r"\b(the|is|are|must|not|of|and|be|with|only|this|than|from|should|"
                     r"cannot|does|given|expected|unknown|invalid|allowed|too)\b",
                     re.IGNORECASE)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    # The language is the API's business, not the database's.
    return str(request.param)


@pytest.fixture
def catalog_ledger(ledger: Ledger) -> Ledger:
    """``ledger`` whose voucher file also holds :data:`MORE_VOUCHERS`."""
    vouchers = json.loads(json.dumps(VOUCHERS))
    vouchers["vouchers"].extend(MORE_VOUCHERS)
    ledger.vouchers.write_text(json.dumps(vouchers))
    return ledger


def member(project: str, language: str | None = None) -> dict[str, str]:
    headers = {"X-Project-Id": project, "X-User-Id": f"user-{project}",
               "X-Roles": "member,reader"}
    return {**headers, "Accept-Language": language} if language else headers


def error(response: requests.Response) -> dict[str, Any]:
    return dict(response.json()["errors"][0])


@dataclass
class Ask:
    label: str
    method: str
    path: str
    status: int
    project: str = "walker"
    body: Any = None
    data: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, url: str, language: str) -> requests.Response:
        headers = {**member(self.project, language), **self.headers}
        if self.data is not None:
            headers.setdefault("Content-Type", "application/json")
        return call(self.method, f"{url}/v1{self.path}", headers=headers,
                    json_body=self.body, data=self.data)


# -- every other refusal a customer meets, in French ------------------------------------


def test_the_other_refusals_of_the_walk_read_in_french(catalog_ledger: Ledger) -> None:
    now = dt.datetime.now(UTC)
    service = catalog_ledger.service(clock=lambda: now)
    try:
        lapsed = service.create_order("walker", "10", at=now - dt.timedelta(days=30))
    finally:
        service.close()
    asks = [
        # Buying credit with amounts a person might type.
        Ask("an exponent", "POST", "/orders", 400, body={"amount": "1e3"}),
        Ask("a negative amount", "POST", "/orders", 400, body={"amount": "-5"}),
        Ask("zero", "POST", "/orders", 400, body={"amount": "0"}),
        Ask("nothing", "POST", "/orders", 400, body={"amount": ""}),
        Ask("a huge number", "POST", "/orders", 400, body={"amount": "9" * 30}),
        Ask("a JSON number", "POST", "/orders", 400, body={"amount": 10}),
        Ask("an unknown currency", "POST", "/orders", 400,
            body={"amount": "10", "currency": "XYZ"}),
        Ask("a currency in lower case", "POST", "/orders", 400,
            body={"amount": "10", "currency": "eur"}),
        Ask("a field in French", "POST", "/orders", 400, body={"amount": "10", "montant": 1}),
        # Bodies.
        Ask("a field twice", "POST", "/orders", 400, data=b'{"amount":"10","amount":"11"}'),
        Ask("NaN", "POST", "/orders", 400, data=b'{"amount": NaN}'),
        Ask("a JSON array", "POST", "/orders", 400, data=b'["10"]'),
        Ask("an empty body", "POST", "/orders", 400, data=b""),
        Ask("a trailing comma", "POST", "/orders", 400, data=b'{"amount": "10",}'),
        Ask("not JSON", "POST", "/orders", 400, data=b'{"amount":"10"}',
            headers={"Content-Type": "text/plain"}),
        # The order's life.
        Ask("cancelling a lapsed order", "POST", f"/orders/{lapsed.id}/cancel", 409),
        Ask("an order status in French", "GET", "/orders?status=payé", 400),
        # Vouchers that cannot be used.
        Ask("a used-up voucher", "POST", "/vouchers", 409, project="used",
            body={"code": "USEDUP-1"}),
        Ask("a voucher past its end", "POST", "/vouchers", 410, project="old",
            body={"code": "OLD-2020"}),
        Ask("a code with a space inside", "POST", "/vouchers", 400, project="space",
            body={"code": "WELCOME 2026"}),
        # The settlements view.
        Ask("an invoice never settled", "GET", "/settlements?invoice=INV-1", 404),
        Ask("neither invoice nor key", "GET", "/settlements", 400),
        Ask("both invoice and key", "GET", "/settlements?invoice=a&key=b", 400),
        Ask("explain in French", "GET", "/settlements?invoice=a&explain=oui", 400),
        Ask("a key with a project", "GET", "/settlements?key=k&project_id=walker", 400),
        Ask("another project's settlement key", "GET", "/settlements?key=invoice/x/I", 404),
        # What HTTP itself refuses.
        Ask("a method a credit does not have", "DELETE", "/credits/1", 405),
        Ask("XML only", "GET", "/credits", 406, headers={"Accept": "application/xml"}),
        Ask("a body too large", "POST", "/orders", 413, data=b'{"amount": "' + b"1" * 70000
            + b'"}'),
        Ask("a query parameter twice", "GET", "/credits?limit=1&limit=2", 400),
        Ask("a query parameter too long", "GET", "/credits?marker=" + "x" * 300, 400),
        Ask("a credit status in French", "GET", "/credits?status=actif", 400),
        Ask("no such path", "GET", "/credit", 404),
    ]
    wrong = []
    with standalone(catalog_ledger) as url:
        for ask in asks:
            french, english = ask.send(url, "fr"), ask.send(url, "en")
            if (french.status_code, english.status_code) != (ask.status, ask.status):
                wrong.append(f"{ask.label}: HTTP {french.status_code}/{english.status_code}")
                continue
            said, english_said = error(french), error(english)
            if french.headers.get("Content-Language") != "fr":
                wrong.append(f"{ask.label}: Content-Language {french.headers}")
            if said["code"] != english_said["code"] or not said["code"].startswith(
                    "cloud_credit."):
                wrong.append(f"{ask.label}: codes {said['code']} / {english_said['code']}")
            for part in ("title", "detail"):
                if said[part] == english_said[part]:
                    wrong.append(f"{ask.label}: {part} not translated: {said[part]!r}")
                if ENGLISH.search(said[part]):
                    wrong.append(f"{ask.label}: English in the French {part}: {said[part]!r}")
            faults = typography_faults(f"{said['title']} {said['detail']}")
            if faults:
                wrong.append(f"{ask.label}: typography {faults} in {said['detail']!r}")
    assert wrong == [], "\n".join(wrong)


def test_the_body_limit_is_written_as_the_reader_writes_numbers(ledger: Ledger) -> None:
    # A byte count in a sentence, as any number there: « 65 536 » in French (a no-break
    # space between the groups, as the amounts), 65,536 in English.
    body = b'{"amount": "' + b"1" * 70000 + b'"}'
    with standalone(ledger) as url:
        answers = {language: call("POST", f"{url}/v1/orders", data=body, headers={
            **member("big", language), "Content-Type": "application/json"})
            for language in ("fr", "en")}
    assert {language: (answer.status_code, error(answer)["detail"])
            for language, answer in answers.items()} == {
        "fr": (413, f"le corps de la requête dépasse 65{NBSP}536 octets"),
        "en": (413, "the request body is larger than 65,536 bytes"),
    }


# -- what a program reads stays as it is -----------------------------------------------


def test_french_answers_keep_the_machine_fields_as_they_are(ledger: Ledger) -> None:
    now = dt.datetime.now(UTC)
    service = ledger.service(clock=lambda: now)
    try:
        order = service.create_order("fr-project", "1234.50", at=now)
        paid = service.pay_order(order.id, amount="1234.50", currency="EUR", at=now)
    finally:
        service.close()
    french = member("fr-project", "fr")
    with standalone(ledger) as url:
        activated = call("POST", f"{url}/v1/vouchers", headers=french,
                         json_body={"code": "WELCOME-2026"})
        credits = call("GET", f"{url}/v1/credits", headers=french)
        preview = call("GET", f"{url}/v1/vouchers/GPU-ONLY", headers=french)
        forecast = call("GET", f"{url}/v1/forecast", headers=french)
        orders = call("GET", f"{url}/v1/orders", headers=french)
        ovh = call("GET", f"{url}/v1/ovh/cloud/project/fr-project/credit/{paid.credit_id}",
                   headers=french)
    assert activated.status_code == 201, activated.text
    listed = credits.json()["credits"]
    # Words for people in French...
    assert credits.headers["Content-Language"] == "fr"
    assert [c["description"] for c in listed] == [
        "Welcome voucher", f"Crédit cloud (bon de commande {order.id})"]
    # ...the rest as any program expects it, whatever the language.
    assert [(c["kind"], c["status"], c["currency"], c["total"], c["available"])
            for c in listed] == [("voucher", "active", "EUR", "50.00", "50.00"),
                                 ("purchased", "active", "EUR", "1234.50", "1234.50")]
    assert set(listed[1]) == {"id", "project_id", "kind", "description", "source", "currency",
                              "total", "used", "expired", "voided", "available", "valid_from",
                              "valid_until", "status", "products"}
    assert [(o["status"], o["amount"]) for o in orders.json()["orders"]] == [
        ("paid", "1234.50")]
    assert (preview.json()["amount"], preview.json()["redeemable"]) == ("20.00", True)
    assert forecast.json()["available"] == "1284.50"
    # OVH's number stays a JSON number with a decimal point, its text OVH's.
    shown = json.loads(ovh.text, parse_float=Decimal)
    assert shown["total_credit"] == {"currencyCode": "EUR", "text": "1234.50 €",
                                     "value": Decimal("1234.50")}
    assert shown["description"] == f"Crédit cloud (bon de commande {order.id})"


# -- what the review found wrong outside the API's and the clients' own code -------------


def test_a_decimal_comma_is_told_to_be_a_point(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        said = {language: error(call("POST", f"{url}/v1/orders", json_body={"amount": "10,5"},
                                     headers=member("comma", language)))["detail"]
                for language in ("fr", "en")}
    assert "n'est pas un nombre décimal" not in said["fr"] and "point" in said["fr"], said
    assert "is not a decimal number" not in said["en"] and "point" in said["en"], said


def test_a_voucher_not_valid_yet_is_not_called_expired(catalog_ledger: Ledger) -> None:
    with standalone(catalog_ledger) as url:
        said = {language: error(call("POST", f"{url}/v1/vouchers",
                                     json_body={"code": "FUTURE-2099"},
                                     headers=member(f"future-{language}", language)))
                for language in ("fr", "en")}
    assert "expir" not in f"{said['fr']['title']} {said['fr']['detail']}".lower(), said
    assert "expired" not in f"{said['en']['title']} {said['en']['detail']}".lower(), said


def test_the_purchase_bounds_say_excluding_tax_in_english_too(ledger: Ledger) -> None:
    with standalone(ledger) as url:
        said = {language: error(call("POST", f"{url}/v1/orders", json_body={"amount": "1"},
                                     headers=member("bounds", language)))["detail"]
                for language in ("fr", "en")}
    assert said["fr"].endswith("EUR HT"), said
    assert "excluding tax" in said["en"], said


# -- openstack rating credit ... with no server to answer ------------------------------


@pytest.mark.skipif(api_stack.client_skip_reason() is not None,
                    reason=api_stack.client_skip_reason() or "")
@pytest.mark.parametrize(("language", "words"), [
    ("fr_FR.UTF-8", "Impossible d'établir la connexion avec http://127.0.0.1:9/v1/credits"
                    f"{NBSP}: [Errno 111]"),
    ("C", "Unable to establish connection to http://127.0.0.1:9/v1/credits: [Errno 111]"),
])
def test_no_server_is_said_in_the_locales_language(language: str, words: str) -> None:
    env = {**api_stack.osc_env(), "LANG": language}
    env.pop("LANGUAGE", None)
    env.pop("LC_ALL", None)
    env.pop("LC_MESSAGES", None)
    result = api_stack.openstack(
        "--os-auth-type", "ovh-credit-noauth", "--os-endpoint", "http://127.0.0.1:9",
        "--os-project-id", "p", "--os-roles", "member,reader",
        "--os-cloud-credit-api", "standalone", "rating", "credit", "list", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(words), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
