"""Run the benchmarks: a human-readable table, then one JSON object as the last line.

    python benchmarks/run.py --quick      # at most ~3 minutes on 2 cores
    python benchmarks/run.py              # full sizes

Every figure is a ratio against a floor measured in the same run, on the
same data, repeated; medians are reported. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import data, floor, history, memory, settlement
from benchmarks.common import Unavailable

TARGETS = {
    "batch_ratio": (">=", 0.5),
    "online_ratio": (">=", 0.65),
    "online_txn_overhead_ms": ("<=", 0.15),
    "pg_online_ratio": (">=", 0.65),
    "history_growth_ratio": ("<=", 1.2),
    "peak_rss_mb": ("<=", 200.0),
    "cloudkitty_with_credit_ratio": ("<=", 1.0),
    "catalog_activation_ratio": ("<=", 1.3),
    "cli_start_ratio": ("<=", 1.3),
    "api_get_credits_ratio": (">=", 0.5),
}


@dataclass(frozen=True)
class Sizes:
    projects: int
    batch_reps: int
    online_invoices: int
    online_reps: int
    history_entries: int
    history_invoices: int
    history_reps: int
    memory_sizes: tuple[int, ...]
    pg_projects: int
    pg_online_invoices: int
    pg_reps: int
    cloudkitty_reps: int
    catalog_calls: int
    api_requests: int
    api_reps: int
    cli_runs: int


QUICK = Sizes(projects=10_000, batch_reps=3, online_invoices=500, online_reps=3,
              history_entries=100_000, history_invoices=200, history_reps=3,
              memory_sizes=(10_000, 100_000), pg_projects=2_000, pg_online_invoices=200,
              pg_reps=3, cloudkitty_reps=25, catalog_calls=60, api_requests=200, api_reps=7,
              cli_runs=9)
FULL = Sizes(projects=10_000, batch_reps=5, online_invoices=3_000, online_reps=5,
             history_entries=100_000, history_invoices=1_000, history_reps=5,
             memory_sizes=(100_000, 1_000_000), pg_projects=10_000, pg_online_invoices=1_000,
             pg_reps=3, cloudkitty_reps=45, catalog_calls=300, api_requests=1000,
             api_reps=3, cli_runs=21)


_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"# [{time.perf_counter() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def paired(reps: int, floor_run: Callable[[int], float],
           ours_run: Callable[[int], float]) -> tuple[list[float], list[float]]:
    """Floor and ours, interleaved (alternating which goes first), ``reps`` times each."""
    floors, ours = [], []
    for rep in range(reps):
        if rep % 2 == 0:
            floors.append(floor_run(rep))
            ours.append(ours_run(rep))
        else:
            ours.append(ours_run(rep))
            floors.append(floor_run(rep))
    return floors, ours


def figure(count: int, floors: list[float], ours: list[float]) -> dict[str, float]:
    return {
        "invoices_per_s": count / statistics.median(ours),
        "floor_invoices_per_s": count / statistics.median(floors),
        "ratio": statistics.median(f / o for f, o in zip(floors, ours, strict=True)),
    }


def txn_cost_ms(found: dict[str, Any], side: str) -> float:
    """Milliseconds an online invoice costs above a batched one: its transaction."""
    return (1000 / found["online"][f"{side}invoices_per_s"]
            - 1000 / found["batch"][f"{side}invoices_per_s"])


def txn_overhead_ms(found: dict[str, Any]) -> float:
    """``online_txn_overhead_ms``: what our transaction costs above the floor's (issue 15)."""
    return txn_cost_ms(found, "") - txn_cost_ms(found, "floor_")


def interleaved(workdir: Path, template: Path, docs: list[dict[str, Any]], *,
                batch_size: int, chunk: int, reps: int) -> tuple[list[float], list[float]]:
    """Floor and ours on two copies of the ledger, taking turns chunk by chunk.

    Each chunk (a batch, or a few online invoices) is settled by the floor
    and by ours back to back, the order alternating, so that a change in the
    machine's load or the disk's fsync latency hits both alike. Returns the
    total seconds of each side, per repetition.
    """
    floors, ours = [], []
    for rep in range(reps):
        floor_side = floor.SqliteFloor(str(data.copy_ledger(template, workdir / "floor.sqlite")))
        our_side = settlement.Ours(data.sqlite_url(
            data.copy_ledger(template, workdir / "ours.sqlite")))
        spent = [0.0, 0.0]
        try:
            for number, start in enumerate(range(0, len(docs), chunk)):
                part = docs[start:start + chunk]
                if (number + rep) % 2 == 0:
                    spent[0] += floor_side.settle(part, batch_size)
                    spent[1] += our_side.settle(part, batch_size)
                else:
                    spent[1] += our_side.settle(part, batch_size)
                    spent[0] += floor_side.settle(part, batch_size)
        finally:
            floor_side.close()
            our_side.close()
        floors.append(spent[0])
        ours.append(spent[1])
    return floors, ours


def sqlite_settlement(workdir: Path, template: Path, sizes: Sizes) -> dict[str, Any]:
    docs = list(data.invoices(sizes.projects, sizes.projects))
    lines = sum(len(d["lines"]) for d in docs)

    def run_floor(size: int, online: bool) -> Callable[[int], float]:
        def run(_rep: int) -> float:
            path = data.copy_ledger(template, workdir / "floor.sqlite")
            return floor.sqlite_floor(str(path), docs[:size], 1 if online else 1000)
        return run

    log(f"SQLite batch: {len(docs)} invoices ({lines} lines), batches of 1000")
    floors, ours = interleaved(workdir, template, docs, batch_size=1000, chunk=1000,
                               reps=sizes.batch_reps)
    batch = figure(len(docs), floors, ours)
    log(f"SQLite online: {sizes.online_invoices} invoices, one transaction each")
    floors, ours = interleaved(workdir, template, docs[:sizes.online_invoices], batch_size=1,
                               chunk=10, reps=sizes.online_reps)
    online = figure(sizes.online_invoices, floors, ours)

    # Context, not a target: the service layer alone (invoices already parsed
    # into pydantic models outside the clock, settlements not dumped).
    from ovh_credit_plugin.hosts.invoice import parse_invoice

    invoices = [parse_invoice(doc) for doc in docs]

    def run_service(_rep: int) -> float:
        path = data.copy_ledger(template, workdir / "service.sqlite")
        return settlement.service_batch(data.sqlite_url(path), invoices, 1000)

    log("SQLite batch, service layer only (pre-built Invoice models)")
    floors, ours = paired(sizes.batch_reps, run_floor(len(docs), False), run_service)
    service = figure(len(docs), floors, ours)
    return {"batch": batch, "online": online, "service": service, "invoices": len(docs),
            "lines": lines}


def postgresql_settlement(workdir: Path, sizes: Sizes) -> dict[str, Any] | None:
    from benchmarks import postgres

    if not postgres.available():
        log("PostgreSQL: no server binaries or no psycopg; skipped")
        return None
    specs = data.credits_for(sizes.pg_projects)
    docs = list(data.invoices(sizes.pg_projects, sizes.pg_projects))
    with postgres.server(workdir) as found:
        counter = iter(range(10**6))

        def fresh() -> str:
            url = postgres.fresh_database(found, f"bench_{next(counter)}")
            data.seed(url, specs)
            return url

        def runner(kind: str, size: int, online: bool) -> Callable[[int], float]:
            def run(_rep: int) -> float:
                url = fresh()
                if kind == "floor":
                    return floor.postgresql_floor(postgres.dsn(url), docs[:size],
                                                  1 if online else 1000)
                if online:
                    return settlement.online(url, docs[:size])
                return settlement.batch(url, docs[:size], 1000)
            return run

        log(f"PostgreSQL batch: {len(docs)} invoices")
        floors, ours = paired(sizes.pg_reps, runner("floor", len(docs), False),
                              runner("ours", len(docs), False))
        batch = figure(len(docs), floors, ours)
        log(f"PostgreSQL online: {sizes.pg_online_invoices} invoices")
        floors, ours = paired(sizes.pg_reps, runner("floor", sizes.pg_online_invoices, True),
                              runner("ours", sizes.pg_online_invoices, True))
        online = figure(sizes.pg_online_invoices, floors, ours)
        server = postgres.describe(found)
    return {"batch": batch, "online": online, "invoices": len(docs), "server": server}


def optional(name: str, module: str, workdir: Path, sizes: Sizes) -> dict[str, Any] | None:
    """Figures 6 and 7 need modules that may be missing; None (null) says so."""
    import importlib

    try:
        bench = importlib.import_module(f"benchmarks.{module}")
        return bench.measure(workdir, sizes)  # type: ignore[no-any-return]
    except (Unavailable, ImportError) as error:
        log(f"{name}: not measured ({error})")
        return {"unavailable": str(error)}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def check(results: dict[str, Any]) -> dict[str, bool | None]:
    met: dict[str, bool | None] = {}
    for key, (op, target) in TARGETS.items():
        value = results.get(key)
        met[key] = None if value is None else (
            value >= target if op == ">=" else value <= target
        )
    return met


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~3 minutes)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where ledgers and files go (default: a new temporary directory)")
    parser.add_argument("--only", action="append", default=[],
                        choices=["sqlite", "history", "memory", "postgresql", "cloudkitty",
                                 "catalog", "api", "cli"],
                        help="run only these figures (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    wanted = set(args.only) or {"sqlite", "history", "memory", "postgresql", "cloudkitty",
                                "catalog", "api", "cli"}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ovh-credit-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"mode": "quick" if args.quick else "full"}
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        log(f"seeding {sizes.projects} projects in {workdir}")
        empty = workdir / "empty.sqlite"
        data.new_ledger(data.sqlite_url(empty)).dispose()
        data.checkpoint(empty)
        template = workdir / "template.sqlite"
        shutil.copyfile(empty, template)
        data.seed(data.sqlite_url(template), data.credits_for(sizes.projects))
        data.checkpoint(template)

        if "sqlite" in wanted:
            found = sqlite_settlement(workdir, template, sizes)
            for kind, target in (("batch", ">= 0.5"), ("online", ">= 0.65")):
                fig = found[kind]
                results[f"{kind}_invoices_per_s"] = round(fig["invoices_per_s"], 1)
                results[f"{kind}_floor_invoices_per_s"] = round(fig["floor_invoices_per_s"], 1)
                results[f"{kind}_ratio"] = round(fig["ratio"], 3)
                rows.append((f"SQLite {kind} settlement", fmt(fig["invoices_per_s"], 0),
                             fmt(fig["floor_invoices_per_s"], 0), fmt(fig["ratio"], 3), target))
            results["online_txn_overhead_ms"] = round(txn_overhead_ms(found), 3)
            rows.append(("SQLite online: per-transaction cost above the floor's (ms)",
                         fmt(txn_cost_ms(found, "")), fmt(txn_cost_ms(found, "floor_")),
                         fmt(txn_overhead_ms(found), 3), "<= 0.15 ms"))
            fig = found["service"]
            results["batch_service_invoices_per_s"] = round(fig["invoices_per_s"], 1)
            results["batch_service_ratio"] = round(fig["ratio"], 3)
            rows.append(("SQLite batch, service layer only (context)",
                         fmt(fig["invoices_per_s"], 0), fmt(fig["floor_invoices_per_s"], 0),
                         fmt(fig["ratio"], 3), ""))
        if "history" in wanted:
            log(f"history: {sizes.history_entries} prior ledger entries vs 10")
            found = history.measure(workdir, small=10, large=sizes.history_entries,
                                    invoices=sizes.history_invoices, reps=sizes.history_reps)
            ratio = statistics.median(found["ratios"])
            results["history_growth_ratio"] = round(ratio, 3)
            results["history_ms_per_invoice_10"] = round(statistics.median(found["small_ms"]), 3)
            results["history_ms_per_invoice_large"] = round(
                statistics.median(found["large_ms"]), 3)
            rows.append((f"History: {sizes.history_entries:,} vs 10 entries (ms/invoice)",
                         fmt(statistics.median(found["large_ms"]), 3),
                         fmt(statistics.median(found["small_ms"]), 3), fmt(ratio, 3), "<= 1.2"))
        if "memory" in wanted:
            log(f"memory: ovh-credit settle on {', '.join(map(str, sizes.memory_sizes))} "
                "invoices (JSON lines)")
            found = memory.measure(workdir, template, sizes=sizes.memory_sizes,
                                   projects=sizes.projects)
            largest = max(found)
            smallest = min(found)
            results["peak_rss_mb"] = round(found[largest]["peak_rss_mb"], 1)
            results["peak_rss_mb_by_invoices"] = {
                str(k): round(v["peak_rss_mb"], 1) for k, v in found.items()}
            results["memory_growth_ratio"] = round(
                found[largest]["peak_rss_mb"] / found[smallest]["peak_rss_mb"], 3)
            results["cli_invoices_per_s"] = round(found[largest]["invoices_per_s"], 1)
            for size, fig in sorted(found.items()):
                rows.append((f"CLI settle {size:,} invoices: peak RSS (MB)",
                             fmt(fig["peak_rss_mb"], 1), "", f"{fig['invoices_per_s']:,.0f}/s",
                             "<= 200 MB"))
        if "postgresql" in wanted:
            found = postgresql_settlement(workdir, sizes)
            if found is None:
                for kind in ("batch", "online"):
                    results[f"pg_{kind}_ratio"] = None
            else:
                results["pg_server"] = found["server"]
                for kind in ("batch", "online"):
                    fig = found[kind]
                    results[f"pg_{kind}_invoices_per_s"] = round(fig["invoices_per_s"], 1)
                    results[f"pg_{kind}_floor_invoices_per_s"] = round(
                        fig["floor_invoices_per_s"], 1)
                    results[f"pg_{kind}_ratio"] = round(fig["ratio"], 3)
                    rows.append((f"PostgreSQL {kind} settlement", fmt(fig["invoices_per_s"], 0),
                                 fmt(fig["floor_invoices_per_s"], 0), fmt(fig["ratio"], 3),
                                 "(same as SQLite)"))
                results["pg_online_txn_overhead_ms"] = round(txn_overhead_ms(found), 3)
        if "cloudkitty" in wanted:
            found = optional("CloudKitty", "cloudkitty_bench", workdir, sizes)
            results["cloudkitty_with_credit_ratio"] = found.get("with_credit_ratio")
            results["cloudkitty_without_credit_ratio"] = found.get("without_credit_ratio")
            if "unavailable" in found:
                results["cloudkitty_note"] = found["unavailable"]
            else:
                results["cloudkitty_deepcopy_ms"] = round(found["deepcopy_ms"], 3)
            for label, key in (("with credit", "with_credit"), ("without credit",
                                                                 "without_credit")):
                rows.append((f"CloudKitty 1,000-point frame, {label} (ms)",
                             fmt(found.get(f"{key}_ms"), 3), fmt(found.get("deepcopy_ms"), 3),
                             fmt(found.get(f"{key}_ratio"), 3),
                             "<= 1.0" if key == "with_credit" else "far below 1"))
        if "catalog" in wanted:
            found = optional("Voucher catalog", "catalog_bench", workdir, sizes)
            results["catalog_activation_ratio"] = found.get("ratio")
            if "unavailable" in found:
                results["catalog_note"] = found["unavailable"]
            else:
                results["catalog_activation_ms"] = round(found["ours_ms"], 3)
                results["catalog_floor_ms"] = round(found["floor_ms"], 3)
                results["catalog_ledger_ms"] = round(found["ledger_ms"], 3)
                results["catalog_commit_ms"] = round(found["commit_ms"], 3)
                results["catalog_http_ms"] = round(found["http_ms"], 3)
            rows.append(("Voucher activation vs GET+POST+2 commits (ms)",
                         fmt(found.get("ours_ms"), 3), fmt(found.get("floor_ms"), 3),
                         fmt(found.get("ratio"), 3), "<= 1.3"))
        if "api" in wanted:
            log(f"REST API: {sizes.api_requests} requests per figure, against a WSGI "
                "hello-world")
            found = optional("REST API", "api_bench", workdir, sizes)
            if "unavailable" in found:
                results["api_note"] = found["unavailable"]
            for key, label in (("get_credits", "GET credits"),
                               ("post_vouchers", "POST vouchers (file catalog)")):
                fig = found.get(key) or {}
                results[f"api_{key}_requests_per_s"] = (
                    round(fig["requests_per_s"], 1) if fig else None)
                results[f"api_{key}_floor_requests_per_s"] = (
                    round(fig["floor_requests_per_s"], 1) if fig else None)
                results[f"api_{key}_ratio"] = round(fig["ratio"], 3) if fig else None
                rows.append((f"REST API {label} (requests/s)", fmt(fig.get("requests_per_s"), 0),
                             fmt(fig.get("floor_requests_per_s"), 0),
                             fmt(fig.get("ratio"), 3),
                             ">= 0.5" if key == "get_credits" else ""))
        if "cli" in wanted:
            log(f"CLI start-up: {sizes.cli_runs} runs of each command, whole processes")
            found = optional("CLI start-up", "cli_bench", workdir, sizes)
            results["cli_start_ratio"] = (
                round(found["ratio"], 3) if "ratio" in found else None)
            if "unavailable" in found:
                results["cli_note"] = found["unavailable"]
            else:
                results["cli_start_cpu_ratio"] = round(found["cpu_ratio"], 3)
                results["cli_start_floor_ms"] = round(found["floor_ms"], 1)
                results["cli_start_ms"] = {
                    name: round(fig["ms"], 1) for name, fig in found["commands"].items()}
                results["cli_start_ratios"] = {
                    name: round(fig["ratio"], 3) for name, fig in found["commands"].items()}
                for name, fig in found["commands"].items():
                    rows.append((f"CLI start-up: {name.replace('_', ' ')} (ms)",
                                 fmt(fig["ms"], 0), fmt(found["floor_ms"], 0),
                                 fmt(fig["ratio"], 3), "<= 1.3"))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"] = machine()
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["targets_met"] = check(results)

    header = ("figure", "ours", "floor", "ratio", "target")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    print(f"ovh-credit-plugin benchmarks ({results['mode']}, {results['seconds']} s, "
          f"{results['machine']['cores']} cores: {results['machine']['cpu']})")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    print("throughput in invoices/s unless stated; ratio: ours/floor throughput "
          "(time ratio for history, CloudKitty, catalog and CLI start-up)")
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
