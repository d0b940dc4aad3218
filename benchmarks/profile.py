"""Profile the settlement path with pyinstrument (the ``bench`` extra).

    python benchmarks/profile.py [INVOICES]            # batch, default 5000
    python benchmarks/profile.py --online [INVOICES]   # one transaction each

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
    from pyinstrument import Profiler

    args = sys.argv[1:]
    online = "--online" in args
    args = [a for a in args if a != "--online"]
    count = int(args[0]) if args else 5000
    workdir = Path(tempfile.mkdtemp(prefix="ovh-credit-profile-"))
    try:
        ledger = workdir / "ledger.sqlite"
        data.seed(data.sqlite_url(ledger), data.credits_for(count))
        docs = list(data.invoices(count, count))
        host = settlement.processor(data.sqlite_url(ledger))
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


if __name__ == "__main__":
    sys.exit(main())
