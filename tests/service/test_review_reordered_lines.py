"""Review of c8e95d1 (fingerprints over the lines sorted by id): what a host can hit.

A host's charge is checked like an invoice (charges.check): a malformed line id is an
``InvalidInput`` naming it, nothing written. ``Charge.of`` now sorts the lines by id to
fingerprint them, before that check runs: ids that do not compare with one another
(a None or an int among strings, from a host's bug) fail with a bare ``TypeError``
inside ``Charge.of`` instead (earlier versions refused them with ``InvalidInput``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.service import Charge, CreditService

UTC = dt.timezone.utc
AT = dt.datetime(2026, 2, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad_id", [None, 7], ids=["None", "int"])
def test_review_a_hosts_line_id_that_is_not_text_is_refused_as_invalid_input(
        service: CreditService, bad_id: Any) -> None:
    with pytest.raises(exceptions.InvalidInput, match="line id"):
        service.settle([Charge.of(
            key="host/p1/period-1", project_id="p1", invoice_id="period-1", currency="EUR",
            at=AT, lines=[Line("cpu", "cpu", Decimal("1")), Line(bad_id, "ram", Decimal("1"))],
        )], on_change="replace")
