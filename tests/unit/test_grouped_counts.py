"""A count inside a message is written as the reader's language writes numbers: grouped,
``1,000`` in English, ``1 000`` in French (U+00A0, as the amounts: ``i18n.count``).

A message with a count still takes its form from the integer (``ngettext``): « les
1 000 factures », "all 1,000 invoices". Through the real ``ovh-credit`` process (its
locale's language), the REST API (Accept-Language) and the texts the voucher catalog
driver and the ``openstack`` client make. Log lines keep the plain digits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from ovh_credit_plugin import exceptions, i18n
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog import http as catalog_http
from ovh_credit_plugin.catalog.http import errors, wire
from tests.support.api import call, standalone
from tests.support.catalog_docs import CODE, VOUCHER_URL, make_catalog, voucher_doc
from tests.support.ledgers import Ledger

ROOT = Path(__file__).resolve().parents[2]
NBSP = "\u00a0"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    # Writing a number is the reader's business, not the database's.
    return str(request.param)


@pytest.fixture
def lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The REST API's mode: a message stays an oslo_i18n Message until translated.
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", True)


# -- the ovh-credit process ------------------------------------------------------------

_MAIN = """
import sys
{patch}
from ovh_credit_plugin.cli.app import main
sys.exit(main(sys.argv[1:]))
"""


def _environ(language: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    return {**env, "LANGUAGE": language}


def ovh_credit(ledger: Ledger, language: str, *args: str, stdin: str = "", options: str = "",
               patch: str = "") -> subprocess.CompletedProcess[str]:
    """``ovh-credit ARGS`` in a process of its own whose locale is ``language``;
    ``options``: more of the config file; ``patch``: code run before it starts."""
    configs = ["--config-file", str(ledger.config)]
    if options:
        more = ledger.config.with_name("more.conf")
        more.write_text(options)
        configs += ["--config-file", str(more)]
    return subprocess.run([sys.executable, "-c", _MAIN.format(patch=patch), *configs, *args],
                          input=stdin, capture_output=True, text=True, timeout=120,
                          check=False, env=_environ(language), cwd=ROOT)


def _refused_invoices(count: int) -> list[str]:
    # Invoices without their fields: each refused in its place, the run goes on.
    return [json.dumps({"id": f"I{n}", "project_id": "p1"}) for n in range(count)]


GOOD_INVOICE = json.dumps({"id": "GOOD", "project_id": "p1", "currency": "EUR",
                           "issued_at": "2026-01-01T00:00:00Z",
                           "lines": [{"id": "l1", "product": "compute", "amount": "10.00"}]})


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "ovh-credit: all 1,000 invoices refused, none settled (each refusal's error is "
           "in the output)\n"),
    ("fr", f"ovh-credit: les 1{NBSP}000 factures sont refusées, aucune n'est réglée "
           "(l'erreur de chaque refus est dans la sortie)\n"),
])
def test_settle_counts_a_thousand_refused_invoices_as_the_reader_does(
        ledger: Ledger, language: str, expected: str) -> None:
    done = ovh_credit(ledger, language, "settle", "-", "-f", "json",
                      stdin="\n".join(_refused_invoices(1000)) + "\n")
    assert len(json.loads(done.stdout)) == 1000
    assert done.stderr == expected


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "ovh-credit: 1,000 of 1,001 invoices refused, the rest settled (each refusal's "
           "error is in the output)\n"),
    ("fr", f"ovh-credit: 1{NBSP}000 factures sur 1{NBSP}001 refusées, les autres réglées "
           "(l'erreur de chaque refus est dans la sortie)\n"),
])
def test_settle_counts_refused_invoices_among_settled_ones_as_the_reader_does(
        ledger: Ledger, language: str, expected: str) -> None:
    done = ovh_credit(ledger, language, "settle", "-", "-f", "json",
                      stdin="\n".join([GOOD_INVOICE, *_refused_invoices(1000)]) + "\n")
    assert len(json.loads(done.stdout)) == 1001
    assert done.stderr == expected


@pytest.mark.parametrize(("language", "expected"), [
    # 0 takes the plural in English, the singular in French: the form is the integer's.
    ("en", "ovh-credit: project p1 is not blocked (0 failed or running voucher attempts "
           "counted, limit 1,000): nothing done\n"),
    ("fr", f"ovh-credit: le projet p1 n'est pas bloqué (0 tentative de voucher échouée ou "
           f"en cours comptée, limite 1{NBSP}000){NBSP}: rien n'est fait\n"),
])
def test_voucher_unblock_writes_the_limit_as_the_reader_does(
        ledger: Ledger, language: str, expected: str) -> None:
    done = ovh_credit(ledger, language, "voucher", "unblock", "p1", "--reason", "ticket 42",
                      options="[cloud_credit]\nvoucher_max_failed_attempts = 1000\n")
    assert done.returncode == 0, done.stderr
    assert done.stderr == expected


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "clock skew allowed 3,600 s): a change is never dated after now\n"),
    ("fr", f"décalage d'horloge toléré 3{NBSP}600 s){NBSP}: une modification n'est jamais "
           "datée après maintenant\n"),
])
def test_a_change_dated_in_the_future_writes_the_skew_allowed_as_the_reader_does(
        ledger: Ledger, language: str, expected: str) -> None:
    done = ovh_credit(ledger, language, "expire", "--at", "2999-01-01T00:00:00Z",
                      options="[cloud_credit]\nclock_skew_allowance = 3600\n")
    assert done.returncode == 1
    assert done.stderr.startswith("ovh-credit: --at 2999-01-01T00:00:00Z "), done.stderr
    assert done.stderr.endswith(expected), done.stderr


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "its settlement key would be 1,027 characters long, the ledger holds 600"),
    ("fr", f"sa clé de règlement compterait 1{NBSP}027 caractères, le registre en accepte "
           "600"),
])
def test_settle_writes_a_key_too_long_as_the_reader_does(
        ledger: Ledger, language: str, expected: str) -> None:
    # Each "/" of the project id is "%2F" in the key: invoice/a%2F...%2F/III...I.
    invoice = json.loads(GOOD_INVOICE)
    invoice.update(id="I" * 255, project_id="a" + "/" * 254)
    done = ovh_credit(ledger, language, "settle", "-", "-f", "json",
                      stdin=json.dumps(invoice) + "\n")
    [refused] = json.loads(done.stdout)
    assert refused["error"].endswith(expected), refused["error"]


# A value the reader writes back (an option's, a query parameter's) keeps the form the
# input takes: "86,400" would be refused by --lock-timeout, "1,000" by ?limit=.
@pytest.mark.parametrize(("language", "expected"), [
    ("en", "use a positive number, at most 86400 (a day)\n"),
    ("fr", "indiquez un nombre positif, au plus 86400 (un jour)\n"),
])
def test_a_lock_timeout_over_a_day_is_told_the_most_as_the_option_takes_it(
        ledger: Ledger, language: str, expected: str) -> None:
    done = ovh_credit(ledger, language, "db", "upgrade", "--lock-timeout", "86401")
    assert done.returncode == 2
    assert done.stderr.endswith(expected), done.stderr


# The upgrade lock held past --lock-timeout on SQLite (its write lock): what waiting an
# hour for it would end with, said at once.
_LOCK_HELD = """
import sqlalchemy.exc
from ovh_credit_plugin import exceptions, ledger

def held(engine, *, lock_timeout=None):
    try:
        raise sqlalchemy.exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("locked"))
    except sqlalchemy.exc.OperationalError:
        raise exceptions.DatabaseNotReady("database is locked")

ledger.upgrade = held
"""


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "for longer than 3,600 s (--lock-timeout)"),
    ("fr", f"plus de 3{NBSP}600 s (--lock-timeout)"),
])
def test_db_upgrade_says_how_long_it_waited_as_the_reader_writes_it(
        ledger: Ledger, language: str, expected: str) -> None:
    done = ovh_credit(ledger, language, "db", "upgrade", "--lock-timeout", "3600",
                      patch=_LOCK_HELD)
    assert done.returncode == 1
    assert expected in done.stderr, done.stderr


# What a run reports when the transport failed: the count is the failed batch's.
_UNSENT = """
import datetime as dt
from ovh_credit_plugin.service import CreditService
from ovh_credit_plugin.service.expiry_warnings import ExpiringSummary

def notify_expiring(self, *, at=None, batch_size=500):
    return ExpiringSummary(at=dt.datetime(2035, 1, 1, tzinfo=dt.timezone.utc), thresholds=[30],
                           credits_unsent=1000, send_failure="ConnectionError: refused")

CreditService.notify_expiring = notify_expiring
"""


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "ovh-credit: 1,000 expiry warnings could not be sent (the notification transport "
           "failed: ConnectionError: refused); they are not recorded as sent, and the run "
           "stopped there: the next run sends them and the rest\n"),
    ("fr", f"ovh-credit: 1{NBSP}000 avertissements d'expiration n'ont pas pu être envoyés "
           f"(le transport des notifications a échoué{NBSP}: ConnectionError: refused){NBSP}; "
           f"ils ne sont pas enregistrés comme envoyés, et l'exécution s'est arrêtée "
           f"là{NBSP}: la prochaine les envoie, avec le reste\n"),
])
def test_notify_expiring_counts_the_unsent_warnings_as_the_reader_does(
        ledger: Ledger, language: str, expected: str) -> None:
    done = ovh_credit(ledger, language, "notify-expiring", "-f", "json", patch=_UNSENT)
    assert done.returncode == 1
    assert done.stderr == expected


# -- the REST API ----------------------------------------------------------------------

def test_the_api_writes_its_page_limit_as_the_parameter_takes_it(ledger: Ledger) -> None:
    member = {"X-Project-Id": "p1", "X-User-Id": "user-p1", "X-Roles": "member,reader"}
    with standalone(ledger) as url:
        answers = {}
        for language in ("en", "fr"):
            refused = call("GET", f"{url}/v1/orders?limit=1001",
                           headers={**member, "Accept-Language": language})
            assert refused.status_code == 400, refused.text
            answers[language] = refused.json()["errors"][0]["detail"]
    assert answers["en"] == "limit is an integer from 1 to 1000"
    assert answers["fr"] == "limit est un entier de 1 à 1000"


# -- the voucher catalog driver (its errors reach the operator and the API's logs) ------

WHERE = "https://catalog.test"


def _answer(status: int, *, retry_after: str | None = None) -> wire.Answer:
    return wire.Answer(status=status, body=b"", request_id=None, attempts=1000,
                       retry_after=retry_after)


@pytest.mark.usefixtures("lazy")
def test_a_throttling_catalog_is_reported_with_grouped_counts() -> None:
    message = exceptions.message_of(
        errors.from_answer(_answer(429, retry_after="21600"), where=WHERE, code=CODE))
    assert i18n.translate(message, "en") == (
        "the voucher catalog at https://catalog.test is throttling us (HTTP 429 after 1,000 "
        "attempt(s), it asks to wait 21,600 s)")
    assert i18n.translate(message, "fr") == (
        "le catalogue des vouchers à l'adresse https://catalog.test limite nos requêtes "
        f"(HTTP 429 après 1{NBSP}000 tentative(s), il demande d'attendre 21{NBSP}600 s)")
    # A log line quotes the plain digits.
    assert str(message).endswith("(HTTP 429 after 1000 attempt(s), it asks to wait 21600 s)")


@pytest.mark.usefixtures("lazy")
def test_an_unavailable_catalog_is_reported_with_grouped_counts() -> None:
    message = exceptions.message_of(errors.from_answer(_answer(503), where=WHERE, code=CODE))
    assert i18n.translate(message, "en") == (
        "voucher catalog at https://catalog.test unavailable: HTTP 503 after 1,000 attempt(s)")
    assert i18n.translate(message, "fr") == (
        f"le catalogue des vouchers à l'adresse https://catalog.test est indisponible{NBSP}: "
        f"HTTP 503 après 1{NBSP}000 tentative(s)")


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.mark.usefixtures("lazy")
def test_an_oversized_catalog_answer_is_refused_with_its_limit_grouped(
        mocked: responses.RequestsMock) -> None:
    huge = voucher_doc()
    huge["padding"] = "y" * (catalog_http.MAX_BODY_BYTES + 10)
    mocked.get(VOUCHER_URL, json=huge)
    driver = make_catalog()
    try:
        with pytest.raises(base.CatalogProtocolError) as refused:
            driver.get(CODE)
    finally:
        driver.close()
    assert catalog_http.MAX_BODY_BYTES == 1_048_576
    message = exceptions.message_of(refused.value)
    assert i18n.translate(message, "en") == (
        "the voucher catalog's answer is larger than 1,048,576 bytes")
    assert i18n.translate(message, "fr") == (
        f"la réponse du catalogue des vouchers dépasse 1{NBSP}048{NBSP}576 octets")


# -- the openstack client (its locale's language) ----------------------------------------

_CLIENT = """
from ovh_credit_plugin.osc import client

print(client.error_message(429, b"", {"Retry-After": "3600"}))
endless = client.CreditClient(None, "standalone")
endless.send = lambda request: {
    "orders": [{}], "links": [{"rel": "next", "href": "/v1/orders?marker=m"}]}
try:
    list(endless.pages(client.Request("GET", "/v1/orders"), "orders"))
except client.CreditAPIError as error:
    print(error)
"""


@pytest.mark.parametrize(("language", "retry", "pages"), [
    ("en", "retry after 3,600s)", "more than 1,000 pages: use --limit and --marker"),
    ("fr", f"réessayez dans 3{NBSP}600 s)",
     f"plus de 1{NBSP}000 pages{NBSP}: utilisez --limit et --marker"),
])
def test_the_client_writes_a_wait_and_its_page_cap_as_the_reader_does(
        language: str, retry: str, pages: str) -> None:
    done = subprocess.run([sys.executable, "-c", _CLIENT], capture_output=True, text=True,
                          timeout=120, check=True, env=_environ(language), cwd=ROOT)
    throttled, capped = done.stdout.splitlines()
    assert throttled.endswith(retry), throttled
    assert capped == pages


@pytest.mark.usefixtures("lazy")
@pytest.mark.parametrize(("seconds", "english", "french"), [
    (2.5, "2.5", "2,5"),
    (1500.0, "1,500", f"1{NBSP}500"),
])
def test_a_catalog_deadline_is_written_as_the_reader_writes_numbers(
        seconds: float, english: str, french: str) -> None:
    from ovh_credit_plugin.catalog.http import deadline

    operation = deadline.Operation(seconds=seconds)
    operation.deadline = 0.0  # passed
    message = exceptions.message_of(
        errors.from_exception(None, operation=operation, where=WHERE, code=CODE))
    assert i18n.translate(message, "en").endswith(
        f"no complete answer within the {english} s deadline")
    assert i18n.translate(message, "fr").endswith(f"dans le délai de {french} s")
    # A log line quotes the plain digits.
    assert str(message).endswith(f"within the {seconds:g} s deadline")
