"""What a refused invoice tells its reader, and which invoice times are read.

docs/translations.md: every message an operator reads (the CLI's refusals of
``ovh-credit settle``, an invoice host's InvalidInput) is translated, and
never "a translated piece inside an English one".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

GOOD_LINE = {"id": "l1", "product": "compute", "amount": "10.00"}
INVOICE = {"id": "I1", "project_id": "p1", "currency": "EUR",
           "issued_at": "2026-01-01T00:00:00Z", "lines": [GOOD_LINE]}

_SCRIPT = """
import json, sys
from oslo_config import cfg
from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.hosts import invoice

documents = json.loads(sys.stdin.read())

class Service:
    def settle_invoices_json(self, parsed, *, batch_size, at):
        for item in parsed:
            assert isinstance(item, models.InvoiceRefusal), item
            yield item.json_ready()

    def settle_invoice_json(self, parsed, *, at):
        raise AssertionError(parsed)

processor = invoice.InvoiceProcessor(cfg.ConfigOpts(), service=Service())
many = [result["error"] for result in processor.process_many(documents)]
one = []
for document in documents:
    try:
        processor.process(document)
    except exceptions.InvalidInput as error:
        one.append(str(error))
print(json.dumps({"many": many, "one": one}))
"""


def _refusals(documents: list[Any], language: str) -> dict[str, list[str]]:
    env = {**os.environ, "LANGUAGE": language, "LC_ALL": "C.UTF-8"}
    done = subprocess.run([sys.executable, "-c", _SCRIPT], input=json.dumps(documents),
                          capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


BAD = [
    {**INVOICE, "lines": [{**GOOD_LINE, "amount": "x"}]},  # a field's problem
    {**INVOICE, "lines": [GOOD_LINE, GOOD_LINE]},  # a rule across fields
    "nonsense",  # no invoice object at all
]


def test_a_refused_invoice_is_told_wholly_in_french() -> None:
    found = _refusals(BAD, "fr")
    many, one = found["many"], found["one"]
    # Where: the invoice's place in the run, or the one invoice, in French.
    assert [text.split("\u00a0: ")[0] for text in many] == [
        "la facture n° 1", "la facture n° 2", "la facture n° 3"], many
    assert all(text.startswith("la facture\u00a0: ") for text in one), one
    for text in many + one:
        assert "invoice" not in text and "document" not in text, text
    # A field's problem names the field the French way (a no-break space before the
    # colon).
    assert "lines.0.amount\u00a0: " in many[0], many[0]
    assert "l'identifiant de ligne 'l1' apparaît deux fois" in many[1], many[1]


def test_a_refused_invoice_reads_as_before_in_english() -> None:
    found = _refusals(BAD, "en")
    assert found["many"][0].startswith("invoice #1: lines.0.amount: "), found
    assert found["many"][1] == "invoice #2: line id 'l1' appears twice", found
    assert found["many"][2] == "invoice #3: expected an invoice object", found
    assert found["one"][2] == "the invoice: expected an invoice object", found


# -- times: ISO 8601 text, never a number read as Unix time --------------------------

import datetime as dt  # noqa: E402

import pytest  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ovh_credit_plugin import exceptions, models  # noqa: E402
from ovh_credit_plugin.hosts.invoice import parse_invoice  # noqa: E402


@pytest.mark.parametrize("issued_at", [
    "20260131",  # ISO 8601's basic format: pydantic read it as Unix time, 1970-08-23
    "1769853600",  # digits: Unix time
    "1769853600.5",
    1769853600,  # JSON numbers (the contract's times are ISO 8601 text)
    1769853600.5,  # a float, at that
    0,
])
def test_an_invoice_time_that_is_no_iso_8601_text_is_refused(issued_at: Any) -> None:
    with pytest.raises(exceptions.InvalidInput, match="issued_at"):
        parse_invoice({**INVOICE, "issued_at": issued_at})


@given(st.integers(min_value=0, max_value=99_999_999_999))
def test_no_string_of_digits_is_taken_for_a_time(seconds: int) -> None:
    for issued_at in (seconds, str(seconds)):
        with pytest.raises(exceptions.InvalidInput, match="issued_at"):
            parse_invoice({**INVOICE, "issued_at": issued_at})


def test_a_catalogs_time_that_is_a_number_is_refused() -> None:
    voucher = {"code": "WELCOME-2026", "amount": "50.00", "currency": "EUR",
               "status": "active"}
    with pytest.raises(ValueError, match="valid_until"):
        models.Voucher.model_validate({**voucher, "valid_until": 1769853600})
    assert models.Voucher.model_validate({**voucher, "valid_until": "2026-01-31T10:00:00Z"})


@pytest.mark.parametrize(("issued_at", "expected"), [
    ("2026-01-31T10:00:00Z", dt.datetime(2026, 1, 31, 10, tzinfo=dt.timezone.utc)),
    ("2026-01-31T11:00:00+01:00", dt.datetime(2026, 1, 31, 10, tzinfo=dt.timezone.utc)),
    ("2026-01-31T10:00:00", dt.datetime(2026, 1, 31, 10, tzinfo=dt.timezone.utc)),
    ("2026-01-31", dt.datetime(2026, 1, 31, tzinfo=dt.timezone.utc)),
    (dt.datetime(2026, 1, 31, 10, tzinfo=dt.timezone.utc),
     dt.datetime(2026, 1, 31, 10, tzinfo=dt.timezone.utc)),
])
def test_iso_8601_times_and_datetimes_are_still_read(issued_at: Any, expected: dt.datetime
                                                     ) -> None:
    assert parse_invoice({**INVOICE, "issued_at": issued_at}).issued_at == expected
