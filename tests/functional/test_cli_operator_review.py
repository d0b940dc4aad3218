"""``ovh-credit`` as an operator meets it at 3 a.m.: odd arguments, pipes, odd inputs.

- an ``--at`` or ``--now`` the ledger's arithmetic cannot take (year 1, an offset
  that leaves the calendar in UTC) is one usage line naming the option, and
  nothing is written;
- ``settle`` reads a pipe it is given by name (``<(zcat invoices.gz)``, a FIFO),
  and an empty FILE (an unset shell variable) is ``settle``'s error, never another
  command's;
- a reader that stops reading (``| head -1``) ends the command quietly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Cli
from tests.support.ledgers import Ledger

# Argument parsing and input reading: the backend does not matter.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

OVH_CREDIT = str(Path(sys.executable).with_name("ovh-credit"))

INVOICE = {
    "id": "INV-1", "project_id": "p1", "currency": "EUR", "issued_at": "2026-03-01T00:00:00Z",
    "lines": [{"id": "l1", "product": "compute", "amount": "4.00"}],
}


def _one_usage_line(stderr: str, option: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert f"argument {option}:" in lines[0], stderr
    assert "Traceback" not in stderr and "parse_time" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("command", [
    ("credit", "forecast", "p1"),
    ("voucher", "attempts", "p1"),
    ("voucher", "activate", "p1", "WELCOME-2026"),
    ("order", "create", "p1", "10"),
], ids=" ".join)
def test_an_at_in_year_one_is_a_usage_line_naming_the_option(
        cli: Cli, command: tuple[str, ...]) -> None:
    """Was "ovh-credit: date value out of range" (forecast, attempts, activation),
    or an order written in year 1."""
    result = cli(*command, "--at", "0001-01-01")
    assert result.code == 2, (result.stdout, result.stderr)
    line = _one_usage_line(result.stderr, "--at")
    assert "0001-01-01" in line and "1970-01-01" in line
    assert result.stdout == ""
    assert cli.ok("order", "list", "p1") == []
    assert cli.ok("credit", "list", "p1") == []


def test_a_now_in_year_one_is_a_usage_line_naming_the_option(cli: Cli) -> None:
    result = cli("--now", "0001-01-01T00:00:00Z", "credit", "forecast", "p1")
    assert result.code == 2
    _one_usage_line(result.stderr, "--now")


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_an_offset_that_leaves_the_calendar_in_utc_says_so(cli: Cli, when: str) -> None:
    """Was "invalid parse_time value: '...'": the function's name, not the problem."""
    result = cli("credit", "list", "p1", "--at", when)
    assert result.code == 2
    line = _one_usage_line(result.stderr, "--at")
    assert "out of range in UTC" in line


def test_an_at_past_the_ledgers_last_year_names_the_option(cli: Cli) -> None:
    result = cli("order", "create", "p1", "10", "--at", "9999-12-31")
    assert result.code == 2
    assert "after 9000-01-01T00:00:00Z" in _one_usage_line(result.stderr, "--at")
    assert cli.ok("order", "list", "p1") == []


def test_settle_reads_a_pipe_given_by_name(cli: Cli, tmp_path: Path) -> None:
    """``ovh-credit settle <(zcat invoices.jsonl.gz)``: bash names a pipe /dev/fd/63.
    Was "no such invoice file: /dev/fd/63"."""
    cli.ok("order", "pay", cli.ok("order", "create", "p1", "10", "--at",
                                  "2026-02-01T00:00:00Z")["id"], "--at", "2026-02-01T00:00:00Z")
    fifo = tmp_path / "invoices.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w") as pipe:
            pipe.write(json.dumps(INVOICE) + "\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    result = cli("settle", str(fifo))
    writer.join(timeout=10)
    assert result.code == 0, result.stderr
    (settled,) = result.json()
    assert (settled["invoice_id"], settled["credit_applied"]) == ("INV-1", "4.00")


def test_settle_of_a_directory_says_what_it_is(cli: Cli, tmp_path: Path) -> None:
    result = cli("settle", str(tmp_path))
    assert result.code == 1
    assert result.stderr.splitlines() == [f"ovh-credit: Is a directory: {tmp_path}"]


def test_settle_of_an_empty_file_name_is_settles_own_error(cli: Cli) -> None:
    """``ovh-credit settle "$INVOICES"`` with the variable unset: cliff took the empty
    word for an abbreviation and ran ``settlement show`` ("arguments are required: KEY")."""
    result = cli("settle", "")
    assert result.code == 1, result.stderr
    assert result.stderr.splitlines() == ["ovh-credit: no such invoice file: ''"]


def test_db_with_an_empty_word_is_not_db_upgrade(cli: Cli) -> None:
    result = cli("db", "")
    assert result.code == 2
    assert "ledger database at revision" not in result.stdout
    assert result.stderr.startswith('ovh-credit: error: unknown command "db \'\'"'), (
        result.stderr)
    # The empty word named where it stands, not dropped from the message.
    blank = cli("", "list")
    assert blank.code == 2
    assert blank.stderr.startswith('ovh-credit: error: unknown command "\'\' list"'), (
        blank.stderr)


def test_a_reader_that_stops_reading_ends_the_command_quietly(ledger: Ledger) -> None:
    """``ovh-credit credit list P -f json | head -1``: was "ovh-credit: Broken pipe" (exit
    status 1) on stderr; cliff's own answer is silence and status 141 (128 + SIGPIPE)."""
    service = ledger.service()
    try:
        for _ in range(300):  # more output than a pipe's buffer
            service.pay_order(service.create_order("p1", "10").id)
    finally:
        service.close()
    shell = (f"{OVH_CREDIT} --config-file {ledger.config} credit list p1 -f json | head -1; "
             "exit ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.stdout == "[\n"
    assert done.stderr == ""
    assert done.returncode == 141


@pytest.mark.parametrize("formatter", ["table", "csv", "json"])
def test_ctrl_c_during_settle_shows_what_was_committed(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, formatter: str) -> None:
    """Batches are committed one by one: after Ctrl-C, the output lists those settled
    (as after an error), whatever the format; was nothing in a table or CSV."""
    from ovh_credit_plugin.cli import settle_input

    read = settle_input.Source.documents

    def interrupted(source: settle_input.Source) -> Iterator[Any]:
        for number, document in enumerate(read(source), start=1):
            if number == 3:  # the operator's Ctrl-C, while the third is read
                raise KeyboardInterrupt
            yield document

    monkeypatch.setattr(settle_input.Source, "documents", interrupted)
    lines = "".join(json.dumps({**INVOICE, "id": f"INV-{n}"}) + "\n" for n in range(1, 5))
    result = cli("settle", "-", "--batch-size", "1", "-f", formatter, json_output=False,
                 stdin=lines)
    assert result.code == 130  # cliff's status for an interrupted command
    assert "Traceback" not in result.stderr
    settled = [cli.ok("settlement", "show", "INV-1", "--project", "p1")["invoice_id"]]
    settled += [cli.ok("settlement", "show", "INV-2", "--project", "p1")["invoice_id"]]
    assert cli("settlement", "show", "INV-3", "--project", "p1").code == 1
    for invoice_id in settled:
        assert invoice_id in result.stdout, result.stdout
