"""Bad input, through the CLI and the Python API: a clear error, and nothing written.

Through the CLI (argument and invoice cases, then bad ``[cloud_credit]`` and
``[voucher_catalog]`` values in the config file): one line on stderr, a
non-zero exit. Through the Python API (:class:`CreditService`,
:class:`InvoiceProcessor`, the charges a host builds, ``from_conf``): the
typed exception of :mod:`ovh_credit_plugin.exceptions`, one line. Either way
the database afterwards is byte-identical (``Ledger.checksum``) to the
seeded state every case starts from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from ovh_credit_plugin import exceptions as exc
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.cli.app import main
from ovh_credit_plugin.conf import register_opts
from ovh_credit_plugin.hosts.invoice import InvoiceProcessor, is_refusal
from ovh_credit_plugin.service import Charge, CreditService
from tests.support.cli import Cli, Result
from tests.support.ledgers import Ledger, ServerPool, drop_ledger, new_ledger

GOOD_INVOICE: dict[str, Any] = {
    "id": "INV-1",
    "project_id": "p1",
    "currency": "EUR",
    "issued_at": "2026-03-01T00:00:00Z",
    "lines": [{"id": "l1", "product": "compute", "amount": "10.00"}],
}


# Settled while seeding: the same id with other content is a conflict.
SETTLED_INVOICE: dict[str, Any] = {
    **GOOD_INVOICE,
    "id": "INV-SETTLED",
    "issued_at": "2026-02-15T00:00:00Z",
    "lines": [{"id": "l1", "product": "compute", "amount": "12.345678"}],
}
UTC = dt.timezone.utc
# Before the pending order lapses (created 2026-02-02, 7 days).
T_OPEN = dt.datetime(2026, 2, 3, tzinfo=UTC)


def bad_invoice(**changes: Any) -> str:
    doc = json.loads(json.dumps(GOOD_INVOICE))
    for key, value in changes.items():
        if key.startswith("line_"):
            doc["lines"][0][key.removeprefix("line_")] = value
        elif value is ...:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc)


@dataclass
class Seeded:
    """A seeded ledger, shared by the cases of one backend while it stays byte-identical.

    Seeding takes a dozen CLI calls; the cases only check that nothing gets
    written. So each backend's seeded ledger is reused, and every case must
    leave it byte-identical to the checksum taken right after seeding: a
    case that writes anything fails on that comparison, leaves the ledger
    ``dirty``, and the next case gets a newly seeded one.
    """

    ledger: Ledger
    ids: dict[str, str]
    checksum: str
    dirty: bool = False

    @contextlib.contextmanager
    def unchanged(self) -> Iterator[None]:
        """The block must leave the database byte-identical to the seeded state."""
        self.dirty = True
        yield
        assert self.ledger.checksum() == self.checksum, "the database changed"
        self.dirty = False


def _seed(cli: Cli) -> dict[str, str]:
    """A project with a paid order, a voucher, a settled invoice, a pending, a cancelled
    order, and a voided credit in another project."""
    at = ("--at", "2026-02-01T00:00:00Z")
    paid = cli.ok("order", "create", "p1", "100", *at)
    paid = cli.ok("order", "pay", paid["id"], *at)
    voucher = cli.ok("voucher", "activate", "p1", "WELCOME-2026", *at)
    pending = cli.ok("order", "create", "p1", "30", "--at", "2026-02-02T00:00:00Z")
    cancelled = cli.ok("order", "create", "p1", "30", "--at", "2026-02-02T00:00:00Z")
    cli.ok("order", "cancel", cancelled["id"], "--at", "2026-02-02T00:00:00Z")
    other = cli.ok("order", "create", "p3", "10", *at)
    other = cli.ok("order", "pay", other["id"], *at)
    cli.ok("credit", "void", str(other["credit_id"]), "--reason", "fraud", *at)
    cli.ok("settle", "-", stdin=json.dumps(SETTLED_INVOICE))
    return {
        "paid": paid["id"],
        "pending": pending["id"],
        "cancelled": cancelled["id"],
        "paid_credit": str(paid["credit_id"]),
        "voucher_credit": str(voucher["id"]),
        "voided_credit": str(other["credit_id"]),
    }


@pytest.fixture(scope="module")
def seeded_ledgers(server_pool: ServerPool) -> Iterator[dict[str, Seeded]]:
    cache: dict[str, Seeded] = {}
    yield cache
    for found in cache.values():
        drop_ledger(found.ledger, server_pool)


@pytest.fixture
def seeded(
    backend: str,
    server_pool: ServerPool,
    seeded_ledgers: dict[str, Seeded],
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Seeded:
    found = seeded_ledgers.get(backend)
    if found is not None and found.dirty:
        drop_ledger(found.ledger, server_pool)
        found = None
    if found is None:
        ledger = new_ledger(backend, server_pool, tmp_path_factory.mktemp(f"seeded-{backend}"))
        ids = _seed(Cli(ledger, capsys, monkeypatch))
        found = Seeded(ledger, ids, ledger.checksum())
        seeded_ledgers[backend] = found
    return found


@pytest.fixture
def seeded_cli(
    seeded: Seeded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    return Cli(seeded.ledger, capsys, monkeypatch)


# Decades after the tests' clock (tests/support/clock.py).
FUTURE = ("--at", "2072-01-01T00:00:00Z")

CASES: list[tuple[str, list[str], str, str]] = [
    # (name, argv, stdin, expected fragment of the error line)
    # A change dated in the future: expire would destroy live credit, for good.
    ("future expire", ["expire", *FUTURE], "", "is in the future"),
    ("future order", ["order", "create", "p1", "10", *FUTURE], "", "is in the future"),
    ("future payment", ["order", "pay", "{pending}", *FUTURE], "", "is in the future"),
    ("future cancel", ["order", "cancel", "{pending}", *FUTURE], "", "is in the future"),
    ("future void", ["credit", "void", "{paid_credit}", "--reason", "x", *FUTURE], "",
     "is in the future"),
    ("future activation", ["voucher", "activate", "p1", "GPU-ONLY", *FUTURE], "",
     "is in the future"),
    ("future settlement", ["settle", "-", *FUTURE], json.dumps({**SETTLED_INVOICE, "id": "INV-9"}),
     "is in the future"),
    ("negative amount", ["order", "create", "p1", "-5"], "", "must not be negative"),
    ("zero amount", ["order", "create", "p1", "0"], "", "greater than zero"),
    ("NaN amount", ["order", "create", "p1", "NaN"], "", "finite"),
    ("infinite amount", ["order", "create", "p1", "Infinity"], "", "finite"),
    ("exponent amount", ["order", "create", "p1", "1e3"], "", "plain digits"),
    ("words as amount", ["order", "create", "p1", "ten"], "", "not a decimal number"),
    ("too many decimals", ["order", "create", "p1", "10.001"], "", "more than 2 decimal places"),
    ("below minimum", ["order", "create", "p1", "4.99"], "", "between 5.00 and 100"),
    ("above maximum", ["order", "create", "p1", "100000.01"], "", "between"),
    ("absurd amount", ["order", "create", "p1", "1" + "0" * 30], "", "too large"),
    (
        "unknown currency",
        ["order", "create", "p2", "10", "--currency", "ZZZ"],
        "",
        "unknown currency",
    ),
    (
        "lowercase currency",
        ["order", "create", "p2", "10", "--currency", "eur"],
        "",
        "invalid currency",
    ),
    (
        "currency without minor unit",
        ["order", "create", "p2", "10", "--currency", "XAU"],
        "",
        "no minor unit",
    ),
    (
        "currency mismatch on project",
        ["order", "create", "p1", "10", "--currency", "USD"],
        "",
        "bills in EUR",
    ),
    (
        "currency without purchase limits",
        ["order", "create", "p2", "10", "--currency", "GBP"],
        "",
        # The customer's words, then the operator's: the options that sell it.
        "cloud credit is not sold in GBP; to sell it, set [cloud_credit] purchase_min_amount "
        "and purchase_max_amount for GBP, e.g. EUR:5,JPY:500",
    ),
    ("bad project id", ["order", "create", "p 1", "10"], "", "invalid project id"),
    ("unknown order pay", ["order", "pay", "no-such-order"], "", "no order"),
    ("unknown order cancel", ["order", "cancel", "no-such-order"], "", "no order"),
    (
        "payment amount mismatch",
        ["order", "pay", "{pending}", "--amount", "31"],
        "",
        "does not match",
    ),
    (
        "payment currency mismatch",
        ["order", "pay", "{pending}", "--currency", "USD"],
        "",
        "does not match",
    ),
    ("payment of a cancelled order", ["order", "pay", "{cancelled}"], "", "is cancelled"),
    ("cancel a paid order", ["order", "cancel", "{paid}"], "", "only a pending order"),
    ("unknown credit show", ["credit", "show", "999"], "", "no credit 999"),
    ("non-numeric credit id", ["credit", "show", "abc"], "", "invalid credit id"),
    ("negative credit id", ["credit", "void", "-3", "--reason", "x"], "", "invalid credit id"),
    (
        "void without reason text",
        ["credit", "void", "{voucher_credit}", "--reason", "  "],
        "",
        "needs a reason",
    ),
    (
        "void twice",
        ["credit", "void", "{voided_credit}", "--reason", "again"],
        "",
        "already voided",
    ),
    ("voucher code too short", ["voucher", "activate", "p1", "AB"], "", "4 to 64"),
    ("voucher code with symbols", ["voucher", "activate", "p1", "WELC;OME"], "", "4 to 64"),
    ("voucher check bad code", ["voucher", "check", "x"], "", "4 to 64"),
    ("bad --at", ["order", "create", "p1", "10", "--at", "yesterday"], "", "invalid time"),
    ("missing invoice file", ["settle", "/nonexistent/invoices.json"], "", "no such invoice"),
    ("invoice not JSON", ["settle", "-"], "{not json", "not valid JSON"),
    ("invoices nested deeper than JSON is read", ["settle", "-"],
     "[" * 100_000 + "]" * 100_000, "the input is not valid JSON: nested too deeply"),
    ("invoice is a number", ["settle", "-"], "42", "invoice object"),
    (
        "invoice not UTF-8",
        ["settle", "-"],
        json.dumps(GOOD_INVOICE) + '\n{"id": "INV-\udce9"}\n',  # byte 0xe9, escaped
        "the input is not UTF-8 (line 2)",
    ),
    (
        "batch size zero",
        ["settle", "-", "--batch-size", "0"],
        json.dumps(GOOD_INVOICE),
        "at least 1",
    ),
    # -c is checked before the command runs: cliff would only refuse it once
    # the order, the activation, the payment or the settlement was committed.
    ("unknown column, order create", ["order", "create", "p1", "10", "-c", "idd"], "",
     "unknown column 'idd'"),
    ("unknown column, order pay",
     ["order", "pay", "{pending}", "--at", "2026-02-03T00:00:00Z", "-c", "id", "-c", "paid"], "",
     "unknown column 'paid'"),
    ("unknown column, voucher activate", ["voucher", "activate", "p5", "GPU-ONLY", "-c", "x"],
     "", "unknown column 'x'"),
    ("unknown column, credit void",
     ["credit", "void", "{voucher_credit}", "--reason", "r", "-c", "bogus"], "",
     "unknown column 'bogus'"),
    ("unknown column, settle", ["settle", "-", "-c", "due"], json.dumps(GOOD_INVOICE),
     "unknown column 'due'"),
    ("unknown column, settle as table", ["settle", "-", "-f", "table", "-c", "due"],
     json.dumps(GOOD_INVOICE), "unknown column 'due'"),
]


# One bad invoice through `settle`: refused in its place (exit status 3), nothing written.
# (name, stdin, fragment of the refusal's error)
INVOICE_CASES: list[tuple[str, str, str]] = [
    ("invoice missing lines", bad_invoice(lines=...), "lines"),
    ("invoice unknown field", bad_invoice(extra="x"), "extra"),
    ("invoice float amount", bad_invoice(line_amount=10.5), "decimal string"),
    ("invoice negative line", bad_invoice(line_amount="-1"), "negative"),
    ("invoice 7 decimals", bad_invoice(line_amount="0.0000001"), "more than 6 decimal places"),
    ("invoice bad currency", bad_invoice(currency="EURO"), "currency"),
    ("invoice bad date", bad_invoice(issued_at="March 1st"), "issued_at"),
    ("invoice duplicate line ids",
     json.dumps({**GOOD_INVOICE, "lines": GOOD_INVOICE["lines"] * 2}), "appears twice"),
    ("invoice with a key twice",
     bad_invoice().replace('"id": "INV-1"', '"id": "INV-1", "id": "X"'),
     "key 'id' appears twice in one object"),
    ("invoice settled before with other content",
     json.dumps({**SETTLED_INVOICE, "lines": GOOD_INVOICE["lines"]}), "different content"),
]


def _fill(argv: list[str], ids: dict[str, str]) -> list[str]:
    return [a.format(**ids) if a.startswith("{") else a for a in argv]


def assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.code != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(("name", "argv", "stdin", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_writes_nothing(
    seeded: Seeded,
    seeded_cli: Cli,
    name: str,
    argv: list[str],
    stdin: str,
    fragment: str,
) -> None:
    with seeded.unchanged():
        result = seeded_cli(*_fill(argv, seeded.ids), stdin=stdin)
        assert_one_line_error(result, fragment)


@pytest.mark.parametrize(("name", "stdin", "fragment"), INVOICE_CASES,
                         ids=[c[0] for c in INVOICE_CASES])
def test_a_bad_invoice_is_refused_in_its_place_and_writes_nothing(
    seeded: Seeded, seeded_cli: Cli, name: str, stdin: str, fragment: str
) -> None:
    with seeded.unchanged():
        result = seeded_cli("settle", "-", stdin=stdin)
    assert result.code == 3
    assert result.stderr.splitlines() == [
        "ovh-credit: 1 invoice refused, none settled (its error is in the output)"]
    [refused] = result.json()
    assert set(refused) == {"invoice", "project_id", "error"}
    assert fragment in refused["error"] and "\n" not in refused["error"]


def test_a_bad_invoice_among_good_ones_stops_nothing(seeded: Seeded, seeded_cli: Cli) -> None:
    seeded.dirty = True  # the good invoices are settled: the next case seeds anew
    stdin = "\n".join([json.dumps(GOOD_INVOICE), bad_invoice(id="I2", line_amount="x"),
                       bad_invoice(line_amount="11.00"), bad_invoice(id="I3")])
    result = seeded_cli("settle", "-", stdin=stdin)
    assert result.code == 3
    assert "2 of 4 invoices refused" in result.stderr
    out = result.json()
    assert [o.get("invoice_id") for o in out] == ["INV-1", None, None, "I3"]
    assert out[1]["invoice"] == "I2" and "invoice #2" in out[1]["error"]
    assert out[2]["invoice"] == "INV-1" and "different content" in out[2]["error"]


def test_json_lines_nested_too_deeply_or_naming_a_lone_surrogate_are_refused_in_place(
        seeded: Seeded, seeded_cli: Cli) -> None:
    seeded.dirty = True  # the good invoice is settled: the next case seeds anew
    deep = '{"id": "I2", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    # Valid JSON ("\\ud800" is a lone surrogate), which no UTF-8 output can hold as is.
    surrogate = bad_invoice(id="I3").replace('"I3"', '"\\ud800"')
    result = seeded_cli("settle", "-", stdin="\n".join([json.dumps(GOOD_INVOICE), deep,
                                                          surrogate]))
    assert result.code == 3
    assert "2 of 3 invoices refused" in result.stderr
    settled, nested, unwritable = result.json()
    assert settled["invoice_id"] == "INV-1"
    assert nested["error"] == "line 2 is not valid JSON: nested too deeply"
    assert unwritable["invoice"] == "\\ud800"  # escaped, so that a table can print it
    assert unwritable["error"].encode("utf-8")


def test_at_least_thirty_cases() -> None:
    assert len(CASES) + len(INVOICE_CASES) >= 30


# -- bad configuration values, through the CLI ---------------------------------------

VOUCHER_ACTIVATE = ["voucher", "activate", "p5", "GPU-ONLY"]  # a code p5 never tried
ORDER_CREATE = ["order", "create", "p1", "10"]
HTTP = {"driver": "http", "endpoint": "http://127.0.0.1:9/catalog"}
INVALID = "is not valid"  # oslo.config's wording for a value its type refuses

# (name, [cloud_credit] values, [voucher_catalog] values, argv, fragments of the error line)
CONFIG_CASES: list[tuple[str, dict[str, str], dict[str, str], list[str], tuple[str, ...]]] = [
    ("lowercase default_currency", {"default_currency": "eur"}, {}, ORDER_CREATE,
     ("default_currency", INVALID)),
    ("default_currency without minor unit", {"default_currency": "XAU"}, {}, ORDER_CREATE,
     ("[cloud_credit]", "no minor unit")),
    ("unknown default_currency", {"default_currency": "ZZZ"}, {}, ORDER_CREATE,
     ("[cloud_credit]", "unknown currency")),
    ("purchase_min_amount words", {"purchase_min_amount": "five"}, {}, ORDER_CREATE,
     ("purchase_min_amount", "not a decimal number")),
    ("purchase_min_amount negative", {"purchase_min_amount": "-5"}, {}, ORDER_CREATE,
     ("purchase_min_amount", "negative")),
    ("purchase_min_amount exponent", {"purchase_min_amount": "1e3"}, {}, ORDER_CREATE,
     ("purchase_min_amount", "plain digits")),
    ("purchase_min_amount float-ish NaN", {"purchase_min_amount": "NaN"}, {}, ORDER_CREATE,
     ("purchase_min_amount", "finite")),
    ("purchase_min_amount below the default currency's cent", {"purchase_min_amount": "5.001"},
     {}, ORDER_CREATE, ("purchase_min_amount", "more than 2 decimal places")),
    ("purchase_max_amount with decimals JPY has not",
     {"default_currency": "JPY", "purchase_max_amount": "1000.5"}, {}, ORDER_CREATE,
     ("purchase_max_amount", "more than 0 decimal places")),
    ("purchase_max_amount zero", {"purchase_max_amount": "0"}, {}, ORDER_CREATE,
     ("purchase_max_amount", "greater than zero")),
    ("purchase_max_amount absurd", {"purchase_max_amount": "1" + "0" * 30}, {}, ORDER_CREATE,
     ("purchase_max_amount", "too large")),
    ("order_lapse_days beyond ten years", {"order_lapse_days": "3000000"}, {}, ORDER_CREATE,
     ("order_lapse_days", "3660")),
    ("purchase min above max", {"purchase_min_amount": "500", "purchase_max_amount": "100"}, {},
     ORDER_CREATE, ("purchase_min_amount is above purchase_max_amount",)),
    ("purchase limit with decimals its currency has not",
     {"purchase_min_amount": "EUR:5,JPY:500.5", "purchase_max_amount": "EUR:9,JPY:900"}, {},
     ORDER_CREATE, ("purchase_min_amount", INVALID, "JPY 500.5 has more than 0 decimal places")),
    ("purchase limit in an unknown currency",
     {"purchase_min_amount": "EUR:5,ZZZ:1", "purchase_max_amount": "EUR:9,ZZZ:9"}, {},
     ORDER_CREATE, ("purchase_min_amount", INVALID, "unknown currency 'ZZZ'")),
    ("purchase limit not a pair", {"purchase_max_amount": "EUR:100000,JPY"}, {}, ORDER_CREATE,
     ("purchase_max_amount", INVALID, "'JPY' is not CURRENCY:AMOUNT")),
    ("a currency with a minimum only", {"purchase_min_amount": "EUR:5,JPY:500"}, {},
     ORDER_CREATE,
     ("[cloud_credit] purchase_min_amount has a limit for JPY, purchase_max_amount has none",)),
    ("purchase min above max in one currency",
     {"purchase_min_amount": "EUR:5,JPY:500", "purchase_max_amount": "EUR:9,JPY:100"}, {},
     ORDER_CREATE, ("purchase_min_amount is above purchase_max_amount for JPY",)),
    ("payment_url_template unknown field",
     {"payment_url_template": "https://pay.example/{nope}"}, {}, ORDER_CREATE,
     ("payment_url_template", "unknown field")),
    ("payment_url_template attribute lookup",
     {"payment_url_template": "https://pay.example/{order_id.__class__}"}, {}, ORDER_CREATE,
     ("payment_url_template", "unknown field {order_id.__class__}")),
    ("payment_url_template index", {"payment_url_template": "https://pay.example/{order_id[0]}"},
     {}, ORDER_CREATE, ("payment_url_template", "unknown field")),
    ("payment_url_template positional", {"payment_url_template": "https://pay.example/{}"},
     {}, ORDER_CREATE, ("payment_url_template", "unknown field {}")),
    ("payment_url_template broken brace", {"payment_url_template": "https://pay.example/{"}, {},
     ORDER_CREATE, ("payment_url_template",)),
    ("validity months zero", {"purchased_credit_validity_months": "0"}, {}, ORDER_CREATE,
     ("purchased_credit_validity_months", INVALID)),
    ("validity months above 120", {"purchased_credit_validity_months": "121"}, {}, ORDER_CREATE,
     ("purchased_credit_validity_months", INVALID)),
    ("validity months words", {"purchased_credit_validity_months": "twelve"}, {}, ORDER_CREATE,
     ("purchased_credit_validity_months", INVALID)),
    ("order_lapse_days zero", {"order_lapse_days": "0"}, {}, ORDER_CREATE,
     ("order_lapse_days", INVALID)),
    ("pool_size zero", {"pool_size": "0"}, {}, ORDER_CREATE, ("pool_size", INVALID)),
    ("max_overflow negative", {"max_overflow": "-1"}, {}, ORDER_CREATE,
     ("max_overflow", INVALID)),
    ("pool_recycle below -1", {"pool_recycle": "-2"}, {}, ORDER_CREATE,
     ("pool_recycle", INVALID)),
    ("max_transaction_attempts zero", {"max_transaction_attempts": "0"}, {}, ORDER_CREATE,
     ("max_transaction_attempts", INVALID)),
    ("sqlite_busy_timeout negative", {"sqlite_busy_timeout": "-1"}, {}, ORDER_CREATE,
     ("sqlite_busy_timeout", INVALID)),
    ("voucher_max_failed_attempts zero", {"voucher_max_failed_attempts": "0"}, {}, ORDER_CREATE,
     ("voucher_max_failed_attempts", INVALID)),
    ("voucher_attempt_window words", {"voucher_attempt_window": "hour"}, {}, ORDER_CREATE,
     ("voucher_attempt_window", INVALID)),
    ("connection not a URL", {"connection": "not a url"}, {}, ORDER_CREATE,
     ("invalid [cloud_credit] connection URL",)),
    ("connection without driver", {"connection": "oracle://u@db.example/x"}, {}, ORDER_CREATE,
     ("no driver for 'oracle'",)),
    ("catalog driver missing endpoint", {}, {"driver": "http"}, VOUCHER_ACTIVATE,
     ("[voucher_catalog] endpoint is required",)),
    ("catalog endpoint not http", {}, {**HTTP, "endpoint": "ftp://catalog.example"},
     VOUCHER_ACTIVATE, ("endpoint", INVALID)),
    ("catalog timeout zero", {}, {**HTTP, "timeout": "0"}, VOUCHER_ACTIVATE,
     ("timeout", INVALID)),
    ("catalog connect_timeout words", {}, {**HTTP, "connect_timeout": "soon"}, VOUCHER_ACTIVATE,
     ("connect_timeout", INVALID)),
    ("catalog retries negative", {}, {**HTTP, "retries": "-1"}, VOUCHER_ACTIVATE,
     ("retries", INVALID)),
    ("catalog verify not a boolean", {}, {**HTTP, "verify": "maybe"}, VOUCHER_ACTIVATE,
     ("verify", INVALID)),
    ("catalog ca_file missing", {}, {**HTTP, "ca_file": "/nonexistent/ca.pem"},
     VOUCHER_ACTIVATE, ("ca_file", "not a readable file")),
    ("voucher file missing", {}, {"file_path": "/nonexistent/vouchers.json"}, VOUCHER_ACTIVATE,
     ("does not exist",)),
    ("catalog driver unknown", {}, {"driver": "nope"}, VOUCHER_ACTIVATE,
     ("[voucher_catalog] driver 'nope' is not installed",)),
]


def _config_text(ledger: Ledger, cloud_credit: dict[str, str], catalog: dict[str, str]) -> str:
    sections = {
        "cloud_credit": {
            "connection": ledger.url,
            "payment_url_template": "https://pay.example/orders/{order_id}",
            **cloud_credit,
        },
        "voucher_catalog": {"driver": "file", "file_path": str(ledger.vouchers), **catalog},
    }
    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())
        for name, values in sections.items()
    )


@pytest.mark.parametrize(
    ("name", "cloud_credit", "catalog", "argv", "fragments"),
    CONFIG_CASES,
    ids=[c.values[0] if hasattr(c, "values") else c[0] for c in CONFIG_CASES],
)
def test_bad_config_value_is_one_line_and_writes_nothing(
    seeded: Seeded,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    cloud_credit: dict[str, str],
    catalog: dict[str, str],
    argv: list[str],
    fragments: tuple[str, ...],
) -> None:
    config = tmp_path / "bad.conf"
    config.write_text(_config_text(seeded.ledger, cloud_credit, catalog))
    with seeded.unchanged():
        capsys.readouterr()
        code = main(["--config-file", str(config), *argv, "-f", "json"])
        out, err = capsys.readouterr()
        assert_one_line_error(Result(code, out, err), fragments[0])
        for fragment in fragments[1:]:
            assert fragment in err, err
        assert "LocationInfo" not in err  # the file is named, not oslo.config's repr


def test_the_config_file_of_the_cases_is_good_when_unchanged(
    seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control: the same file without the bad value works (the cases fail for their value)."""
    config = tmp_path / "good.conf"
    config.write_text(_config_text(seeded.ledger, {}, {}))
    with seeded.unchanged():
        capsys.readouterr()
        assert main(["--config-file", str(config), "credit", "list", "p1", "-f", "json"]) == 0
        out, err = capsys.readouterr()
        assert err == ""
        assert len(json.loads(out)) == 2


# -- bad input through the Python API ---------------------------------------------------


@dataclass
class Api:
    """What a case may call: the service, the invoice processor, the seeded ids."""

    service: CreditService
    processor: InvoiceProcessor
    ids: dict[str, str]
    ledger: Ledger

    def invoice(self, **changes: Any) -> dict[str, Any]:
        return dict(json.loads(bad_invoice(**changes)))

    def charge(self, **changes: Any) -> Charge:
        values: dict[str, Any] = {
            "key": "invoice/p1/API-1",
            "project_id": "p1",
            "invoice_id": "API-1",
            "currency": "EUR",
            "at": T_OPEN,
            "lines": [Line("l1", "compute", Decimal("1.000000"))],
            "fingerprint": "0" * 64,
            **changes,
        }
        return Charge(**values)

    def line(self, amount: Any) -> Charge:
        return self.charge(lines=[Line("l1", "compute", amount)])

    def from_config(
        self, cloud_credit: dict[str, str], catalog: dict[str, str] | None = None
    ) -> Any:
        path = Path(str(self.ledger.config) + ".api")
        path.write_text(_config_text(self.ledger, cloud_credit, catalog or {}))
        conf = cfg.ConfigOpts()
        register_opts(conf)
        conf(args=[], default_config_files=[str(path)])
        service = CreditService.from_conf(conf)
        try:
            return service.catalog
        finally:
            service.close()


Call = Callable[[Api], object]

# (name, call, the exact exception class, fragment of its one-line message)
API_CASES: list[tuple[str, Call, type[Exception], str]] = [
    # amounts of a purchase
    ("float amount", lambda a: a.service.create_order("p1", 10.5), exc.InvalidAmount,
     "decimal string"),
    ("bool amount", lambda a: a.service.create_order("p1", True), exc.InvalidAmount,
     "decimal string"),
    ("None amount", lambda a: a.service.create_order("p1", None), exc.InvalidAmount,
     "decimal string"),
    ("list amount", lambda a: a.service.create_order("p1", ["10"]), exc.InvalidAmount,
     "decimal string"),
    ("negative amount", lambda a: a.service.create_order("p1", "-5"), exc.InvalidAmount,
     "negative"),
    ("negative Decimal", lambda a: a.service.create_order("p1", Decimal("-5")),
     exc.InvalidAmount, "negative"),
    ("zero amount", lambda a: a.service.create_order("p1", 0), exc.InvalidAmount,
     "greater than zero"),
    ("NaN Decimal", lambda a: a.service.create_order("p1", Decimal("NaN")), exc.InvalidAmount,
     "finite"),
    ("infinite Decimal", lambda a: a.service.create_order("p1", Decimal("-Infinity")),
     exc.InvalidAmount, "finite"),
    ("exponent text", lambda a: a.service.create_order("p1", "1e3"), exc.InvalidAmount,
     "plain digits"),
    ("Arabic-Indic digits", lambda a: a.service.create_order("p1", "\u0661\u0660"),
     exc.InvalidAmount, "plain digits"),
    ("cents below the currency", lambda a: a.service.create_order("p1", Decimal("10.001")),
     exc.InvalidAmount, "more than 2 decimal places"),
    ("below the minimum", lambda a: a.service.create_order("p1", "4.99"), exc.InvalidAmount,
     "between 5.00 and 100"),
    ("above the maximum", lambda a: a.service.create_order("p1", 100001), exc.InvalidAmount,
     "between"),
    ("absurd amount", lambda a: a.service.create_order("p1", 10**30), exc.InvalidAmount,
     "too large"),
    # currencies
    ("unknown currency", lambda a: a.service.create_order("p2", "10", currency="ZZZ"),
     exc.InvalidCurrency, "unknown currency"),
    ("lowercase currency", lambda a: a.service.create_order("p2", "10", currency="eur"),
     exc.InvalidCurrency, "invalid currency"),
    ("numeric currency", lambda a: a.service.create_order("p2", "10", currency=978),
     exc.InvalidCurrency, "invalid currency"),
    ("currency without minor unit", lambda a: a.service.create_order("p2", "10", currency="XAU"),
     exc.InvalidCurrency, "no minor unit"),
    ("other currency than the project's",
     lambda a: a.service.create_order("p1", "10", currency="USD"), exc.CurrencyMismatch,
     "bills in EUR"),
    # ids and times
    ("empty project id", lambda a: a.service.create_order("", "10"), exc.InvalidInput,
     "invalid project id"),
    ("None project id", lambda a: a.service.list_orders(None), exc.InvalidInput,
     "invalid project id"),
    ("project id too long", lambda a: a.service.list_credits("p" * 256), exc.InvalidInput,
     "invalid project id"),
    ("project id path", lambda a: a.service.create_order("../p1", "10"), exc.InvalidInput,
     "invalid project id"),
    ("time as text", lambda a: a.service.create_order("p1", "10", at="2026-02-03"),
     exc.InvalidInput, "invalid time"),
    ("unknown order", lambda a: a.service.pay_order("no-such-order"), exc.OrderNotFound,
     "no order"),
    ("None order id", lambda a: a.service.pay_order(None), exc.OrderNotFound,
     "no order"),
    ("order id too long", lambda a: a.service.cancel_order("x" * 37), exc.OrderNotFound,
     "no order"),
    ("unknown credit", lambda a: a.service.show_credit(999999), exc.CreditNotFound,
     "no credit 999999"),
    ("unknown credit voided", lambda a: a.service.void_credit(999999, reason="fraud"),
     exc.CreditNotFound, "no credit 999999"),
    ("credit id words", lambda a: a.service.show_credit("abc"), exc.InvalidInput,
     "invalid credit id"),
    ("credit id zero", lambda a: a.service.show_credit(0), exc.InvalidInput,
     "invalid credit id"),
    ("credit id float", lambda a: a.service.show_credit(1.5), exc.InvalidInput,
     "invalid credit id"),
    ("credit id beyond 64 bits", lambda a: a.service.show_credit(2**63), exc.InvalidInput,
     "invalid credit id"),
    # payments and states
    ("payment amount differs",
     lambda a: a.service.pay_order(a.ids["pending"], amount="31", at=T_OPEN),
     exc.InvalidAmount, "does not match"),
    ("payment amount as float",
     lambda a: a.service.pay_order(a.ids["pending"], amount=30.0, at=T_OPEN),
     exc.InvalidAmount, "decimal string"),
    ("payment currency differs",
     lambda a: a.service.pay_order(a.ids["pending"], currency="USD", at=T_OPEN),
     exc.CurrencyMismatch, "does not match"),
    ("payment currency unknown",
     lambda a: a.service.pay_order(a.ids["pending"], currency="EURO", at=T_OPEN),
     exc.InvalidCurrency, "invalid currency"),
    ("payment of a lapsed order", lambda a: a.service.pay_order(a.ids["pending"]),
     exc.InvalidState, "lapsed"),
    # a back-dated --at before the order or credit existed
    ("payment before the order was created",
     lambda a: a.service.pay_order(a.ids["pending"], at=dt.datetime(2026, 2, 1, tzinfo=UTC)),
     exc.InvalidInput, "is earlier"),
    ("cancellation before the order was created",
     lambda a: a.service.cancel_order(a.ids["pending"], at=dt.datetime(2026, 2, 1, tzinfo=UTC)),
     exc.InvalidInput, "is earlier"),
    ("void before the credit was granted",
     lambda a: a.service.void_credit(a.ids["paid_credit"], reason="fraud",
                                     at=dt.datetime(2026, 1, 1, tzinfo=UTC)),
     exc.InvalidInput, "is earlier"),
    ("order at the end of time",
     lambda a: a.service.create_order("p1", "10", at=dt.datetime(9999, 12, 30, tzinfo=UTC)),
     exc.InvalidInput, "invalid time"),
    ("payment currency not text",
     lambda a: a.service.pay_order(a.ids["pending"], currency=["EUR"], at=T_OPEN),
     exc.InvalidCurrency, "invalid currency"),
    ("payment of a cancelled order",
     lambda a: a.service.pay_order(a.ids["cancelled"], at=T_OPEN), exc.InvalidState,
     "cancelled"),
    ("cancel a paid order", lambda a: a.service.cancel_order(a.ids["paid"], at=T_OPEN),
     exc.InvalidState, "only a pending order"),
    ("void without reason",
     lambda a: a.service.void_credit(a.ids["voucher_credit"], reason="   "),
     exc.InvalidInput, "needs a reason"),
    ("void with a non-text reason",
     lambda a: a.service.void_credit(a.ids["voucher_credit"], reason=5),
     exc.InvalidInput, "needs a reason"),
    ("void twice", lambda a: a.service.void_credit(a.ids["voided_credit"], reason="again"),
     exc.InvalidState, "already voided"),
    # voucher codes (refused offline, before any catalog call or attempt record)
    ("code too short", lambda a: a.service.activate_voucher("p1", "AB"), exc.InvalidVoucherCode,
     "4 to 64"),
    ("code not text", lambda a: a.service.activate_voucher("p1", None),
     exc.InvalidVoucherCode, "must be text"),
    ("code with symbols", lambda a: a.service.check_voucher("WELC;OME"), exc.InvalidVoucherCode,
     "4 to 64"),
    ("code too long", lambda a: a.service.activate_voucher("p1", "A" * 65),
     exc.InvalidVoucherCode, "4 to 64"),
    ("voucher for a bad project id", lambda a: a.service.activate_voucher("p 1", "WELCOME-2026"),
     exc.InvalidInput, "invalid project id"),
    # invoices through the InvoiceProcessor
    ("invoice not an object", lambda a: a.processor.process("INV-1"),
     exc.InvalidInput, "expected an invoice object"),
    ("invoice float amount", lambda a: a.processor.process(a.invoice(line_amount=10.5)),
     exc.InvalidInput, "decimal string"),
    ("invoice negative line", lambda a: a.processor.process(a.invoice(line_amount="-1")),
     exc.InvalidInput, "negative"),
    ("invoice 7 decimals", lambda a: a.processor.process(a.invoice(line_amount="0.0000001")),
     exc.InvalidInput, "more than 6 decimal places"),
    ("invoice bad currency", lambda a: a.processor.process(a.invoice(currency="EURO")),
     exc.InvalidInput, "currency"),
    ("invoice bad date", lambda a: a.processor.process(a.invoice(issued_at="March 1st")),
     exc.InvalidInput, "issued_at"),
    ("invoice unknown field", lambda a: a.processor.process(a.invoice(total="10.00")),
     exc.InvalidInput, "total"),
    ("invoice bad project id", lambda a: a.processor.process(a.invoice(project_id="p 1")),
     exc.InvalidInput, "project_id"),
    ("invoice lines totalling too much",
     lambda a: a.processor.process(a.invoice(lines=[
         {"id": str(n), "product": "compute", "amount": "999999999999999999.999999"}
         for n in range(2)])),
     exc.InvalidInput, "add up to more than the largest amount"),
    ("invoice out of range in UTC",
     lambda a: a.processor.process(a.invoice(issued_at="9999-12-31T23:30:00-01:00")),
     exc.InvalidInput, "out of range"),
    ("invoice empty line id", lambda a: a.processor.process(a.invoice(line_id="")),
     exc.InvalidInput, "lines.0.id"),
    ("invoice settled before with other content",
     lambda a: a.processor.process({**SETTLED_INVOICE, "lines": GOOD_INVOICE["lines"]}),
     exc.SettlementConflict, "different content"),
    ("batch size zero", lambda a: list(a.processor.process_many([GOOD_INVOICE], batch_size=0)),
     exc.InvalidInput, "batch_size must be at least 1"),
    # charges a host builds itself (CloudKitty): checked like invoices
    ("charge in an unknown currency",
     lambda a: a.service.settle([a.charge(project_id="p9", key="invoice/p9/X", currency="ZZZ")]),
     exc.InvalidCurrency, "unknown currency"),
    ("charge for a bad project id",
     lambda a: a.service.settle([a.charge(project_id="p 9", key="invoice/p 9/X")]),
     exc.InvalidInput, "invalid project id"),
    ("charge with a negative line", lambda a: a.service.settle([a.line(Decimal("-1"))]),
     exc.InvalidAmount, "negative"),
    ("charge below the ledger's scale", lambda a: a.service.settle([a.line(Decimal("1E-7"))]),
     exc.InvalidAmount, "more than 6 decimal places"),
    ("charge with a float line", lambda a: a.service.settle([a.line(1.5)]), exc.InvalidAmount,
     "must be a Decimal, not float"),
    ("charge with a text line", lambda a: a.service.settle([a.line("10")]), exc.InvalidAmount,
     "must be a Decimal, not str"),
    ("charge with a line id too long",
     lambda a: a.service.settle([a.charge(lines=[Line("l" * 256, "compute", Decimal(1))])]),
     exc.InvalidInput, "invalid line id"),
    ("charge with an empty product",
     lambda a: a.service.settle([a.charge(lines=[Line("l1", "", Decimal(1))])]),
     exc.InvalidInput, "invalid product"),
    ("charge totalling too much",
     lambda a: a.service.settle([a.charge(lines=[
         Line(str(n), "compute", Decimal("999999999999999999.999999")) for n in range(2)])]),
     exc.InvalidAmount, "total is too large"),
    ("charge at a naive time",
     lambda a: a.service.settle([a.charge(at=dt.datetime(2026, 2, 3))]), exc.InvalidInput,
     "aware datetime"),
    ("charge with an empty key", lambda a: a.service.settle([a.charge(key="")]),
     exc.InvalidInput, "invalid settlement key"),
    ("unknown on_change", lambda a: a.service.settle([a.charge()], on_change="merge"),
     exc.InvalidInput, "on_change"),
    # expiry
    ("expiry batch size zero", lambda a: a.service.expire(batch_size=0), exc.InvalidInput,
     "batch_size must be at least 1"),
    ("expiry time as text", lambda a: a.service.expire(at="tomorrow"),
     exc.InvalidInput, "invalid time"),
    # configuration values, through from_conf
    ("config currency without minor unit", lambda a: a.from_config({"default_currency": "XAU"}),
     exc.ConfigError, "[cloud_credit] currency 'XAU' has no minor unit"),
    ("config minimum not a number", lambda a: a.from_config({"purchase_min_amount": "five"}),
     exc.ConfigError, "purchase_min_amount 'five' is not a decimal number"),
    ("config minimum above maximum",
     lambda a: a.from_config({"purchase_min_amount": "10", "purchase_max_amount": "9"}),
     exc.ConfigError, "above purchase_max_amount"),
    ("config template field",
     lambda a: a.from_config({"payment_url_template": "https://pay.example/{invoice}"}),
     exc.ConfigError, "unknown field"),
    ("config connection URL", lambda a: a.from_config({"connection": "://nowhere"}),
     exc.ConfigError, "connection URL"),
    ("config catalog driver", lambda a: a.from_config({}, {"driver": "nope"}), exc.ConfigError,
     "driver 'nope' is not installed"),
    ("config http catalog without endpoint", lambda a: a.from_config({}, {"driver": "http"}),
     exc.ConfigError, "endpoint is required"),
]


@pytest.mark.parametrize(
    ("name", "call", "error", "fragment"), API_CASES, ids=[c[0] for c in API_CASES]
)
def test_bad_input_through_the_python_api(
    seeded: Seeded, name: str, call: Call, error: type[Exception], fragment: str
) -> None:
    service = seeded.ledger.service()
    api = Api(service, InvoiceProcessor(cfg.ConfigOpts(), service=service), seeded.ids,
              seeded.ledger)
    try:
        with seeded.unchanged():
            with pytest.raises(exc.CreditError) as raised:
                call(api)
            assert type(raised.value) is error, repr(raised.value)
            message = str(raised.value)
            assert "\n" not in message and fragment in message, message
    finally:
        service.close()


def test_a_write_is_caught_and_leaves_the_ledger_to_be_rebuilt(seeded: Seeded) -> None:
    """The control of every case above: one written row changes the checksum.

    The seeded ledger is then left ``dirty``: the ``seeded`` fixture of the
    next case drops it and seeds a new one.
    """
    service = seeded.ledger.service()
    try:
        with (
            pytest.raises(AssertionError, match="the database changed"),
            seeded.unchanged(),
        ):
            service.create_order("p1", "10", at=T_OPEN)
    finally:
        service.close()
    assert seeded.dirty


def test_at_least_fifty_bad_inputs_each_way() -> None:
    assert len(CASES) + len(CONFIG_CASES) >= 50
    assert len(API_CASES) >= 50


def test_missing_config_file_is_one_line(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    from ovh_credit_plugin.cli.app import main

    code = main(["--config-file", "/nonexistent.conf", "credit", "list", "p1"])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.splitlines()) == 1
    assert "/nonexistent.conf" in err


def test_unmigrated_database_says_what_to_do(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from ovh_credit_plugin.cli.app import main

    conf = tmp_path / "c.conf"
    conf.write_text(f"[cloud_credit]\nconnection = sqlite:///{tmp_path}/empty.sqlite\n")
    code = main(["--config-file", str(conf), "credit", "list", "p1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (f"ovh-credit: the ledger database sqlite:///{tmp_path}/empty.sqlite has no "
                   "tables yet: run 'ovh-credit db upgrade'\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["credit", "list", "p1"],
        ["credit", "show", "1"],
        ["order", "list", "p1"],
        ["voucher", "pending"],
        ["audit"],
        ["order", "create", "p1", "10"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_missing_sqlite_file_is_not_created_but_by_db_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    ledger = tmp_path / "mistyped.sqlite"
    conf = tmp_path / "c.conf"
    conf.write_text(f"[cloud_credit]\nconnection = sqlite:///{ledger}\n")
    capsys.readouterr()
    code = main(["--config-file", str(conf), *argv])
    out, err = capsys.readouterr()
    assert_one_line_error(Result(code, out, err), "no tables yet: run 'ovh-credit db upgrade'")
    assert not ledger.exists()
    assert main(["--config-file", str(conf), "db", "upgrade"]) == 0
    assert ledger.exists()
    capsys.readouterr()
    main(["--config-file", str(conf), *argv])
    assert "no tables" not in capsys.readouterr().err  # ('credit show 1': no such credit)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["credit", "lst", "p1"], "unknown command 'credit lst' (did you mean 'credit list'"),
        (["bogus"], "unknown command 'bogus'; see"),
        (["--bogus", "credit", "list", "p1"], "unknown option '--bogus'"),
        ([], "a command is required"),
        (["-v"], "a command is required"),
    ],
    ids=["unknown command", "unknown word", "unknown global option", "no command", "only -v"],
)
def test_usage_errors_before_the_command_are_one_line(
    argv: list[str],
    fragment: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No command must not start cliff's interactive shell on a closed stdin.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2  # as argparse's usage errors
    assert_one_line_error(Result(code, out, err), fragment)
    assert err.startswith("ovh-credit: error: ")


@pytest.mark.parametrize("argv", [["--help"], ["credit", "list", "--help"]])
def test_help_is_a_success(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0
    assert "usage:" in out and err == ""


def test_process_many_refuses_a_bad_invoice_in_its_place(seeded: Seeded) -> None:
    seeded.dirty = True  # the good invoices are settled: the next case seeds anew
    service = seeded.ledger.service()
    processor = InvoiceProcessor(cfg.ConfigOpts(), service=service)
    try:
        bad = json.loads(bad_invoice(id="I2", line_amount="x"))
        conflict = {**SETTLED_INVOICE, "lines": GOOD_INVOICE["lines"]}
        out = list(processor.process_many([GOOD_INVOICE, bad, conflict, "nonsense"]))
        assert [is_refusal(o) for o in out] == [False, True, True, True]
        assert out[1] == {"invoice": "I2", "project_id": "p1",
                          "error": out[1]["error"]}
        assert out[1]["error"].startswith("invoice #2: lines.0.amount")
        assert "different content" in out[2]["error"]
        assert out[3] == {"invoice": None, "project_id": None,
                          "error": "invoice #4: expected an invoice object"}
        # An invoice in another currency than the project's credit: settled, noted.
        usd = processor.process({**GOOD_INVOICE, "id": "USD-1", "currency": "USD"})
        assert (usd["amount_due"], usd["note"]) == ("10.00", "currency_mismatch")
        # A host's own charge likewise (CloudKitty's, should the currency change).
        api = Api(service, processor, seeded.ids, seeded.ledger)
        [charge] = service.settle([api.charge(currency="USD")])
        assert charge.note == "currency_mismatch" and charge.credit_applied == 0
    finally:
        service.close()
