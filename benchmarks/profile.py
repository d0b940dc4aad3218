"""Profile the settlement path with pyinstrument (the ``bench`` extra) or cProfile.

    python benchmarks/profile.py [INVOICES]            # batch, default 5000
    python benchmarks/profile.py --online [INVOICES]   # one transaction each
    python benchmarks/profile.py --online --cprofile [INVOICES]   # cProfile's top functions

Seeds a SQLite ledger like benchmarks/run.py, settles INVOICES invoices
through ``InvoiceProcessor.process_many`` in batches of 1,000 (or
``InvoiceProcessor.process`` one by one) under the profiler and prints the
call tree (library frames folded), or with ``--cprofile`` the 40 functions
of most cumulative time (cProfile's own overhead about doubles Python's
share; pyinstrument samples, and does not).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script, this file's folder would come first on the path, and
    # this file's name hides the standard library's profile (which cProfile imports).
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

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

        def settle() -> None:
            if online:
                for doc in docs:
                    host.process(doc)
            else:
                for _ in host.process_many(docs, batch_size=1000):
                    pass

        if use_cprofile:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.runcall(settle)
            host.service.close()
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        else:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
            settle()
            profiler.stop()
            host.service.close()
            print(profiler.output_text(unicode=False, color=False))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
