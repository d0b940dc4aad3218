"""Figure 9: CLI start-up, whole processes, against the import floor.

Ours: ``ovh-credit --help``, ``ovh-credit --config-file C credit list P -f json``
and ``ovh-credit --config-file C order create P 10.00 -f json`` (a real order,
written to a migrated SQLite ledger of three credits), each a new Python
process started the way the console script starts it. Floor: a process that
only does ``import sqlalchemy, oslo_config.cfg, cliff.app`` (what any
``ovh-credit`` has to load before it can parse its arguments and open a
ledger). Processes are run in turn, the order rotating each round; the
median wall time of each command is compared with the floor's median.
CPU time (user + system, from the children's rusage) is reported beside it:
on a shared machine it moves less than the wall time.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import data

FLOOR = "import sqlalchemy, oslo_config.cfg, cliff.app"
# What the ovh-credit console script runs.
OURS = "import sys; from ovh_credit_plugin.cli.app import main; sys.exit(main())"


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[2:]} failed ({done.returncode}): "
                           f"{done.stderr.decode(errors='replace').strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(workdir: Path, sizes: Any) -> dict[str, Any]:
    ledger = data.copy_ledger(workdir / "empty.sqlite", workdir / "cli.sqlite")
    project = data.project_id(0)
    data.seed(data.sqlite_url(ledger), data.credits_for(1))
    config = workdir / "cli.conf"
    config.write_text(f"[cloud_credit]\nconnection = {data.sqlite_url(ledger)}\n"
                      "default_currency = EUR\n")
    common = ["--config-file", str(config)]
    commands: dict[str, list[str]] = {
        "floor": [sys.executable, "-c", FLOOR],
        "help": [sys.executable, "-c", OURS, "--help"],
        "credit_list": [sys.executable, "-c", OURS, *common, "credit", "list", project,
                        "-f", "json"],
        "order_create": [sys.executable, "-c", OURS, *common, "order", "create", project,
                         "10.00", "-f", "json"],
    }
    # Compiled modules for both sides, as an installed package has them (pip
    # compiles at install): with PYTHONDONTWRITEBYTECODE set, as it is in some
    # shells and CI runners, an editable checkout's modules were compiled from
    # source in every process while the floor's came compiled from site-packages.
    # The warm-up writes them all under a prefix of the work directory.
    env = {name: value for name, value in os.environ.items()
           if name != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    names = list(commands)
    for name in names:  # warm-up: the page cache, the .pyc files
        _run(commands[name], env)
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(sizes.cli_runs):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = _run(commands[name], env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    floor_wall = statistics.median(walls["floor"])
    floor_cpu = statistics.median(cpus["floor"])
    result: dict[str, Any] = {"floor_ms": floor_wall * 1000, "floor_cpu_ms": floor_cpu * 1000,
                              "commands": {}}
    for name in names[1:]:
        wall = statistics.median(walls[name])
        cpu = statistics.median(cpus[name])
        result["commands"][name] = {"ms": wall * 1000, "ratio": wall / floor_wall,
                                    "cpu_ms": cpu * 1000, "cpu_ratio": cpu / floor_cpu}
    result["ratio"] = max(c["ratio"] for c in result["commands"].values())
    result["cpu_ratio"] = max(c["cpu_ratio"] for c in result["commands"].values())
    return result
