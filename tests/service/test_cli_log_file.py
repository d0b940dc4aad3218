"""``ovh-credit --log-file``: the file gets what a host's log would, the console one line.

A cron job (``ovh-credit --log-file /var/log/ovh-credit.log expire``) is read
after the fact: without -v its file used to get the command's error line
only, not the expiry summary, not why a voucher was refused, not a retry.
And the console, log file or not, shows the command's error and nothing
else: urllib3's retry warnings of the voucher catalog used to come first.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from ovh_credit_plugin.cli.app import main
from tests.support.clock import TEST_NOW
from tests.support.ledgers import Ledger


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the CLI's logging, not the database, is under test


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config-file", str(config), "--now", TEST_NOW.isoformat(), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_log_file_gets_the_summary_and_the_reasons_the_console_does_not_show(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "ovh-credit.log"
    code, _out, err = run(capsys, ledger.config, "--log-file", str(log), "expire",
                          "-f", "value")
    assert (code, err) == (0, "")
    code, _out, err = run(capsys, ledger.config, "--log-file", str(log), "voucher",
                          "activate", "p1", "NO-SUCH-CODE")
    # The customer's message, one line: the reason is for the log.
    assert (code, err) == (1, "ovh-credit: this voucher code cannot be activated\n")
    text = log.read_text()
    assert "INFO     ovh_credit_plugin.service.expiry expiry at " in text
    assert ("WARNING  ovh_credit_plugin.service.vouchers voucher NO-…E refused for project "
            "p1: unknown voucher NO-…E") in text
    assert "NO-SUCH-CODE" not in text


def test_the_catalogs_retries_stay_off_the_console_and_go_to_the_log_file(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "http.conf"
    config.write_text(ledger.config.read_text().replace("driver = file", "driver = http")
                      + f"endpoint = http://127.0.0.1:{port}\nretries = 2\ntimeout = 5\n")
    for extra in ((), ("--log-file", str(tmp_path / "http.log"))):
        code, _out, err = run(capsys, config, *extra, "voucher", "activate", "p1",
                              "WELCOME-2026")
        assert code == 1
        [line] = err.splitlines()
        assert line.startswith(f"ovh-credit: voucher catalog at http://127.0.0.1:{port} "
                               "unavailable: cannot connect")
    text = (tmp_path / "http.log").read_text()
    assert text.count("WARNING  urllib3.connectionpool Retrying") == 2
    assert "WELCOME-2026" not in text


def test_a_process_running_the_cli_keeps_its_own_log_handlers_as_they_were(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The console filter is cliff's handler's alone: on the embedding
    # process's handlers (here pytest's) it hid our warnings for ever after.
    run(capsys, ledger.config, "--log-file", str(tmp_path / "run.log"), "expire")
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="ovh_credit_plugin")
    logging.getLogger("ovh_credit_plugin.service.expiry").warning("still seen")
    assert [r.getMessage() for r in caplog.records] == ["still seen"]
