"""Profile the settlement path with pyinstrument (the ``bench`` extra).

    python benchmarks/profile.py [INVOICES]            # batch, default 5000
    python benchmarks/profile.py --online [INVOICES]   # one transaction each
    python benchmarks/profile.py --online --cprofile [INVOICES]   # cProfile, top functions

Seeds a SQLite ledger like benchmarks/run.py, settles INVOICES invoices
through ``InvoiceProcessor.process_many`` in batches of 1,000 (or
``InvoiceProcessor.process`` one by one) under the profiler and prints the
call tree (library frames folded).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import data, settlement


def main() -> int:
    args = sys.argv[1:]
    online = "--online" in args
    use_cprofile = "--cprofile" in args
    args = [a for a in args if a not in ("--online", "--cprofile")]
    count = int(args[0]) if args else 5000
    workdir = Path(tempfile.mkdtemp(prefix="ovh-credit-profile-"))
    try:
        ledger = workdir / "ledger.sqlite"
        data.seed(data.sqlite_url(ledger), data.credits_for(count))
        docs = list(data.invoices(count, count))
        host = settlement.processor(data.sqlite_url(ledger))
        if use_cprofile:
            return _cprofile(host, docs, online)
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        if online:
            for doc in docs:
                host.process(doc)
        else:
            for _ in host.process_many(docs, batch_size=1000):
                pass
        profiler.stop()
        host.service.close()
        print(profiler.output_text(unicode=False, color=False))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _cprofile(host: settlement.InvoiceProcessor, docs: list[dict[str, object]],
              online: bool) -> int:
    """cProfile (deterministic: every call, ~2x on pure Python) sorted by cumulative time."""
    # This file is named profile.py: the standard library's, which cProfile
    # imports, must not be found as this script's directory first.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    import cProfile
    import pstats

    for doc in docs[:20]:  # warm-up: statement caches, the pydantic schemas
        host.process(doc)
    profile = cProfile.Profile()
    profile.enable()
    if online:
        for doc in docs[20:]:
            host.process(doc)
    else:
        for _ in host.process_many(docs[20:], batch_size=1000):
            pass
    profile.disable()
    host.service.close()
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
