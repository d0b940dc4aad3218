"""The seed's flow, end to end, on the embedded default (SQLite + the file catalog).

Run from the repository root after installing: ``.venv/bin/python examples/demo.py``.
Every step is a real ``ovh-credit`` command against a fresh ledger in a
temporary folder; times are fixed with ``--at`` so the output is reproducible.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OVH_CREDIT = Path(sys.executable).with_name("ovh-credit")


def run(config: Path, *args: str) -> str:
    shown = " ".join(shlex.quote(a) for a in ("ovh-credit", *args))
    print(f"\n$ {shown}", flush=True)
    done = subprocess.run(
        [str(OVH_CREDIT), "--config-file", str(config), *args],
        check=False, capture_output=True, text=True,
    )
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"demo step failed: {shown}")
    return done.stdout.strip()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ovh-credit-demo-") as folder:
        config = Path(folder) / "ovh-credit.conf"
        config.write_text(
            "[cloud_credit]\n"
            f"connection = sqlite:///{folder}/ledger.sqlite\n"
            "[voucher_catalog]\n"
            "driver = file\n"
            f"file_path = {ROOT / 'etc/ovh-credit-plugin/vouchers.json'}\n"
        )
        run(config, "db", "upgrade")
        print("\n# 1. Buy cloud credit: a purchase order, no credit yet")
        order_id = run(config, "order", "create", "demo-project", "100.00",
                       "--at", "2026-01-31T09:00:00Z", "-f", "value", "-c", "id")
        print("\n# 2. The payment system confirms payment (twice, like any webhook)")
        run(config, "order", "pay", order_id, "--at", "2026-01-31T09:05:00Z",
            "-f", "value", "-c", "status", "-c", "credit_id")
        run(config, "order", "pay", order_id, "--at", "2026-01-31T09:05:01Z",
            "-f", "value", "-c", "status", "-c", "credit_id")
        print("\n# 3. Activate vouchers (used before purchased credit)")
        run(config, "voucher", "activate", "demo-project", "welcome-2026",
            "--at", "2026-02-01T08:00:00Z", "-f", "value", "-c", "id", "-c", "total")
        run(config, "voucher", "activate", "demo-project", "GPU-TRIAL-20",
            "--at", "2026-02-10T08:00:00Z", "-f", "value", "-c", "id", "-c", "total")
        print("\n# 4. Credits & Vouchers, in consumption order")
        run(config, "credit", "list", "demo-project", "--at", "2026-02-28T23:59:59Z",
            "-c", "id", "-c", "kind", "-c", "total", "-c", "available", "-c", "valid_until",
            "-c", "status", "-c", "products")
        print("\n# 5. Month-end: settle the invoice; credit pays first, the rest is due")
        run(config, "settle", str(ROOT / "examples/invoice.json"), "--at", "2026-03-01T00:00:00Z",
            "-f", "json")
        print("\n# 6. Credits after the invoice")
        run(config, "credit", "list", "demo-project", "--at", "2026-03-01T00:00:00Z",
            "-c", "id", "-c", "kind", "-c", "used", "-c", "available", "-c", "status")
        print("\n# 7. Thirteen months later, unused purchased credit is lost")
        print("#    (--now: the demo's clock jumps ahead; a live ledger refuses a future --at)")
        run(config, "--now", "2027-03-01T00:00:00Z", "expire")
        run(config, "audit")


if __name__ == "__main__":
    main()
