"""What an ``ovh-credit`` process loads to start (issue 15, decision 3).

Operators run the CLI in loops and scripts: a command on a ledger at the
current revision reads that revision with one ``SELECT`` (alembic is imported
only when it differs), and cliff's per-run scans of every installed
distribution's metadata (the epilog's and --help's "provided by" plugin
names, --version) are left out, their output unchanged. Timings are for
``benchmarks/run.py`` (figure 9), not for tests: these check what is loaded.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.support.ledgers import Ledger

# Runs the console script's main() in a fresh interpreter, then reports what
# was imported and whether importlib.metadata scanned the installed distributions.
# stevedore's own scan is left out: it rebuilds its entry-point cache
# (~/.cache/python-entrypoints) once per venv and sys.path, and never caches
# for an interpreter under /tmp (a CI clone there scans on every run); that is
# stevedore's, not this CLI's.
_CHILD = """
import importlib.metadata as md, json, sys, traceback
scans = []
for name in ("packages_distributions", "distributions", "version"):
    real = getattr(md, name)
    def spy(*args, _real=real, _name=name, **kwargs):
        if not any("/stevedore/" in frame.filename for frame in traceback.extract_stack()):
            scans.append(_name)
        return _real(*args, **kwargs)
    setattr(md, name, spy)
from ovh_credit_plugin.cli.app import main
try:
    code = main(sys.argv[1:])
finally:
    report = {"alembic": "alembic" in sys.modules, "scans": scans,
              "cloudkittyclient": "cloudkittyclient.format" in sys.modules,
              "modules": sorted(sys.modules)}
    sys.stderr.write("\\nREPORT " + json.dumps(report) + "\\n")
sys.exit(code)
"""


def _run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, dict[str, Any]]:
    environ = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True,
                          text=True, check=False, timeout=120, env={**environ, **(env or {})})
    report = json.loads(done.stderr.rsplit("REPORT ", 1)[1])
    return done.returncode, done.stdout, report


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("command", [
    ("credit", "list", "p-1", "-f", "json"),
    ("order", "create", "p-1", "10.00", "--currency", "EUR", "-f", "json"),
])
def test_a_command_on_a_current_ledger_loads_no_alembic(
    ledger: Ledger, command: tuple[str, ...]
) -> None:
    code, out, report = _run("--config-file", str(ledger.config), *command)
    assert code == 0, out
    json.loads(out)
    assert not report["alembic"]
    assert not report["cloudkittyclient"]
    # Only the capability the command uses (service/facade.py imports each on
    # first call), and no MySQL dialect for a SQLite ledger.
    loaded = set(report["modules"])
    assert {"ovh_credit_plugin.service.audit", "ovh_credit_plugin.service.vouchers",
            "ovh_credit_plugin.service.settlement", "ovh_credit_plugin.service.expiry",
            "ovh_credit_plugin.hosts.invoice", "sqlalchemy.dialects.mysql"}.isdisjoint(loaded)
    # Nor pydantic and the models (orders and credits as plain results,
    # contracts.py: ~120 ms).
    assert {"pydantic", "ovh_credit_plugin.models"}.isdisjoint(loaded)
    # Nor pydantic's scan of every distribution's entry points for its
    # plugins, when a command first dumps a model (PYDANTIC_DISABLE_PLUGINS),
    # nor cliff's reading of every distribution's metadata, nor the version's.
    assert report["scans"] == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pydantics_plugins_are_the_operators_choice(ledger: Ledger) -> None:
    # The forecast is dumped by pydantic (orders and credits are not: json_ready).
    command = ("--config-file", str(ledger.config), "credit", "forecast", "p-1", "-f", "json")
    code, out, report = _run(*command)
    assert code == 0, out
    assert report["scans"] == []
    # Set (empty: every plugin), the variable is the operator's choice.
    code, out, report = _run(*command, env={"PYDANTIC_DISABLE_PLUGINS": ""})
    assert code == 0, out
    assert report["scans"] == ["distributions"]


def test_help_names_cliffs_own_commands_without_scanning_distributions() -> None:
    code, out, report = _run("--help")
    assert code == 0
    # Nor loading what the commands do (cli/lazy.py): the database toolkit,
    # pydantic and the service (~0.6 s of a 1.1 s --help before).
    loaded = set(report["modules"])
    assert {"sqlalchemy", "pydantic", "iso4217", "ovh_credit_plugin.service",
            "ovh_credit_plugin.models", "ovh_credit_plugin.hosts.invoice"}.isdisjoint(loaded)
    lines = {line.split()[0]: line for line in out.split("Commands:")[1].splitlines() if line}
    assert lines["help"].endswith("(cliff)")
    assert lines["complete"].endswith("(cliff)")
    assert not lines["audit"].endswith(")")
    assert report["scans"] == []


def test_version_is_still_the_distributions() -> None:
    from importlib import metadata

    code, out, report = _run("--version")
    assert code == 0
    assert out.strip() == f"ovh-credit {metadata.version('ovh-credit-plugin')}"
    assert report["scans"] == ["version"]


def test_formatters_are_cliffs_own() -> None:
    code, out, _ = _run("credit", "list", "--help")
    assert code == 0
    assert "[-f {csv,json,table,value,yaml}]" in out
    code, out, _ = _run("credit", "show", "--help")
    assert "[-f {json,shell,table,value,yaml}]" in out


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_collection_is_paused_for_start_up_only(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ovh_credit_plugin.cli.app import main
    from ovh_credit_plugin.service import facade

    assert gc.isenabled() and gc.get_freeze_count() == 0
    seen: list[tuple[bool, int]] = []
    real = facade.CreditService.list_credit_results

    def spy(self: facade.CreditService, *args: Any, **kwargs: Any) -> Any:
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(facade.CreditService, "list_credit_results", spy)
    assert main(["--config-file", str(ledger.config), "credit", "list", "p-1", "-f", "json"]) == 0
    json.loads(capsys.readouterr().out)
    # The command's work runs with collection on, start-up's objects frozen
    # (a long settle run collects its own garbage)...
    [(enabled, frozen)] = seen
    assert enabled and frozen > 10_000
    # ...and an embedding process gets its collector back as it was.
    assert gc.isenabled() and gc.get_freeze_count() == 0
    # A usage error (no service built) too.
    assert main(["credit", "lst"]) == 2
    assert gc.isenabled() and gc.get_freeze_count() == 0
