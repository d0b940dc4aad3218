"""The seed's story as a customer lives it, on the embedded default (SQLite + the file catalog).

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
    """Run one ``ovh-credit`` command, show it and its output; its output, stripped."""
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


def step(title: str, *notes: str) -> None:
    print(f"\n# {title}")
    for note in notes:
        print(f"#   {note}")


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
        credits = ("credit", "list", "demo-project", "-c", "id", "-c", "kind", "-c", "total",
                   "-c", "used", "-c", "expired", "-c", "available", "-c", "valid_until",
                   "-c", "status", "-c", "products")

        step("1. Add credit: you choose an amount (HT) and get a purchase order to pay.",
             "The order is pending, with its payment link; no credit yet.")
        order_id = run(config, "order", "create", "demo-project", "100.00",
                       "--at", "2026-01-31T09:00:00Z", "-f", "value", "-c", "id")
        run(config, "order", "show", order_id, "--at", "2026-01-31T09:00:30Z",
            "-c", "status", "-c", "amount",
            "-c", "expires_at", "-c", "payment_url")
        if not run(config, *credits, "--at", "2026-01-31T09:01:00Z"):
            print("(no credit yet)")

        step("2. You pay the order. The payment system confirms it (twice, as webhooks do):",
             "the credit appears once, valid 13 months.")
        run(config, "order", "pay", order_id, "--at", "2026-01-31T09:05:00Z",
            "-f", "value", "-c", "status", "-c", "credit_id")
        run(config, "order", "pay", order_id, "--at", "2026-01-31T09:05:01Z",
            "-f", "value", "-c", "status", "-c", "credit_id")

        step("3. Add a voucher: you enter its code.")
        run(config, "voucher", "activate", "demo-project", "welcome-2026",
            "--at", "2026-02-01T08:00:00Z", "-c", "id", "-c", "description", "-c", "total",
            "-c", "valid_until")
        run(config, "voucher", "activate", "demo-project", "GPU-TRIAL-20",
            "--at", "2026-02-10T08:00:00Z", "-c", "id", "-c", "description", "-c", "total",
            "-c", "valid_until", "-c", "products")

        step("4. Credits & Vouchers, in the order they will be used:",
             "vouchers first, then purchased credit; the soonest to end first.")
        run(config, *credits, "--at", "2026-02-28T23:59:59Z")

        step("5. Month end: February's invoice is settled. Credit pays first; the rest is due.")
        run(config, "settle", str(ROOT / "examples/invoice.json"), "--at", "2026-03-01T00:00:00Z",
            "-c", "invoice_id", "-c", "total", "-c", "credit_applied", "-c", "amount_due")
        step("   Which credit paid which line, and why (nothing replayed: it was kept):")
        run(config, "settlement", "show", "invoice/demo-project/INV-2026-02",
            "-c", "allocations")
        run(config, *credits, "--at", "2026-03-01T00:00:00Z")

        step("6. The forecast, at this month's usage: the credit lasts until the end of March,",
             "nothing will expire unused.")
        run(config, "credit", "forecast", "demo-project", "--at", "2026-03-01T00:00:00Z",
            "-c", "available", "-c", "burn_rate_per_day", "-c", "runs_out_at",
            "-c", "amount_at_risk")

        step("7. Eleven months later, with no usage since: the forecast warns that the",
             "purchased credit will be lost unless it is used before its end.")
        run(config, "credit", "forecast", "demo-project", "--at", "2027-02-01T00:00:00Z",
            "-c", "burn_rate_per_day", "-c", "amount_at_risk", "-c", "warnings")

        step("8. Thirteen months after the purchase: what was not used is lost.",
             "(--now: the demo's clock jumps ahead; a live ledger refuses a future --at)")
        run(config, "--now", "2027-03-01T00:00:00Z", "expire")
        run(config, *credits, "--at", "2027-03-01T00:00:00Z")
        run(config, "audit", "-c", "ok")


if __name__ == "__main__":
    main()
