"""Figure 6: the CloudKitty processor on a 1,000-point frame, against ``copy.deepcopy``.

CloudKitty deep-copies the frame before every processor; that copy is the
floor. ``CloudCreditProcessor.process`` runs on a fresh period each time (so
it settles, never replays) for a project with credit, and for one without
(the fast path: one read, no write). Ledger: a SQLite file (WAL,
synchronous=FULL). Floor and ours interleaved, alternating which goes first;
the median of the per-repetition ratios.
"""

from __future__ import annotations

import copy
import datetime as dt
import statistics
import time
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks import data
from benchmarks.common import Unavailable

WITH_CREDIT = "c" * 32
WITHOUT_CREDIT = "d" * 32
TYPES = ("cpu", "image.size", "volume.size", "network.bw.out", "radosgw.objects")
POINTS = 1000


def _modules() -> tuple[Any, Any, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from cloudkitty import dataframe
            from oslo_config import cfg

            from ovh_credit_plugin.hosts import cloudkitty as host
    except ImportError as error:
        raise Unavailable(f"CloudKitty is not installed ({error})") from None
    return dataframe, cfg, host


def frame(dataframe: Any, start: dt.datetime) -> Any:
    """1,000 priced points over five metric types, like a rated hour of a busy project."""
    result = dataframe.DataFrame(start=start, end=start + dt.timedelta(hours=1))
    for n in range(POINTS):
        metric = TYPES[n % len(TYPES)]
        point = dataframe.DataPoint(
            "unit", Decimal(n % 7 + 1), Decimal(f"0.{n % 97 + 1:02d}1234"),
            {"id": f"resource-{n}", "project_id": WITH_CREDIT},
            {"flavor_name": "b2-7", "region": "GRA"}, "",
        )
        result.add_point(point, metric)
    return result


def seed_credit(url: str) -> None:
    import sqlalchemy as sa

    from ovh_credit_plugin.ledger import schema
    from ovh_credit_plugin.ledger.database import create_engine

    engine = create_engine(url)
    at = data.GRANTED_AT
    amount = Decimal(10) ** 12
    try:
        with engine.begin() as conn:
            conn.execute(schema.projects.insert().values(id=WITH_CREDIT, currency="EUR",
                                                         created_at=at))
            conn.execute(schema.credits.insert().values(
                project_id=WITH_CREDIT, kind="purchased", source="bench", description="bench",
                currency="EUR", products="[]", total=amount, used=Decimal(0),
                expired=Decimal(0), voided=Decimal(0), available=amount, valid_from=at,
                valid_until=None, created_at=at))
            credit = conn.execute(sa.select(sa.func.max(schema.credits.c.id))).scalar_one()
            conn.execute(schema.ledger_entries.insert().values(
                credit_id=credit, type="grant", amount=amount, note="bench", created_at=at))
    finally:
        engine.dispose()


def measure(workdir: Path, sizes: Any) -> dict[str, Any]:
    dataframe, cfg, host = _modules()
    ledger = data.copy_ledger(workdir / "empty.sqlite", workdir / "cloudkitty.sqlite")
    url = data.sqlite_url(ledger)
    seed_credit(url)
    from ovh_credit_plugin.conf import register_opts

    register_opts(cfg.CONF)
    cfg.CONF.set_override("connection", url, group="cloud_credit")
    reps = sizes.cloudkitty_reps
    start = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
    frames = [frame(dataframe, start + dt.timedelta(hours=n)) for n in range(2 * reps + 2)]
    with_credit = host.CloudCreditProcessor(WITH_CREDIT)
    without_credit = host.CloudCreditProcessor(WITHOUT_CREDIT)
    try:
        # Warm-up: the service, its engine and the run-order check (which looks
        # for CloudKitty's own database, absent here: it logs and goes on).
        import logging

        quiet = logging.getLogger(host.__name__)
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            with_credit.process(frames[-1])
            without_credit.process(frames[-2])
        finally:
            quiet.setLevel(level)
        copies, credited, plain = [], [], []
        for rep in range(reps):
            source = frames[rep]
            # Floor and ours take turns going first: a load swing on this
            # shared machine hits both alike, and the ratio is taken per pair.
            steps = [("floor", source), ("credited", source), ("plain", frames[reps + rep])]
            if rep % 2:
                steps.reverse()
            for step, frame_ in steps:
                started = time.perf_counter()
                if step == "floor":
                    copy.deepcopy(frame_)
                    copies.append(time.perf_counter() - started)
                elif step == "credited":
                    out = with_credit.process(frame_)
                    credited.append(time.perf_counter() - started)
                else:
                    without_credit.process(frame_)
                    plain.append(time.perf_counter() - started)
        points = sum(1 for _ in out.iterpoints())
        assert points == POINTS, points
    finally:
        host.close_services()
        cfg.CONF.clear_override("connection", group="cloud_credit")
    return {
        "deepcopy_ms": statistics.median(copies) * 1000,
        "with_credit_ms": statistics.median(credited) * 1000,
        "without_credit_ms": statistics.median(plain) * 1000,
        # The median of the per-repetition ratios, as for every figure.
        "with_credit_ratio": _paired(credited, copies),
        "without_credit_ratio": _paired(plain, copies),
    }


def _paired(ours: list[float], floors: list[float]) -> float:
    return round(statistics.median(a / b for a, b in zip(ours, floors, strict=True)), 3)
