"""Shared fixtures: a migrated ledger on SQLite, PostgreSQL and MariaDB; the CLI in-process.

Every test that takes ``ledger`` (or ``service``, ``cli``) runs once per backend,
on a database of its own: a clone of a ledger migrated once per session
(:class:`tests.support.ledgers.LedgerTemplate`). The harness itself lives in
``tests/support/``; test modules import it from there, never from this file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from ovh_credit_plugin.ledger.database import Database, create_engine
from ovh_credit_plugin.service import CreditService
from tests.support import mutation_order
from tests.support.cli import Cli
from tests.support.ledgers import (
    BACKENDS,
    Ledger,
    ServerPool,
    drop_ledger,
    new_ledger,
    scratch_root,
)

# Hypothesis in CI (CI=true) draws the same examples on every run: a red CI
# run fails the same way on a developer's machine with CI=true, and a green one
# is not a lucky draw. Locally, examples are random (more ground covered over
# time) and a failure prints its blob to replay. OVH_CREDIT_HYPOTHESIS_PROFILE
# picks a profile by hand.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
HYPOTHESIS_PROFILE = os.environ.get("OVH_CREDIT_HYPOTHESIS_PROFILE") or (
    "ci" if os.environ.get("CI", "").lower() == "true" else "dev")
settings.load_profile(HYPOTHESIS_PROFILE)


# Mutation testing (tools/mutation.py, docs/testing.md) runs the tests once per
# mutant, thousands of times: there properties draw at most MUTATION_EXAMPLES
# examples (OVH_CREDIT_MUTATION_EXAMPLES; their pinned @examples still run), and
# slow tests that prove no money rule, or prove one at a scale the others
# already cover, are left out. Never in a normal run.
MUTATION = os.environ.get("OVH_CREDIT_MUTATION") == "1"
MUTATION_EXAMPLES = int(os.environ.get("OVH_CREDIT_MUTATION_EXAMPLES", "30"))
MUTATION_LEFT_OUT = (
    # scale: micro-unit lines used up to the last micro-unit run in
    # test_huge_and_sub_cent_amounts_round_trip_through_the_service_and_the_cli
    "tests/service/test_money_roundtrip.py::test_a_million_micro_debits_sum_exactly",
    # packaging and imports, not money
    "tests/integration/test_cloudkitty.py::test_cloudkitty_dbsync_creates_the_ledger_tables",
    "tests/service/test_events.py::test_without_notifications_oslo_messaging_is_not_even_imported",
)


def pytest_sessionstart(session: pytest.Session) -> None:
    if MUTATION:
        # mutmut forks each mutant's run from a process that already ran the tests:
        # a reader cached there would be the unmutated one, and its mutants could
        # never fail a test.
        from ovh_credit_plugin.ledger import credits

        credits._CONVERTERS.clear()
        credits._RECORD_CONVERTERS.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not MUTATION:
        return
    kept, left_out = [], []
    for item in items:
        (left_out if item.nodeid.startswith(MUTATION_LEFT_OUT) else kept).append(item)
        test = getattr(item, "obj", None)
        # @settings sets this on the @given wrapper, which reads it when it runs.
        chosen = getattr(test, "_hypothesis_internal_use_settings", None)
        if chosen is not None and chosen.max_examples > MUTATION_EXAMPLES:
            test._hypothesis_internal_use_settings = settings(  # type: ignore[union-attr]
                chosen, max_examples=MUTATION_EXAMPLES)
    kept, not_selected = mutation_order.select(kept)
    left_out += not_selected
    if left_out:
        config.hook.pytest_deselected(items=left_out)
    mutation_order.sort(kept)
    items[:] = kept


def pytest_configure(config: pytest.Config) -> None:
    if MUTATION:
        config.pluginmanager.register(mutation_order, "ovh-credit-mutation-order")


def pytest_report_header() -> str:
    return f"hypothesis profile: {HYPOTHESIS_PROFILE} (derandomize={settings().derandomize})"


@pytest.fixture(scope="module", autouse=True)
def _eager_messages_per_module() -> Iterator[None]:
    """Each module starts in oslo.i18n's eager mode, and leaves it so.

    The REST API turns lazy mode on for the whole process when an app is made
    (messages wait for the request's language): without this, an in-process API
    test would change how every later module's messages are written, and a test
    would pass or fail with the order the files ran in.
    """
    import oslo_i18n

    oslo_i18n._lazy.USE_LAZY = False
    yield
    oslo_i18n._lazy.USE_LAZY = False


@pytest.fixture(autouse=True)
def _wrong_horizon_settings_logged_anew() -> None:
    """Each test logs a wrong panel setting as a new process would: once, its first time.

    The panel logs a wrong setting once per process (dashboard/wrong_settings.py);
    without this, a test would find it logged or not with the order the tests ran in.
    """
    from ovh_credit_plugin.dashboard import wrong_settings

    wrong_settings.forget()


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool(scratch_root())
    try:
        yield pool
    finally:
        pool.stop_all()
        shutil.rmtree(pool.scratch, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger(
    tmp_path: Path, backend: str, server_pool: ServerPool, request: pytest.FixtureRequest
) -> Iterator[Ledger]:
    made = new_ledger(backend, server_pool, tmp_path)
    yield made
    try:
        # Whatever a test did through the plugin, the ledger still balances.
        # Tests that break it on purpose (to prove the audit sees it) say so, and
        # so do those that end with the same audit of their own (a million entries).
        if (request.node.get_closest_marker("tampers_ledger") is None
                and request.node.get_closest_marker("audits_ledger") is None):
            service = made.service()
            try:
                report = service.audit()
            finally:
                service.close()
            assert report.ok, report.violations
    finally:
        drop_ledger(made, server_pool)


@pytest.fixture
def service(ledger: Ledger) -> Iterator[CreditService]:
    # No audit here: the ledger fixture audits once after the test.
    svc = ledger.service()
    yield svc
    svc.close()


@pytest.fixture
def database(ledger: Ledger) -> Iterator[Database]:
    db = Database(create_engine(ledger.url))
    yield db
    db.dispose()


@pytest.fixture
def cli(
    ledger: Ledger, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    return Cli(ledger, capsys, monkeypatch)
