"""Edge cases of the cloud_credit processor inside the real CloudKitty 25.x."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.conftest import (
    HAVE_CLOUDKITTY,
    PERIOD,
    REQUIRE_CLOUDKITTY,
    SCOPE,
    CloudKitty,
)

if not HAVE_CLOUDKITTY and not REQUIRE_CLOUDKITTY:
    pytest.skip("cloudkitty is not installed", allow_module_level=True)

from cloudkitty import dataframe
from oslo_config import cfg

from ovh_credit_plugin.hosts import cloudkitty as ck_host
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.service import CreditService
from tests.integration.test_cloudkitty import (
    _rows,
    buy_credit,
    credit,
    day_before,
    entry_types,
    settlements,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

D = Decimal


def frame_of(start: dt.datetime, usage: dict[str, list[Any]]) -> Any:
    return dataframe.DataFrame(start=start, end=start + dt.timedelta(seconds=PERIOD), usage={
        t: [dataframe.DataPoint("u", 1, D(str(p)), {"id": f"{t}-{n}", "project_id": SCOPE}, {})
            for n, p in enumerate(prices)]
        for t, prices in usage.items()
    })


def prices(frame: Any) -> list[tuple[str, Decimal]]:
    return [(t, ck_host._price(p.price)) for t, p in frame.iterpoints()]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_the_same_period_rated_by_four_workers_at_once_is_paid_once(
    cloudkitty: CloudKitty, ledger: Any, service: CreditService
) -> None:
    credit_id = buy_credit(service, SCOPE, "100.00", day_before(cloudkitty))
    frame = frame_of(cloudkitty.p1, {"instance": [3, 3], "volume": [1]})
    outs: list[Any] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            outs.append(ck_host.CloudCreditProcessor(SCOPE).process(frame))
        except Exception as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert credit(service, credit_id).used == D("7")
    assert all(prices(out) == [("instance", D(0)), ("instance", D(0)), ("volume", D(0))]
               for out in outs)
    assert len(settlements(ledger)) == 1


def test_a_period_re_rated_with_fewer_types_gives_back_the_missing_types_credit(
    cloudkitty: CloudKitty, ledger: Any, service: CreditService
) -> None:
    credit_id = buy_credit(service, SCOPE, "100.00", day_before(cloudkitty))
    processor = ck_host.CloudCreditProcessor(SCOPE)
    processor.process(frame_of(cloudkitty.p1, {"instance": [3, 3], "volume": [1]}))
    assert credit(service, credit_id).used == D("7")
    out = processor.process(frame_of(cloudkitty.p1, {"instance": [3]}))
    assert prices(out) == [("instance", D(0))]
    assert credit(service, credit_id).used == D("3")
    assert entry_types(ledger).count("reversal") == 2


def test_a_period_of_free_and_discount_points_is_untouched_and_not_recorded(
    cloudkitty: CloudKitty, ledger: Any, service: CreditService
) -> None:
    buy_credit(service, SCOPE, "100.00", day_before(cloudkitty))
    before = ledger.checksum()
    frame = frame_of(cloudkitty.p1, {"instance": [0, -1], "volume": ["0.0000001"]})
    out = ck_host.CloudCreditProcessor(SCOPE).process(frame)
    assert prices(out) == prices(frame)
    assert ledger.checksum() == before


def test_prices_with_many_decimals_keep_what_is_below_a_millionth(
    cloudkitty: CloudKitty, ledger: Any, service: CreditService
) -> None:
    credit_id = buy_credit(service, SCOPE, "100.00", day_before(cloudkitty))
    frame = frame_of(cloudkitty.p1, {"instance": ["1.23456789", "0.30000000000000004"]})
    out = ck_host.CloudCreditProcessor(SCOPE).process(frame)
    assert prices(out) == [("instance", D("0.00000089")),
                           ("instance", D("0.00000000000000004"))]
    assert credit(service, credit_id).used == D("1.534567")


# -- the ledger in CloudKitty's own database --------------------------------------------


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
@pytest.mark.parametrize("charset", ["utf8", "utf8mb3"])
def test_the_ledger_in_cloudkittys_mysql_database_keeps_any_text(
    cloudkitty: CloudKitty, ledger: Any, service: CreditService, charset: str
) -> None:
    # No [cloud_credit] connection: the ledger is in CloudKitty's database, whose
    # URL deployment tools write with charset=utf8 (utf8mb3, OpenStack-Ansible,
    # devstack). The ledger's columns are utf8mb4: over such a connection a
    # void reason or a voucher description outside the BMP is refused (1366).
    import sqlalchemy as sa

    credit_id = buy_credit(service, SCOPE, "5.00", day_before(cloudkitty))
    url = sa.make_url(ledger.url).update_query_dict({"charset": charset})
    cloudkitty.set_override("connection", url.render_as_string(hide_password=False), "database")
    cloudkitty.set_override("connection", None, "cloud_credit")
    ck_host.close_services()
    voided = ck_host._service_for(cfg.CONF).void_credit(credit_id, reason="fraude \U0001F6AB")
    assert voided.status == "voided"
    table = schema.credits
    (stored,) = _rows(ledger, sa.select(table.c.void_reason).where(table.c.id == credit_id))
    assert stored.void_reason == "fraude \U0001F6AB"



# -- absurd prices --------------------------------------------------------------------


@pytest.mark.parametrize("price", ["1E+18", "1E+35", "Infinity", "-Infinity", "NaN"])
def test_an_absurd_price_is_refused_as_an_invalid_amount(
    cloudkitty: CloudKitty, ledger: Any, service: CreditService, price: str
) -> None:
    # docs/cloudkitty.md section 8: a broken pricing rule's absurd amount is
    # refused (InvalidAmount) for a project that holds credit; the period stays
    # unrated. A price past what the decimal context holds, infinite or NaN
    # (a float division by zero in a pyscript) raised a bare
    # decimal.InvalidOperation instead, which CloudKitty logs as
    # "[<class 'decimal.InvalidOperation'>]": nothing says which price.
    from ovh_credit_plugin import exceptions

    credit_id = buy_credit(service, SCOPE, "5.00", day_before(cloudkitty))
    before = ledger.checksum()
    frame = frame_of(cloudkitty.p1, {"volume": [1], "instance": [price]})
    with pytest.raises(exceptions.InvalidAmount, match="instance"):
        ck_host.CloudCreditProcessor(SCOPE).process(frame)
    assert ledger.checksum() == before
    assert credit(service, credit_id).used == D(0)
