"""Peak memory of the real CLI streaming a JSON-lines file: ``ovh-credit settle``.

``ovh-credit --config-file C settle FILE --batch-size 1000 -f json > /dev/null``
runs as a subprocess; its peak RSS comes from ``wait4``'s rusage
(``ru_maxrss``). Two file sizes show whether memory stays flat as the file grows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import data


def write_invoices(path: Path, count: int, projects: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for doc in data.invoices(count, projects, seed=23, month="2026-03"):
            out.write(json.dumps(doc, separators=(",", ":")))
            out.write("\n")
    return path


def run_cli(config: Path, invoices: Path) -> dict[str, Any]:
    """Run the CLI once; peak RSS in MB and wall seconds."""
    command = [sys.executable, "-m", "ovh_credit_plugin.cli.app", "--config-file", str(config),
               "settle", str(invoices), "--batch-size", "1000", "-f", "json"]
    # Linux counts a child's memory before exec (a copy of its parent) in its
    # ru_maxrss: the CLI is started by a small launcher, not by this big
    # process, so that the peak is the CLI's own.
    launcher = [sys.executable, "-S", "-c", _LAUNCHER, *command]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        done = subprocess.run(launcher, stdout=subprocess.PIPE, stderr=stderr, check=False)
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ovh-credit settle failed ({done.returncode}): {errors.strip()}")
    return {"peak_rss_mb": int(done.stdout.decode().split()[-1]) / 1024, "seconds": elapsed}


_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(usage.ru_maxrss)
sys.exit(code)
"""


def measure(workdir: Path, template: Path, *, sizes: tuple[int, ...],
            projects: int) -> dict[str, Any]:
    results = {}
    for size in sizes:
        ledger = data.copy_ledger(template, workdir / f"memory-{size}.sqlite")
        config = workdir / f"memory-{size}.conf"
        config.write_text(f"[cloud_credit]\nconnection = {data.sqlite_url(ledger)}\n")
        invoices = write_invoices(workdir / f"invoices-{size}.jsonl", size, projects)
        result = run_cli(config, invoices)
        result["invoices_per_s"] = size / result["seconds"]
        results[size] = result
        invoices.unlink()
    return results
