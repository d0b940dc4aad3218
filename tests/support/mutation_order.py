"""The order of a mutant's tests in a mutation run (tools/mutation.py, docs/testing.md).

mutmut runs each mutant's tests in a pytest session of its own, fastest call
first, and stops at the first failure: a killed mutant costs every test that
runs before the one that fails it. Two things mutmut does not weigh make that
shorter:

- a test's whole cost: the call time it sorts by leaves out the set-up (a
  ledger's clone and audit, a CloudKitty's migration: ten times the call for
  some tests);
- which tests failed the mutants of the same function before: most mutants of
  one function fall to the same few tests.

The first is measured by the clean run mutmut makes before the mutants' runs,
in the process it then forks them from (so they inherit it); the second is
appended by the mutants' runs to a file (``OVH_CREDIT_MUTATION_KILLERS``) that
the next ones read. The order decides which test fails first, not whether one
does, as long as no test depends on what another left in the process (one that
did made the run of 15:43 on 2026-12-03 count mutants killed that no test kills:
docs/testing.md, "A correction").
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

#: Seconds of set-up, call and teardown of each test, from the last clean run.
_COST: dict[str, float] = {}


def _mutant() -> str | None:
    """The mutant under test, None in mutmut's runs of its own (clean, forced failure)."""
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    return name if "__mutmut_" in name else None


def _clean_run() -> bool:
    # mutmut names no mutant in its clean run; its forced failure ("fail"), which
    # follows in the same process, must not add its test's time to the cost.
    return os.environ.get("MUTANT_UNDER_TEST") == ""


def _killers_file() -> Path | None:
    path = os.environ.get("OVH_CREDIT_MUTATION_KILLERS")
    return Path(path) if path else None


def _function(mutant: str) -> str:
    return mutant.rsplit("__mutmut_", 1)[0]


def _killers(function: str) -> Counter[str]:
    """How many mutants of ``function`` each test failed so far in this run."""
    found: Counter[str] = Counter()
    path = _killers_file()
    if path is None or not path.exists():
        return found
    prefix = function + "\t"
    for line in path.read_text().splitlines():
        if line.startswith(prefix):
            found[line[len(prefix):]] += 1
    return found


#: The tests a module's mutants run, where the tests that reach its functions are
#: many more than the tests of its rules: every test on a ledger parses and
#: prints amounts, so a surviving mutant of money.py ran ~500 tests (50 s) in
#: the run of 2026-12-03 18:41, and its 37 survivors a third of the run. Each
#: list holds the files whose tests killed the module's mutants in a run without
#: it (``mutants/killers.tsv``, docs/testing.md). A mutant whose function none
#: of them reaches runs all of its tests.
SELECTION: dict[str, tuple[str, ...]] = {
    "ovh_credit_plugin.money.": (
        "tests/unit/test_money.py",
        "tests/service/test_money_roundtrip.py",
        "tests/service/test_money_column.py",
        "tests/service/test_contract_json.py",
        "tests/functional/test_bad_input.py",
    ),
    "ovh_credit_plugin.service.orders.": (
        "tests/unit/test_calendar.py",
        "tests/service/test_order_rules.py",
        "tests/service/test_order_and_credit_pages.py",
        "tests/service/test_order_cancel.py",
        "tests/service/test_order_settlement_edges.py",
        "tests/service/test_purchase_limits.py",
        "tests/service/test_events.py",
        "tests/service/test_settlement_refusals.py",
        "tests/functional/test_bad_input.py",
    ),
    "ovh_credit_plugin.service.vouchers.": (
        "tests/service/test_vouchers.py",
        "tests/service/test_voucher_edges.py",
        "tests/service/test_voucher_resume_interleavings.py",
        "tests/service/test_catalog_http_service.py",
        "tests/service/test_events.py",
        "tests/service/test_boundaries.py",
        "tests/service/test_settlement_edges.py",
        "tests/functional/test_bad_input.py",
    ),
    "ovh_credit_plugin.service.voucher_throttle.": (
        "tests/service/test_vouchers.py",
        "tests/service/test_voucher_edges.py",
        "tests/service/test_events.py",
        "tests/service/test_boundaries.py",
        "tests/functional/test_bad_input.py",
        "tests/functional/test_retries.py",
    ),
}


def select(items: list[pytest.Item]) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """The tests the mutant under test runs, and the ones it does not."""
    mutant = _mutant()
    chosen = next((tests for module, tests in SELECTION.items()
                   if mutant is not None and mutant.startswith(module)), None)
    if chosen is None:
        return items, []
    kept = [item for item in items if item.nodeid.startswith(chosen)]
    if not kept:
        return items, []
    return kept, [item for item in items if not item.nodeid.startswith(chosen)]


def sort(items: list[pytest.Item]) -> None:
    """Known killers of this function's mutants first (most kills first), then the cheapest.

    Not by cost per mutant killed: the clean run measures a test after the
    tests before it set up the fixtures it shares with them (a seeded ledger
    per module), so a costly test looks cheap. Ordered so, the run of
    2026-12-03 23:23 paid 0.83 s per killed mutant, against 0.68 s by kills.
    """
    mutant = _mutant()
    killed = _killers(_function(mutant)) if mutant else Counter()

    def key(item: pytest.Item) -> tuple[int, float, bool]:
        # Without a measured cost (no clean run in this process), a test on a
        # ledger still goes after the rules' own unit tests.
        on_ledger = "server_pool" in getattr(item, "fixturenames", ())
        return (-killed[item.nodeid], _COST.get(item.nodeid, float("inf")), on_ledger)

    items.sort(key=key)


def pytest_runtest_logstart(nodeid: str) -> None:
    if _clean_run():
        _COST[nodeid] = 0.0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _clean_run():
        _COST[report.nodeid] = _COST.get(report.nodeid, 0.0) + report.duration
        return
    mutant = _mutant()
    path = _killers_file()
    if mutant is not None and report.failed and path is not None:
        # One short line in append mode: the two workers' lines do not interleave.
        with path.open("a") as out:
            out.write(f"{_function(mutant)}\t{report.nodeid}\n")
