"""Review of 66fb0ed: the forecast's warning rounds the amount at risk to the currency's
units, but only for currencies ISO 4217 still lists. A ledger held in a currency it
withdrew (BGN: Bulgaria took the euro; the ledger shows them, money.WITHDRAWN_PLACES)
still reads the exact sub-cent figure the commit meant to hide.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("keystoneauth1")
responses = pytest.importorskip("responses")
pytest.importorskip("django")
pytest.importorskip("horizon")

from tests.unit.test_panel_edges_more import (  # noqa: E402  # isort: skip
    catalog,
    horizon_urls_and_templates,
)

from django.utils import translation  # noqa: E402

from tests.unit.test_osc import CK  # noqa: E402
from tests.unit.test_panel_review import _index  # noqa: E402

__all__ = ["catalog", "horizon_urls_and_templates"]  # fixtures used here


@responses.activate
def test_a_withdrawn_currencys_warning_is_in_its_units_too(catalog: dict[str, Any]) -> None:
    responses.get(f"{CK}/forecast", json={
        "currency": "BGN", "credits": [{"credit_id": 3,
                                        "valid_until": "2027-02-01T10:00:00Z"}],
        "warnings": [{"credit_id": 3, "days_left": 20, "amount": "65.000005"}]})
    _, view = _index(roles=("member",))
    with translation.override("en"):
        [warning] = view._warnings()
    # Now: "65.000005 BGN of your credit ...".
    assert warning.startswith("65.00\u00a0BGN of your credit"), warning
