"""A ledger in a PostgreSQL database whose collation is linguistic (ICU, or glibc's en_US).

Debian's default cluster takes the system locale (usually en_US.UTF-8) and many sites
create their databases with an ICU locale. Both order text as a dictionary does:
letters before their case (``acme`` next to ``ACME``), punctuation weighted apart or
ignored. The code relies on code-point order where it asks for the greatest settlement
key in a range (CloudKitty's overlap check) and where it locks keys in the order it
sorted them. The tests' server runs with C.UTF-8 (code-point order), which hides all
of that: here each database is created with the collation under test.

Revision 0009_postgresql_c_collation gives every text column of the ledger the "C"
collation on PostgreSQL (compared and ordered byte by byte, as the code does), with
their indexes rebuilt in that order so that the range lookup still uses the key's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import migration, schema
from ovh_credit_plugin.service import CreditService
from tests.support import dbservers
from tests.support.global_conf import unregister_plugin_opts
from tests.support.ledgers import VOUCHERS, Ledger, ServerPool, engine_of, write_config

UTC = dt.timezone.utc
D = Decimal
HOUR = dt.timedelta(hours=1)
BEFORE = "0008_expiry_notice_sending"
REVISION = "0009_postgresql_c_collation"
SEEDED_AT = dt.datetime(2026, 1, 31, 10, tzinfo=UTC)

# How each database is created (after TEMPLATE template0). The last one is the tests'
# servers' own (code-point order): what the suite runs on everywhere else.
LOCALES = {
    "icu-en-US": "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    "icu-und": "LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8'",
    "libc-C.UTF-8": "LOCALE_PROVIDER libc LOCALE 'C.UTF-8'",
}
LINGUISTIC = ("icu-en-US", "icu-und")


def create_database(server: dbservers.DatabaseServer, locale: str) -> str:
    """A new empty database in ``locale`` (a key of LOCALES), owned by the app user."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(server.admin_url_for(), isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0 '
                                 f'{LOCALES[locale]} OWNER "{server.user}"')
    finally:
        admin.dispose()
    return server.url_for(name)


@pytest.fixture
def server(server_pool: ServerPool) -> dbservers.DatabaseServer:
    return server_pool.get("postgresql")


@pytest.fixture
def unmigrated(server: dbservers.DatabaseServer, tmp_path: Path,
               request: pytest.FixtureRequest) -> Iterator[Ledger]:
    """An empty database in the collation the test is parametrized with (a LOCALES key)."""
    url = create_database(server, request.param)
    vouchers = tmp_path / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    config = write_config(tmp_path / "ovh-credit.conf", url, vouchers)
    try:
        yield Ledger(backend="postgresql", url=url, config=config, vouchers=vouchers)
    finally:
        dbservers.drop_database(server, sa.make_url(url).database or "")


@pytest.fixture
def ledger(unmigrated: Ledger) -> Iterator[Ledger]:
    """A ledger at head in that collation; audited once the test is done."""
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine)
    yield unmigrated
    service = unmigrated.service()
    try:
        report = service.audit()
    finally:
        service.close()
    assert report.ok, report.violations


def buy_credit(service: CreditService, project: str, amount: str, at: dt.datetime) -> int:
    order = service.create_order(project, amount, currency="EUR", at=at)
    credit_id = service.pay_order(order.id, at=at).credit_id
    assert credit_id is not None
    return credit_id


def used(service: CreditService, credit_id: int) -> Decimal:
    return service.show_credit(credit_id, at=dt.datetime.now(UTC))[0].used


# -- CloudKitty: a window across a settled period is refused -------------------------


@pytest.fixture
def cloudkitty(ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
               tmp_path: Path) -> Iterator[Any]:
    """The CloudKitty host module, its processors on ``ledger`` (through CloudKitty's
    global config, as inside cloudkitty-processor, with a metrics.yml); the config as it
    was afterwards."""
    if os.environ.get("OVH_CREDIT_REQUIRE_CLOUDKITTY") != "1":
        pytest.importorskip("cloudkitty")
    import cloudkitty.collector  # noqa: F401 - registers [collect] metrics_conf
    from oslo_config import cfg

    from ovh_credit_plugin.conf import list_opts, register_opts
    from ovh_credit_plugin.hosts import cloudkitty as ck_host

    # The run-order check reads CloudKitty's own database, which these tests do not have.
    monkeypatch.setattr(ck_host, "modules_not_before", lambda module_name: [])
    registered = {group.name for group, _ in list_opts() if group.name in cfg.CONF}
    register_opts(cfg.CONF)
    cfg.CONF.set_override("connection", ledger.url, "cloud_credit")
    # The processor reads metrics.yml (each metric's skip expression), as the Worker does.
    metrics = tmp_path / "metrics.yml"
    metrics.write_text("metrics:\n  instance:\n    unit: instance\n    groupby: [id]\n")
    cfg.CONF.set_override("metrics_conf", str(metrics), "collect")
    ck_host.close_services()
    try:
        yield ck_host
    finally:
        ck_host.close_services()
        cfg.CONF.clear_override("metrics_conf", "collect")
        cfg.CONF.clear_override("connection", "cloud_credit")
        unregister_plugin_opts(cfg.CONF, keep=registered)


def an_hour_of_one_vm(scope: str, start: dt.datetime) -> Any:
    """A rated hour of ``scope`` as CloudKitty hands it over: one instance, priced 3."""
    from cloudkitty import dataframe

    return dataframe.DataFrame(start=start, end=start + HOUR, usage={
        "instance": [dataframe.DataPoint("instance", 2, D("3"),
                                         {"id": "vm-1", "project_id": scope}, {})],
    })


def rated_acme_and_ACME(cloudkitty: Any, service: CreditService,
                        hour: dt.datetime) -> tuple[int, int]:
    """Projects "acme" and "ACME" each bought 100.00 a day before ``hour`` and had it
    rated by CloudKitty; their credits' ids."""
    acme = buy_credit(service, "acme", "100.00", hour - 24 * HOUR)
    other = buy_credit(service, "ACME", "100.00", hour - 24 * HOUR)
    cloudkitty.CloudCreditProcessor("acme").process(an_hour_of_one_vm("acme", hour))
    cloudkitty.CloudCreditProcessor("ACME").process(an_hour_of_one_vm("ACME", hour))
    return acme, other


@pytest.mark.parametrize("unmigrated", list(LOCALES), indirect=True)
def test_a_window_across_a_settled_hour_is_refused_whatever_the_database_collation(
    cloudkitty: Any, ledger: Ledger
) -> None:
    # "acme" and "ACME" are two projects (ids compare byte by byte), both rated by
    # CloudKitty. A linguistic collation sorts their keys together, "ACME"'s hour
    # after "acme"'s: the greatest key below the window's end was "ACME"'s, which is
    # no period of "acme", and the window across "acme"'s settled hour was settled
    # too. Credit paid the half hour both cover a second time.
    hour = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    service = ledger.service()
    try:
        acme, other = rated_acme_and_ACME(cloudkitty, service, hour)
        assert (used(service, acme), used(service, other)) == (D("3"), D("3"))

        window = hour + HOUR / 2
        with pytest.raises(exceptions.SettlementConflict, match="overlaps"):
            cloudkitty.CloudCreditProcessor("acme").process(an_hour_of_one_vm("acme", window))
        assert used(service, acme) == D("3")
        # The next hour is no overlap: settled as usual.
        out = cloudkitty.CloudCreditProcessor("acme").process(
            an_hour_of_one_vm("acme", hour + HOUR))
        assert [p.price for _, p in out.iterpoints()] == [D("0")]
        assert used(service, acme) == D("6")
    finally:
        service.close()


# -- the lookup still uses the key's index ------------------------------------------


@pytest.mark.parametrize("unmigrated", list(LOCALES), indirect=True)
def test_the_latest_key_below_a_period_is_read_through_the_key_index(ledger: Ledger) -> None:
    # What charge_state runs for every rated period of every scope: on a ledger of
    # millions of settlements, a scan of the table each time would stall rating. An
    # index serves comparisons in its own collation only: the key's is "C", like the
    # column's. (A COLLATE "C" in the query instead makes this a sequential scan.)
    from ovh_credit_plugin.ledger import settlements

    prefix = "cloudkitty/acme/"
    latest_below = settlements._LATEST_BELOW.params(
        low=prefix, high=f"{prefix}2026-03-01T11:00:00Z",
        key=f"{prefix}2026-03-01T10:00:00Z/2026-03-01T11:00:00Z")
    with engine_of(ledger) as engine, engine.begin() as conn:
        statement = latest_below.compile(dialect=engine.dialect,
                                         compile_kwargs={"literal_binds": True})
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}").scalars())
    assert "Scan Backward using pk_cloud_credit_settlements" in plan, plan
    assert "Index Cond: ((key > " in plan and "AND (key < " in plan, plan


# -- the migration -------------------------------------------------------------------


def text_collations(engine: Engine) -> dict[tuple[str, str], str | None]:
    """(table, column) -> the collation of every text column of the ledger's tables
    (None: the database's default)."""
    with engine.connect() as conn:
        return {(table, column): collation for table, column, collation in conn.execute(
            sa.text("SELECT table_name, column_name, collation_name "
                    "FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND data_type IN ('character varying', 'text') AND table_name <> :version"),
            {"version": migration.VERSION_TABLE})}


def declared_text_columns() -> set[tuple[str, str]]:
    return {(table.name, column.name) for table in schema.metadata.sorted_tables
            for column in table.columns
            if isinstance(column.type, (schema.ExactString, schema.ExactText))}


def every_row(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table, sorted in Python."""
    with engine.connect() as conn:
        return {table.name: sorted((tuple(row) for row in conn.execute(sa.select(table))),
                                   key=repr)
                for table in schema.metadata.sorted_tables}


def seed_at_0008(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the release whose newest migration is 0008 wrote: rows in every table with
    a text column, for projects whose ids differ by case only."""
    from tests.support.ledgers import invoice

    at = SEEDED_AT
    with monkeypatch.context() as patch:
        patch.setattr(migration, "head", lambda: BEFORE)
        service = ledger.service()
        try:
            for project in ("acme", "ACME"):
                service.pay_order(service.create_order(project, "100", at=at).id, at=at)
                service.create_order_once(project, "15", idempotency_key="key 1", at=at)
                service.settle_invoice(invoice(project, "INV-a", "30.000001", issued_at=at),
                                       at=at)
            service.activate_voucher("acme", "WELCOME-2026", at=at)
            for n in range(2):
                with pytest.raises(exceptions.VoucherRefused):
                    service.activate_voucher("p2", f"NOPE-{n}", at=at)
            service.unblock_vouchers("p2", reason="Ticket #1", operator="Opérateur", at=at)
        finally:
            service.close()


@pytest.mark.parametrize("unmigrated", list(LOCALES), indirect=True)
def test_0009_gives_every_text_column_the_c_collation_and_keeps_every_row(
    unmigrated: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine, BEFORE)
        seed_at_0008(unmigrated, monkeypatch)
        before = every_row(engine)
        assert set(text_collations(engine).values()) == {None}

        assert migration.upgrade(engine) == BEFORE
        assert migration.current(engine) == REVISION == migration.head()
        assert text_collations(engine) == dict.fromkeys(declared_text_columns(), "C")
        assert every_row(engine) == before

        # Back to the database's default collation, every row kept; and up again.
        migration.downgrade(engine, BEFORE)
        assert text_collations(engine) == dict.fromkeys(declared_text_columns(), None)
        assert every_row(engine) == before
        migration.upgrade(engine)
        assert text_collations(engine) == dict.fromkeys(declared_text_columns(), "C")
        assert every_row(engine) == before
    service = unmigrated.service()
    try:
        assert service.audit().ok
        # Ids that differ by case are still two projects, each with its own credit.
        assert sorted(c.available for c in service.list_credits("acme", at=SEEDED_AT)) == [
            D("50"), D("69.999999")]
        assert [c.available for c in service.list_credits("ACME", at=SEEDED_AT)] == [
            D("69.999999")]
    finally:
        service.close()


@pytest.mark.parametrize("unmigrated", LINGUISTIC, indirect=True)
def test_0009_converts_what_is_left_when_some_columns_are_in_c_already(
    unmigrated: Ledger
) -> None:
    # An operator who read of the overlap check's trouble set the key's collation by
    # hand (or a DBA created the tables in "C"): the upgrade converts the others.
    with engine_of(unmigrated) as engine:
        migration.upgrade(engine, BEFORE)
        with engine.begin() as conn:
            conn.exec_driver_sql('ALTER TABLE cloud_credit_settlements '
                                 'ALTER COLUMN key TYPE varchar(600) COLLATE "C"')
        migration.upgrade(engine)
        assert text_collations(engine) == dict.fromkeys(declared_text_columns(), "C")
