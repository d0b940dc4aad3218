"""Mutation testing of the money rules (issue 16): ``tox -e mutation``.

Runs mutmut (configured in pyproject.toml, ``[tool.mutmut]``) over the modules
where the money rules live, on SQLite: mutmut runs, for each mutant, only the
tests that execute the function it changed, and stops at the first failure
(tests/support/mutation_order.py puts first the tests likeliest to fail it,
then the cheapest). Then prints a summary per module and,
as its last line, ``{"mutants", "killed", "survived", "timeout", "score"}``
(score = (killed + timeout) / mutants: a mutant that makes a test hang was
seen; one that no test reaches counts as survived).

    python tools/mutation.py                 # every module below
    python tools/mutation.py allocation money  # some of them (names as below)

docs/testing.md keeps the latest result, its date, and why each surviving
mutant left there changes no behaviour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")

#: Short name -> module, in pyproject.toml's ``only_mutate`` too.
MODULES = {
    "allocation": "ovh_credit_plugin/allocation.py",
    "money": "ovh_credit_plugin/money.py",
    "settlement": "ovh_credit_plugin/service/settlement.py",
    "settlement_txn": "ovh_credit_plugin/service/settlement_txn.py",
    "expiry": "ovh_credit_plugin/service/expiry.py",
    "credits": "ovh_credit_plugin/ledger/credits.py",
    "orders": "ovh_credit_plugin/service/orders.py",
    "vouchers": "ovh_credit_plugin/service/vouchers.py",
    "voucher_throttle": "ovh_credit_plugin/service/voucher_throttle.py",
    "cloudkitty": "ovh_credit_plugin/hosts/cloudkitty.py",
}

KILLED = {"killed", "caught by type check"}
TIMEOUT = {"timeout"}


def statuses(path: str) -> Counter[str]:
    """Status of each mutant of ``path`` from mutmut's last run (its .meta file)."""
    from mutmut.stats import status_by_exit_code

    meta = ROOT / "mutants" / f"{path}.meta"
    if not meta.exists():
        return Counter()
    codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
    return Counter(status_by_exit_code[code] for code in codes.values())


def main(argv: list[str]) -> int:
    names = argv or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"unknown module(s) {unknown}: one of {sorted(MODULES)}", file=sys.stderr)
        return 2
    # The mutants run on SQLite only (pyproject.toml deselects the other backends);
    # the servers' tiers need not be installed.
    # OVH_CREDIT_MUTATION: fewer examples per property and a few slow tests left out
    # (tests/conftest.py); the ci profile draws the same examples on every run, so
    # two runs of one tree give one score.
    env = dict(os.environ, OVH_CREDIT_REQUIRE_DATABASES="0", OVH_CREDIT_REQUIRE_CLOUDKITTY="0",
               OVH_CREDIT_MUTATION="1", OVH_CREDIT_HYPOTHESIS_PROFILE="ci")
    # Every mutant is a new test session in a fork of mutmut's process, so what a
    # session does before its first test is paid thousands of times: pytest's scan
    # of every installed distribution for plugins (the two the tests use are named
    # instead), and the migration of the session's template ledger (done once
    # here, by the code as it is; migrations are not among the mutated modules).
    env.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               PYTEST_PLUGINS="_hypothesis_pytestplugin,pytest_timeout")
    scratch = tempfile.TemporaryDirectory(prefix="ovh-credit-mutation-")
    migrated = Path(scratch.name) / "migrated.sqlite"
    _migrate(migrated)
    env["OVH_CREDIT_TEST_MIGRATED_SQLITE"] = str(migrated)
    # Which test failed which function's mutants, for the order of the next ones'
    # tests (tests/support/mutation_order.py); kept after the run, to choose the
    # tests of each module (its SELECTION).
    killers = ROOT / "mutants" / "killers.tsv"
    killers.parent.mkdir(exist_ok=True)
    killers.unlink(missing_ok=True)
    env["OVH_CREDIT_MUTATION_KILLERS"] = str(killers)
    # mutmut records which tests reach which function once per test: a test
    # that existed before a function was split or added is never recorded for
    # the new one, whose mutants then run only the newer tests and survive
    # what the older ones kill (the run of 2026-12-04 20:53: 77 survivors of
    # service/vouchers.py, 0.884). Recorded afresh every run, ~1 minute.
    (ROOT / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    # One mutmut run for every module: its clean run of the tests (which also
    # measures them for the order above) and its forced failure are paid once.
    began = time.monotonic()
    # mutmut's own output (a spinner, then a line per mutant) goes to a log: the
    # summary below is what a reader wants, the log what went wrong.
    log = ROOT / "mutants" / "mutmut.log"
    patterns = [MODULES[name].removesuffix(".py").replace("/", ".") + ".*" for name in names]
    for _ in range(2):
        with log.open("w") as out:
            subprocess.run([str(MUTMUT), "run", *patterns], cwd=ROOT, env=env,
                           check=False, stdout=out, stderr=subprocess.STDOUT)
        found = {name: statuses(MODULES[name]) for name in names}
        # A run whose clean run failed checked no mutant; the next one starts from
        # what it recorded (which tests run which function). Until 9ccaa1c that
        # happened after every recording: CloudKitty's migrations left a logging
        # handler on a closed stream, and the CLI tests' error lines hit "---
        # Logging error ---" (tests/integration/conftest.py).
        if any(f["not checked"] < sum(f.values()) for f in found.values()):
            break
    said = log.read_text(errors="replace").lower()
    if "failed to run clean test" in said or "failed to collect stats" in said:
        # The statuses left from earlier runs are not this tree's: no score. (The
        # second: a test file changed while mutmut copied it would not import.)
        print(f"mutmut's clean run of the tests failed, no mutant was checked: see {log}",
              file=sys.stderr)
        return 1
    took = time.monotonic() - began
    print(f"{'module':<18} {'mutants':>7} {'killed':>6} {'survived':>8} {'timeout':>7} "
          f"{'score':>6} {'seconds':>7}")
    totals: Counter[str] = Counter()
    for name in names:
        totals.update(found[name])
        print(_line(name, found[name], _seconds(MODULES[name])))
    summary = _summary(totals)
    print(_line("total", totals, None))
    print(f"{took / 60:.1f} minutes; seconds per module: its mutants' test runs added up "
          "(two run at a time)")
    survivors = subprocess.run([str(MUTMUT), "results"], cwd=ROOT, env=env, check=False,
                               capture_output=True, text=True).stdout
    print("not killed (mutmut show NAME shows one):")
    shown = [line for line in survivors.splitlines() if not line.endswith(": not checked")]
    print("\n".join(shown) or "    none")
    print(json.dumps(summary))
    return 0


def _migrate(file: Path) -> None:
    from ovh_credit_plugin.ledger import migration
    from ovh_credit_plugin.ledger.database import create_engine

    engine = create_engine(f"sqlite:///{file}")
    try:
        migration.upgrade(engine)
    finally:
        engine.dispose()


def _seconds(path: str) -> float:
    """Seconds of test runs spent on the mutants of ``path`` (mutmut's .meta file)."""
    meta = ROOT / "mutants" / f"{path}.meta"
    if not meta.exists():
        return 0.0
    return float(sum(json.loads(meta.read_text()).get("durations_by_key", {}).values()))


def _summary(found: Counter[str]) -> dict[str, float | int]:
    # A run stopped midway leaves mutants "not checked": reported apart, not counted.
    mutants = sum(found.values()) - found["skipped"] - found["not checked"]
    killed = sum(found[s] for s in KILLED)
    timeout = sum(found[s] for s in TIMEOUT)
    return {"mutants": mutants, "killed": killed, "survived": mutants - killed - timeout,
            "timeout": timeout,
            "score": round((killed + timeout) / mutants, 4) if mutants else 0.0}


def _line(name: str, found: Counter[str], seconds: float | None) -> str:
    s = _summary(found)
    took = "" if seconds is None else f"{seconds:7.0f}"
    unchecked = f"  ({found['not checked']} not checked)" if found["not checked"] else ""
    return (f"{name:<18} {s['mutants']:>7} {s['killed']:>6} {s['survived']:>8} "
            f"{s['timeout']:>7} {s['score']:>6.3f} {took}{unchecked}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
