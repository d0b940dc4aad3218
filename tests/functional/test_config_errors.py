"""A config typo never opens another ledger; database errors say which database and why
(issue 14, point 3).

- an unknown option in [cloud_credit] or [voucher_catalog], or a section named almost
  like them, is an error naming it and the closest valid name; a host's other sections
  (cloudkitty.conf's) are left alone;
- a database error names the database (password hidden) and the cause when it can be
  told (missing directory, read-only file, permission); ``postgres://`` says what to write;
- ``./ovh-credit-ledger.sqlite`` is used only when no file names a connection, and
  ``db upgrade`` says so, and where it created it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ovh_credit_plugin.cli.app import main
from tests.support.cli import Result
from tests.support.ledgers import Ledger

FALLBACK = "ovh-credit-ledger.sqlite"
Run = Callable[..., Result]


@pytest.fixture
def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Run:
    # The working directory is where the fallback ledger would appear.
    monkeypatch.chdir(tmp_path)

    def call(text: str, *argv: str) -> Result:
        conf = tmp_path / "given.conf"
        conf.write_text(text)
        capsys.readouterr()
        code = main(["--config-file", str(conf), *argv])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


def one_line(result: Result) -> str:
    assert result.code == 1, result
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "Traceback" not in line
    return line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[cloud-credit]\nconnection = sqlite:///x.sqlite\n",
         "unknown section [cloud-credit] (did you mean [cloud_credit]?)"),
        ("[Cloud_Credit]\nconnection = sqlite:///x.sqlite\n",
         "unknown section [Cloud_Credit] (did you mean [cloud_credit]?)"),
        ("[cloudcredit]\nconnection = sqlite:///x.sqlite\n",
         "unknown section [cloudcredit] (did you mean [cloud_credit]?)"),
        ("[voucher-catalog]\ndriver = file\n",
         "unknown section [voucher-catalog] (did you mean [voucher_catalog]?)"),
        ("[cloud_credit]\nconection = sqlite:///x.sqlite\n",
         "unknown option 'conection' in [cloud_credit] (did you mean 'connection'?)"),
        ("[cloud_credit]\nconnection = sqlite:///x.sqlite\ndefault_curency = EUR\n",
         "unknown option 'default_curency' in [cloud_credit] (did you mean 'default_currency'?)"),
        ("[voucher_catalog]\nendpont = https://v.example\n",
         "unknown option 'endpont' in [voucher_catalog] (did you mean 'endpoint'?)"),
        ("[cloud_credit]\ncolour = blue\n", "unknown option 'colour' in [cloud_credit]"),
    ],
    ids=["dash", "case", "no underscore", "catalog dash", "option", "option 2",
         "catalog option", "nothing close"],
)
def test_a_typo_in_our_sections_is_an_error_naming_the_closest_name(
    run: Run, tmp_path: Path, text: str, expected: str
) -> None:
    for argv in (["credit", "list", "p1"], ["db", "upgrade"]):
        line = one_line(run(text, *argv))
        assert line == f"ovh-credit: {tmp_path / 'given.conf'}: {expected}"
    assert not (tmp_path / FALLBACK).exists() and not (tmp_path / "x.sqlite").exists()


def test_a_hosts_other_sections_are_left_alone(run: Run, ledger: Ledger) -> None:
    """ovh-credit pointed at cloudkitty.conf: its ledger is [database] connection."""
    text = (
        "[DEFAULT]\ndebug = true\ntransport_url = rabbit://u:p@mq//\n"
        "[keystone_authtoken]\nauth_url = http://keystone/v3\n"
        f"[database]\nconnection = {ledger.url}\nmax_retries = 5\n"
        "[collect]\ncollector = gnocchi\n[orchestrator]\ncoordination_url = file:///tmp\n"
        f"[voucher_catalog]\ndriver = file\nfile_path = {ledger.vouchers}\n"
    )
    result = run(text, "credit", "list", "p1", "-f", "json")
    assert (result.code, result.stdout.strip(), result.stderr) == (0, "[]", "")


def test_postgres_scheme_says_what_to_write(run: Run) -> None:
    line = one_line(run(
        "[cloud_credit]\nconnection = postgres://credit:s3cret@db/credit\n", "credit", "list",
        "p1"))
    assert line == ("ovh-credit: [cloud_credit] connection postgres://credit:***@db/credit: "
                    "write postgresql+psycopg:// instead of postgres://")


def test_an_unreachable_server_is_named_without_its_password(run: Run) -> None:
    line = one_line(run(
        "[cloud_credit]\nconnection = postgresql+psycopg://credit:s3cret@127.0.0.1:1/credit\n"
        "pool_size = 1\n", "db", "upgrade"))
    assert line.startswith(
        "ovh-credit: ledger database postgresql+psycopg://credit:***@127.0.0.1:1/credit: ")
    assert "s3cret" not in line and "refused" in line.lower()


def test_a_missing_directory_is_named(run: Run, tmp_path: Path) -> None:
    ledger = tmp_path / "no" / "such" / "ledger.sqlite"
    text = f"[cloud_credit]\nconnection = sqlite:///{ledger}\n"
    for argv in (["credit", "list", "p1"], ["db", "upgrade"]):
        line = one_line(run(text, *argv))
        assert line.startswith("ovh-credit: ") and f"sqlite:///{ledger}" in line
        assert f"directory {ledger.parent} does not exist" in line
    assert not ledger.parent.exists()


def test_a_read_only_ledger_is_named(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    assert run(f"[cloud_credit]\nconnection = sqlite:///{path}\n",
               "db", "upgrade").code == 0
    text = f"[cloud_credit]\nconnection = sqlite:///file:{path}?mode=ro&uri=true\n"
    line = one_line(run(text, "order", "create", "p1", "10"))
    assert "attempt to write a readonly database (the URL asks for mode=ro)" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_file_without_write_permission_is_named(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    text = f"[cloud_credit]\nconnection = sqlite:///{path}\n"
    assert run(text, "db", "upgrade").code == 0
    path.chmod(0o444)
    try:
        line = one_line(run(text, "order", "create", "p1", "10"))
    finally:
        path.chmod(0o644)
    assert line.endswith(f"({path} is read-only)")


def test_an_empty_connection_is_not_the_fallback(run: Run, tmp_path: Path) -> None:
    line = one_line(run("[cloud_credit]\nconnection =\n", "db", "upgrade"))
    assert line.startswith("ovh-credit: [cloud_credit] connection is empty")
    assert not (tmp_path / FALLBACK).exists()


def test_the_fallback_ledger_is_said_where_it_is_used(run: Run, tmp_path: Path) -> None:
    text = "[cloud_credit]\ndefault_currency = EUR\n"
    line = one_line(run(text, "credit", "list", "p1"))
    assert line == (f"ovh-credit: the ledger database sqlite:///{FALLBACK} has no tables yet: "
                    "run 'ovh-credit db upgrade' (the default ledger: no configuration file "
                    "names a [cloud_credit] connection)")
    first = run(text, "db", "upgrade")
    assert first.code == 0 and first.stderr == ""
    assert first.stdout.endswith(
        f"({tmp_path / FALLBACK}, created; the default ledger: no configuration file names "
        "a [cloud_credit] connection)\n")
    again = run(text, "db", "upgrade")
    assert "created" not in again.stdout and "the default ledger" in again.stdout
    assert run(text, "credit", "list", "p1", "-f", "json").stdout.strip() == "[]"
