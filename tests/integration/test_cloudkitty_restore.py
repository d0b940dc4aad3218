"""A CloudKitty host whose ledger is restored from a backup, in the real CloudKitty 25.

CloudKitty's own database (its rated data and each scope's state) is not restored with
a ledger that lives apart from it: after the restore, the periods rated since the backup
are still stored net of the credit that paid them, while the ledger no longer records
those debits, and CloudKitty does not rate them again on its own. The catch-up of
docs/cloudkitty.md "After a ledger restore" is walked here: payments replayed first,
then the lost periods rated again, by CloudKitty's reprocessing (storage v2, the v2 API's
``POST /v2/task/reprocesses``, here with that API's own checks of the window) or, with
storage v1, by deleting the window's rated rows and setting the scope's state back.
Either way the ledger ends where the ledger that was never lost is: the same credits,
settlements and entries, nothing debited twice for the periods before the backup (their
keys answer ``replayed``), and the audit passes.

The backup and the restore are the SQLite ones of docs/operations.md: ``sqlite3 LEDGER
"VACUUM INTO 'BACKUP'"``; the ``-wal`` and ``-shm`` files deleted and the backup copied
back, with the processor's connections closed (CloudKitty stopped).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.conftest import (
    HAVE_CLOUDKITTY,
    PERIOD,
    REQUIRE_CLOUDKITTY,
    SCOPE,
    CloudKitty,
)
from tests.support.cli import Result
from tests.support.ledgers import Ledger, sqlite_backup, sqlite_restore

if not HAVE_CLOUDKITTY and not REQUIRE_CLOUDKITTY:
    pytest.skip("cloudkitty is not installed", allow_module_level=True)

from cloudkitty import db as ck_db
from cloudkitty import orchestrator, storage_state
from cloudkitty import utils as ck_utils
from cloudkitty.api.v2.task.reprocess import ReprocessSchedulerPostApi
from cloudkitty.storage_state import models as state_models
from cloudkitty.utils import tz as tzutils
from werkzeug import exceptions as http_exceptions

from ovh_credit_plugin.cli.app import main as cli_main
from ovh_credit_plugin.hosts import cloudkitty as ck_host
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import CreditService
from tests.integration.test_cloudkitty import _rows, buy_credit, day_before

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

D = Decimal
HOUR = dt.timedelta(seconds=PERIOD)


# -- the scope's periods, rated one at a time -------------------------------------------


def hours_due() -> list[dt.datetime]:
    """The last four hours CloudKitty may rate now (``wait_periods`` = 1), on UTC hours:
    CloudKitty's reprocessing API takes only windows on the period's UTC boundaries."""
    now = tzutils.localized_now()
    top = dt.datetime.fromtimestamp(int(now.timestamp()) // PERIOD * PERIOD, tz=now.tzinfo)
    return [top - (5 - n) * HOUR for n in range(1, 5)]


def rate(env: CloudKitty, count: int) -> None:
    """CloudKitty's Worker rates the scope's next ``count`` periods, and no more (one
    more may come due while a test runs, at the top of an hour)."""
    worker = env.worker()
    for _ in range(count):
        assert worker.execute_worker_processing()


def utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc)


def iso(moment: dt.datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def stored(env: CloudKitty, since: dt.datetime) -> list[tuple[str, str, Decimal, str]]:
    """CloudKitty's stored rows of the scope since ``since``: (period start, type, price,
    credit applied), sorted."""
    frames = env.storage.retrieve(begin=since, end=tzutils.localized_now(),
                                  filters={"project_id": SCOPE}, paginate=False)["dataframes"]
    return sorted(
        (iso(tzutils.utc_to_local(frame.start)), metric_type,
         D(str(point.price)).quantize(D("0.000001")), point.groupby.get("credit_applied", ""))
        for frame in frames for metric_type, point in frame.iterpoints()
    )


# -- the ledger, as the operator compares it -------------------------------------------


def the_ledger(ledger: Ledger) -> dict[str, Any]:
    """Every credit's figures, every settlement (allocations naming credits by their
    source: a replay may give a credit another id), every ledger entry, every order."""
    credits = _rows(ledger, sa.select(schema.credits))
    source = {c.id: (c.kind, c.source) for c in credits}
    settled = {}
    for row in _rows(ledger, sa.select(schema.settlements).order_by(schema.settlements.c.key)):
        settled[row.key] = {
            "total": D(row.total), "credit_applied": D(row.credit_applied),
            "amount_due": D(row.amount_due), "revision": row.revision,
            "settled_at": row.settled_at, "currency": row.currency,
            "paid_by": sorted((line, source[credit], D(amount))
                              for line, credit, _kind, amount, *_ in json.loads(row.allocations)),
        }
    entries = sorted(
        (source[e.credit_id], e.type, D(e.amount), e.settlement_key or "", e.line_id or "")
        for e in _rows(ledger, sa.select(schema.ledger_entries)))
    return {
        # In the order they start (their sources are random order ids).
        "credits": sorted(((source[c.id], D(c.total), D(c.used), D(c.expired), D(c.voided),
                            D(c.available), c.valid_from, c.valid_until) for c in credits),
                          key=lambda c: c[6]),
        "settlements": settled,
        "entries": entries,
        "orders": sorted((o.id, o.status, D(o.amount), o.paid_at, source.get(o.credit_id))
                         for o in _rows(ledger, sa.select(schema.orders))),
    }


def ovh(ledger: Ledger, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    """``ovh-credit --config-file CONF ARGS -f json``, at the wall clock (CloudKitty's)."""
    capsys.readouterr()
    code = cli_main(["--config-file", str(ledger.config), *args, "-f", "json"])
    out, err = capsys.readouterr()
    result = Result(code, out, err)
    assert (result.code, result.stderr) == (0, ""), (args, result)
    return result.json()


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The plugin's per-period INFO lines, ``<period>: <what>``, and forget them."""
    lines = [r.getMessage().split("period ", 1)[1] for r in caplog.records
             if r.name == ck_host.LOG.name and r.levelname == "INFO"]
    caplog.clear()
    return lines


# -- backup and restore, as docs/operations.md says for SQLite ------------------------------


def lose_and_restore(ledger: Ledger, dump: Path) -> None:
    """Every writer stopped (CloudKitty's processor: its connections closed), the
    ``-wal`` and ``-shm`` deleted, the backup copied back."""
    ck_host.close_services()
    sqlite_restore(ledger.path, dump)


# -- the history ----------------------------------------------------------------------------


@dataclass
class Walk:
    """A scope rated for four hours: q1 and q2 before the backup, q3 and q4 after it.

    Credit A, 10.00 EUR, is bought before q1. Order O2, 5.00 EUR, made before the backup,
    is paid after it, before q3 starts. Each hour costs 4.00 (two instances at 1.50,
    100 MiB at 0.01): q1 and q2 take 4.00 of A each; q3 A's last 2.00 and 2.00 of O2
    (A ends sooner: it pays first); q4 O2's last 3.00, 1.00 due.
    """

    hours: list[dt.datetime]
    order: str
    paid_at: dt.datetime
    dump: Path
    lost: dict[str, Any]  # the ledger as it was when it was lost: the reference
    rows: list[tuple[str, str, Decimal, str]]  # CloudKitty's stored rows then

    def key(self, hour: dt.datetime) -> str:
        return ck_host.period_key(SCOPE, hour, hour + HOUR)[0]


@pytest.fixture
def walk(cloudkitty: CloudKitty, ledger: Ledger, service: CreditService, tmp_path: Path,
         caplog: pytest.LogCaptureFixture) -> Iterator[Walk]:
    """The history up to the loss: the ledger restored from the backup, CloudKitty (its
    database untouched) stopped."""
    hours = hours_due()
    storage_state.StateManager().set_last_processed_timestamp(SCOPE, hours[0] - HOUR)
    buy_credit(service, SCOPE, "10.00", day_before(cloudkitty))
    order = service.create_order(SCOPE, "5.00", currency="EUR",
                                 at=day_before(cloudkitty) + dt.timedelta(minutes=1)).id
    caplog.set_level(logging.INFO, logger=ck_host.LOG.name)
    rate(cloudkitty, 2)
    dump = sqlite_backup(ledger.path, tmp_path / "ledger-backup.sqlite")
    paid_at = utc(hours[2] - dt.timedelta(minutes=10))
    service.pay_order(order, amount="5.00", currency="EUR", at=paid_at)
    rate(cloudkitty, 2)
    assert logged(caplog) == [
        f"{iso(h)}/{iso(h + HOUR)}: {amount} EUR of credit applied (settled)"
        for h, amount in zip(hours, ["4.000000", "4.000000", "4.000000", "3.000000"],
                             strict=True)
    ]
    lost = the_ledger(ledger)
    assert [(c[0][0], c[2], c[5]) for c in lost["credits"]] == [
        ("purchased", D("10"), D("0")), ("purchased", D("5"), D("0"))]
    assert [(s["credit_applied"], s["amount_due"]) for s in lost["settlements"].values()] == [
        (D("4"), D("0")), (D("4"), D("0")), (D("4"), D("0")), (D("3"), D("1"))]
    rows = stored(cloudkitty, hours[0])
    service.close()
    lose_and_restore(ledger, dump)
    yield Walk(hours, order, paid_at, dump, lost, rows)


def catch_up_payments(walk: Walk, ledger: Ledger, capsys: pytest.CaptureFixture[str],
                      settled: int = 2) -> None:
    """operations.md steps 1 and 2: the restored ledger audited (``settled`` periods: the
    backup's q1 and q2), the payment confirmed since the backup replayed with the
    provider's time."""
    audit = ovh(ledger, capsys, "audit")
    assert (audit["ok"], audit["checked"]["settlements"]) == (True, settled)
    paid = ovh(ledger, capsys, "order", "pay", walk.order, "--amount", "5.00",
               "--currency", "EUR", "--at", iso(walk.paid_at))
    assert (paid["status"], paid["paid_at"]) == ("paid", iso(walk.paid_at))


# -- the walks ------------------------------------------------------------------------------


def test_cloudkitty_does_not_rate_again_the_periods_a_restore_lost(
    walk: Walk, cloudkitty: CloudKitty, ledger: Ledger, capsys: pytest.CaptureFixture[str],
) -> None:
    """Why there is a catch-up at all: CloudKitty's state is past the lost periods, whose
    stored rows still say credit paid them; the ledger gives that credit back."""
    state = cloudkitty.last_processed()
    assert state == walk.hours[3]
    # The Worker's next period is the one after q4 (or none yet), never q3 or q4 again.
    assert ck_utils.check_time_state(state, PERIOD, 1) in (None, walk.hours[3] + HOUR)
    assert stored(cloudkitty, walk.hours[0]) == walk.rows  # q3, q4 stored net of credit
    restored = the_ledger(ledger)
    assert set(restored["settlements"]) == {walk.key(walk.hours[0]), walk.key(walk.hours[1])}
    # A's 2.00 and O2's 5.00 are spendable again: 7.00 the customer already had.
    assert [(c[0][0], c[5]) for c in restored["credits"]] == [("purchased", D("2"))]


def test_reprocessing_the_lost_window_gives_the_ledger_that_was_never_lost(
    walk: Walk, cloudkitty: CloudKitty, ledger: Ledger, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Storage v2: ``openstack rating tasks reprocessing create --scope-id SCOPE
    --start-reprocess-time START --end-reprocess-time END``, END the start of the last
    period logged ``(settled)`` (here the scope's state), START earlier than the first
    one (q3): the periods of the backup replay and debit nothing."""
    catch_up_payments(walk, ledger, capsys)
    hours = walk.hours
    start, end = utc(hours[0]), utc(cloudkitty.last_processed())
    assert end == utc(hours[3])
    # What CloudKitty's API checks before it records the task (POST /v2/task/reprocesses).
    scopes = storage_state.StateManager().get_all(identifier=[SCOPE])
    ReprocessSchedulerPostApi.validate_inputs(end, "ledger restore", [SCOPE], start)
    ReprocessSchedulerPostApi.check_if_there_are_invalid_scopes(scopes, end, [SCOPE], start)
    ReprocessSchedulerPostApi.validate_start_end_for_reprocessing(scopes, end, start)
    # A window that ends after the state (the end of the last rated period, say) is
    # refused: the end is the start of the last period to rate again.
    with pytest.raises(http_exceptions.BadRequest, match="ending after the last possible"):
        ReprocessSchedulerPostApi.validate_start_end_for_reprocessing(scopes, end + HOUR, start)
    storage_state.ReprocessingSchedulerDb().persist(state_models.ReprocessingScheduler(
        reason="ledger restore", identifier=SCOPE, start_reprocess_time=start.replace(
            tzinfo=None), end_reprocess_time=end.replace(tzinfo=None)))
    (task,) = storage_state.ReprocessingSchedulerDb().get_all()
    deleted: list[dict[str, Any]] = []
    delete = cloudkitty.storage.delete
    monkeypatch.setattr(cloudkitty.storage, "delete",
                        lambda **window: (deleted.append(window), delete(**window))[1])
    caplog.clear()
    orchestrator.ReprocessingWorker(cloudkitty.collector, cloudkitty.storage, task,
                                    worker_id=0).run()
    # Done: what `openstack rating tasks reprocessing get` shows, current time = END.
    assert storage_state.ReprocessingSchedulerDb().get_all() == []
    (done,) = storage_state.ReprocessingSchedulerDb().get_all(remove_finished=False)
    assert done.current_reprocess_time == done.end_reprocess_time == end.replace(tzinfo=None)
    # CloudKitty asks its storage to delete the data from START to STATE, the start of
    # the last period it rates again (not its end): storage v2 backends that delete only
    # periods ending by then (Elasticsearch, OpenSearch, InfluxDB's v1 API) keep that
    # period's old rows next to the new ones.
    assert deleted == [{"begin": start.replace(tzinfo=None), "end": end.replace(tzinfo=None),
                        "filters": {"project_id": SCOPE}}]

    # The periods settled before the backup answer replayed and debit nothing; the lost
    # ones are settled again, as they were.
    assert logged(caplog) == [
        f"{iso(h)}/{iso(h + HOUR)}: {amount} EUR of credit applied ({how})"
        for h, amount, how in zip(hours, ["4.000000", "4.000000", "4.000000", "3.000000"],
                                  ["replayed", "replayed", "settled", "settled"], strict=True)
    ]
    assert the_ledger(ledger) == walk.lost
    assert ovh(ledger, capsys, "audit")["ok"] is True
    # Storage v1 (this harness) cannot delete the window's rows (storage v2 does): each
    # period is stored twice, the new copy the same as the old one.
    assert stored(cloudkitty, hours[0]) == sorted(walk.rows * 2)
    assert cloudkitty.last_processed() == hours[3]  # reprocessing leaves the state alone


def test_storage_v1_rates_the_lost_window_again_from_a_state_set_back(
    walk: Walk, cloudkitty: CloudKitty, ledger: Ledger, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Storage v1 (no v2 API, no delete): with the processors stopped, the window's rows
    deleted from ``rated_data_frames`` and the scope's state set one period before the
    window, in CloudKitty's database; the Worker rates the window again, once."""
    catch_up_payments(walk, ledger, capsys)
    hours = walk.hours
    window = utc(hours[1]).strftime("%Y-%m-%d %H:%M:%S")  # q2: settled before the backup
    before = utc(hours[1] - HOUR).strftime("%Y-%m-%d %H:%M:%S")
    with ck_db.session_for_write() as session:
        deleted = session.execute(sa.text(
            f"DELETE FROM rated_data_frames WHERE tenant_id = '{SCOPE}' "
            f"AND begin >= '{window}'"))
        assert deleted.rowcount == 6  # q2, q3, q4: two rows each
        session.execute(sa.text(
            f"UPDATE cloudkitty_storage_states SET last_processed_timestamp = '{before}' "
            f"WHERE identifier = '{SCOPE}'"))
    assert cloudkitty.last_processed() == hours[0]
    caplog.clear()
    rate(cloudkitty, 3)  # the processors started again: q2, q3, q4

    assert logged(caplog) == [
        f"{iso(h)}/{iso(h + HOUR)}: {amount} EUR of credit applied ({how})"
        for h, amount, how in zip(hours[1:], ["4.000000", "4.000000", "3.000000"],
                                  ["replayed", "settled", "settled"], strict=True)
    ]
    assert the_ledger(ledger) == walk.lost
    assert ovh(ledger, capsys, "audit")["ok"] is True
    # CloudKitty's rated data as it was, each period once.
    assert stored(cloudkitty, hours[0]) == walk.rows
    assert cloudkitty.last_processed() == hours[3]


def test_the_lost_window_reprocessed_before_the_payment_is_replayed_stays_short(
    walk: Walk, cloudkitty: CloudKitty, ledger: Ledger, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The order matters, as for invoices: rated again before O2's payment is replayed,
    q3 gets only A's last 2.00 and q4 nothing; reprocessed again once O2 is paid, q3
    answers its recorded settlement (replayed), so O2 pays 4.00 of q4 instead of 2.00 of
    q3 and 3.00 of q4. The audit passes: restore again and replay in the right order."""
    hours = walk.hours

    def reprocess() -> None:
        storage_state.ReprocessingSchedulerDb().persist(state_models.ReprocessingScheduler(
            reason="ledger restore", identifier=SCOPE,
            start_reprocess_time=utc(hours[2]).replace(tzinfo=None),
            end_reprocess_time=utc(hours[3]).replace(tzinfo=None)))
        (task,) = storage_state.ReprocessingSchedulerDb().get_all()
        orchestrator.ReprocessingWorker(cloudkitty.collector, cloudkitty.storage, task,
                                        worker_id=0).run()

    caplog.clear()
    reprocess()
    assert logged(caplog) == [f"{iso(hours[2])}/{iso(hours[3])}: 2.000000 EUR of credit "
                              "applied (settled)"]
    catch_up_payments(walk, ledger, capsys, settled=3)
    reprocess()
    assert logged(caplog) == [
        f"{iso(hours[2])}/{iso(hours[3])}: 2.000000 EUR of credit applied (replayed)",
        f"{iso(hours[3])}/{iso(hours[3] + HOUR)}: 4.000000 EUR of credit applied (settled)",
    ]
    short = the_ledger(ledger)
    assert [(s["credit_applied"], s["amount_due"]) for s in short["settlements"].values()] == [
        (D("4"), D("0")), (D("4"), D("0")), (D("2"), D("2")), (D("4"), D("0"))]
    assert short != walk.lost
    assert ovh(ledger, capsys, "audit")["ok"] is True
