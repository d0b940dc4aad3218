"""``ovh-credit db upgrade --lock-timeout SECONDS``: how long to wait for another upgrade.

Without it an upgrade waits up to ten minutes (``migration.LOCK_TIMEOUT``; SQLite:
``[cloud_credit] sqlite_busy_timeout``) for another one holding the upgrade lock.
With it, against a lock held by another connection (as a running upgrade holds
it, on each backend), the command gives up after about that long: one line on
stderr, exit status 1, nothing migrated. A bad value is one line too, before
anything is opened.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ovh_credit_plugin.cli.app import main
from ovh_credit_plugin.ledger import migration
from ovh_credit_plugin.ledger.database import create_engine
from tests.functional.test_migration_concurrent_upgrades import (
    _config,
    _lock_held,
    an_empty_ledger,
)
from tests.support.ledgers import ServerPool, new_database_url


def _cli(config: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config-file", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("seconds", ["1", "0.5"])
def test_an_upgrade_waits_for_a_held_lock_as_long_as_lock_timeout_says(
    backend: str, server_pool: ServerPool, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], seconds: str,
) -> None:
    url = an_empty_ledger(backend, server_pool, tmp_path)
    # The defaults: 600 s for the lock, 30 s for SQLite's write lock.
    config = _config(tmp_path / "ovh-credit.conf", url)
    shown = sa.make_url(url).render_as_string(hide_password=True)
    argv = ["db", "upgrade", "--lock-timeout", seconds]

    with _lock_held(backend, url):
        began = time.monotonic()
        code, out, err = _cli(config, capsys, *argv)
        waited = time.monotonic() - began

    assert (code, out) == (1, ""), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    if backend == "sqlite":  # its busy timeout counts whole seconds: 0.5 waits 1
        assert err == (f"ovh-credit: the ledger database {shown} stayed locked by another "
                       "process (another 'db upgrade', or a writer) for longer than 1 s "
                       "(--lock-timeout): run 'ovh-credit db upgrade' again once it is "
                       "done\n")
        assert 1 <= waited < 6, waited
    else:
        assert err == (f"ovh-credit: another 'db upgrade' of the ledger database {shown} "
                       f"has held the upgrade lock for longer than {seconds} s: run "
                       "'ovh-credit db upgrade' again once it is done\n")
        assert float(seconds) <= waited < 6, waited
    # Nothing was migrated; the lock released, the same command goes through.
    engine = create_engine(url)
    try:
        assert migration.current(engine) is None
    finally:
        engine.dispose()
    code, out, err = _cli(config, capsys, *argv)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"ledger database at revision {migration.head()} (")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "nan", "inf", "86401", "1e9"])
def test_a_bad_lock_timeout_is_one_line_and_opens_nothing(
    backend: str, server_pool: ServerPool, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], value: str,
) -> None:
    url = new_database_url(backend, server_pool, tmp_path)
    config = _config(tmp_path / "ovh-credit.conf", url)

    code, out, err = _cli(config, capsys, "db", "upgrade", "--lock-timeout", value)

    assert (code, out) == (2, "")
    assert err == (f"ovh-credit db upgrade: error: argument --lock-timeout: invalid number "
                   f"of seconds {value!r}: use a positive number, at most 86400 (a day)\n")
    assert not Path(url.removeprefix("sqlite:///")).exists()  # not even created


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_help_tells_the_lock_timeout(
    backend: str, server_pool: ServerPool, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(tmp_path / "ovh-credit.conf", new_database_url(backend, server_pool,
                                                                    tmp_path))
    code, out, err = _cli(config, capsys, "db", "upgrade", "--help")
    assert (code, err) == (0, "")
    out = " ".join(out.split())
    assert "--lock-timeout SECONDS" in out
    assert f"default {migration.LOCK_TIMEOUT}" in out
