"""The one-sentence form of an explained allocation (tables of both command lines)."""

from __future__ import annotations

from ovh_credit_plugin import explained

KEY = {"kind": "voucher", "valid_until": None, "created_at": "2026-01-31T10:00:00Z",
       "credit_id": 2}


def allocation(explanation: object) -> dict[str, object]:
    return {"line_id": "c", "credit_id": 2, "kind": "voucher", "amount": "5.00",
            "explanation": explanation}


def test_needed_elsewhere_names_the_products_the_payer_does_not_cover() -> None:
    text = explained.sentence(allocation({
        "place": 2, "order_key": KEY, "reason": "scope",
        "skipped": [{"credit_id": 1, "cause": "needed_elsewhere",
                     "products": ["gpu", "storage"]}]}), "EUR")
    assert text == ("line c: 5.00 EUR from credit 2 (voucher), 2nd in the consumption order "
                    "(no end date, created 2026-01-31T10:00:00Z); credit 1 comes first but "
                    "paid gpu, storage, which credit 2 does not cover")


def test_a_settlement_recorded_before_explanations() -> None:
    assert explained.sentence(allocation(None), "JPY") == (
        "line c: 5.00 JPY from credit 2 (voucher); recorded without an explanation")


def test_ordinals() -> None:
    assert [explained.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
