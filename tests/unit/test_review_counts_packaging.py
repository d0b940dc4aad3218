"""Review of 05a46db (the throttle's moment), fe9c8d5 (grouped counts) and 075436d (packaging).

Each test pins down what was checked and found right, or a finding fixed after it
(a date as Retry-After, a bound worded as it is typed, the migration's lock timeout
grouped, a Retry-After of other digits, tarfile without extraction filters).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ovh_credit_plugin import i18n
from ovh_credit_plugin.api import errors as api_errors
from ovh_credit_plugin.catalog.http import errors as catalog_errors
from ovh_credit_plugin.catalog.http import wire
from ovh_credit_plugin.cli import commands
from ovh_credit_plugin.ledger import migration
from ovh_credit_plugin.osc import client
from ovh_credit_plugin.service import voucher_throttle

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    # A command line's mode (tests/__init__.py: English), whatever ran before in this module.
    import oslo_i18n

    monkeypatch.setattr(oslo_i18n._lazy, "USE_LAZY", False)


# -- conftest: the per-module reset runs before a module's own module-scoped app --------

@pytest.fixture(scope="module")
def module_api() -> Iterator[None]:
    # What a module-scoped in-process REST API fixture does when it makes its app.
    i18n.enable_lazy()
    yield


def test_a_module_scoped_api_made_in_a_module_keeps_its_lazy_mode(module_api: None) -> None:
    # tests/conftest.py's autouse module fixture is set up first (autouse before the
    # others of its scope), so its reset cannot undo the app's lazy mode.
    import oslo_i18n

    assert oslo_i18n._lazy.USE_LAZY


# -- 05a46db: the throttle's moment and Retry-After -------------------------------------

@pytest.mark.usefixtures("eager")
def test_a_wait_of_a_microsecond_says_a_moment_after_the_try_and_retry_after_1() -> None:
    at = dt.datetime(2026, 1, 31, 10, 0, 0, tzinfo=dt.timezone.utc)
    refusal = voucher_throttle.throttled(at, 1e-6)
    assert refusal.retry_after == 1
    assert str(refusal).endswith("try again after Jan 31, 2026, 10:00:01\u00a0AM\u00a0UTC")
    assert api_errors.from_exception(refusal, throttle_window=600).headers == {
        "Retry-After": "1"}


# -- 075436d: the packaging tests on the Pythons requires-python takes ------------------

# Python 3.10.0-3.10.11 and 3.11.0-3.11.3 (Debian 12's python3 is 3.11.2) have no
# extraction filters (PEP 706): TarFile.extractall takes no ``filter``.
_OLD_TARFILE = """
import tarfile

_extractall = tarfile.TarFile.extractall


def extractall(self, path=".", members=None, *, numeric_owner=False):
    return _extractall(self, path, members, numeric_owner=numeric_owner)


tarfile.TarFile.extractall = extractall
del tarfile.data_filter
"""


def test_the_packaging_tests_run_on_a_python_without_tar_extraction_filters(
        tmp_path: Path) -> None:
    (tmp_path / "old_tarfile.py").write_text(_OLD_TARFILE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-p", "old_tarfile",
         "tests/unit/test_packaging.py::test_the_wheel_carries_the_licence_text"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:]


# -- fe9c8d5: counts in messages --------------------------------------------------------

@pytest.mark.usefixtures("eager")
def test_a_catalog_asking_to_wait_until_a_date_is_not_said_to_ask_for_seconds() -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    answer = wire.Answer(status=429, body=b"", request_id=None, attempts=2, retry_after=date)
    message = str(catalog_errors.from_answer(answer, where="https://catalog.test",
                                             code="WELCOME-2026"))
    assert date in message
    assert f"{date} s" not in message


@pytest.mark.usefixtures("eager")
def test_the_most_a_lock_timeout_refusal_names_is_a_value_the_option_takes() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        commands.parse_lock_timeout("86401")
    said = str(refused.value)
    assert said.endswith(" (a day)"), said
    most = said.removesuffix(" (a day)").rpartition("at most ")[2]
    assert commands.parse_lock_timeout(most) == commands.MAX_LOCK_TIMEOUT


@pytest.mark.usefixtures("eager")
def test_an_upgrade_lock_timeout_is_written_as_the_sqlite_one_is() -> None:
    engine = sa.create_engine("postgresql+psycopg://ovh@db.test/ledger")
    try:
        said = str(migration._lock_timed_out(engine, 3600.0))
    finally:
        engine.dispose()
    assert f"for longer than {i18n.count(3600, now=True)} s" in said, said


@pytest.mark.usefixtures("eager")
def test_a_retry_after_of_other_digits_is_an_error_message_not_a_crash() -> None:
    failure = client.error_message(429, b"", {"Retry-After": "\u00b2"})
    assert isinstance(failure, client.CreditAPIError)
    assert failure.retry_after is None

