"""Why a credit paid a line (allocation.explain): its place in the consumption order,
and the credits ahead of it that scopes kept from paying that line.

The property test checks each explanation against the allocation and against
the consumption order and eligibility re-implemented in test_allocation.py
(``oracle_order``, ``oracle_eligible``), never against allocation's own.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings

from ovh_credit_plugin import allocation
from ovh_credit_plugin.allocation import (
    NEEDED_ELSEWHERE,
    NOT_COVERED,
    CreditState,
    Line,
    Share,
    Skip,
    Why,
    allocate,
    allocate_explained,
    explain,
)
from tests.unit.test_allocation import (
    AT,
    DAY,
    credit,
    credit_lists,
    line_lists,
    oracle_eligible,
    oracle_order,
)


def spent(shares: list[Share]) -> dict[int, Decimal]:
    total: dict[int, Decimal] = {}
    for share in shares:
        total[share.credit_id] = total.get(share.credit_id, Decimal(0)) + share.amount
    return total


def test_plain_order_gives_each_credit_its_place() -> None:
    lines = [Line("a", "compute", Decimal("12")), Line("b", "storage", Decimal("10"))]
    soon = credit(1, "5", valid_until=AT + DAY)
    later = credit(2, "5", valid_until=AT + 9 * DAY)
    bought = credit(3, "50", kind="purchased", valid_until=AT + DAY)
    shares, whys = allocate_explained(lines, [bought, later, soon], at=AT)
    assert [(s.line_id, s.credit_id, s.amount) for s in shares] == [
        ("a", 1, Decimal(5)), ("a", 2, Decimal(5)), ("a", 3, Decimal(2)),
        ("b", 3, Decimal(10))]
    assert whys == [Why(1), Why(2), Why(3), Why(3)]
    assert {why.reason for why in whys} == {"order"}


def test_a_credit_ahead_that_does_not_cover_the_product_is_named() -> None:
    """The compute voucher comes first; storage is paid by the purchased credit."""
    lines = [Line("s", "storage", Decimal("10")), Line("c", "compute", Decimal("3"))]
    compute_only = credit(1, "20", products=("compute",))
    bought = credit(2, "50", kind="purchased")
    shares, whys = allocate_explained(lines, [bought, compute_only], at=AT)
    explained = {(s.line_id, s.credit_id): why for s, why in zip(shares, whys, strict=True)}
    assert explained == {
        ("c", 1): Why(1),
        ("s", 2): Why(2, (Skip(1, NOT_COVERED),)),
    }
    assert explained["s", 2].reason == "scope"
    assert explained["c", 1].reason == "order"


def test_a_credit_ahead_needed_for_a_line_the_payer_does_not_cover_is_named() -> None:
    """The unscoped voucher comes first but is moved to storage, which the compute
    voucher cannot pay: the compute voucher pays compute in its place."""
    lines = [Line("c", "compute", Decimal("10")), Line("s", "storage", Decimal("10"))]
    unscoped = credit(1, "15", valid_until=AT + DAY)
    compute_only = credit(2, "10", valid_until=AT + 9 * DAY, products=("compute",))
    shares, whys = allocate_explained(lines, [compute_only, unscoped], at=AT)
    assert [(s.line_id, s.credit_id, s.amount, why) for s, why in zip(shares, whys, strict=True)
            ] == [
        ("c", 1, Decimal(5), Why(1)),
        ("s", 1, Decimal(10), Why(1)),
        ("c", 2, Decimal(5), Why(2, (Skip(1, NEEDED_ELSEWHERE, ("storage",)),))),
    ]


def test_places_count_only_credits_usable_at_the_charge_time() -> None:
    lines = [Line("a", "compute", Decimal("3"))]
    ended = credit(1, "5", valid_until=AT - DAY)
    empty = credit(2, "0", valid_until=AT + DAY)
    not_yet = credit(3, "5", valid_from=AT + DAY)
    usable = credit(4, "5", valid_until=AT + 2 * DAY)
    shares, whys = allocate_explained(lines, [ended, empty, not_yet, usable], at=AT)
    assert [s.credit_id for s in shares] == [4]
    assert whys == [Why(1)]


def test_explain_without_scopes_gives_each_credit_its_place() -> None:
    # allocate_explained takes a shortcut when nothing is scoped; explain() does not.
    lines = [Line("a", "compute", Decimal("12"))]
    credits = [credit(2, "50", kind="purchased", valid_until=AT + DAY),
               credit(1, "5", valid_until=AT + DAY)]
    shares = allocate(lines, credits, at=AT)
    assert [s.credit_id for s in shares] == [1, 2]
    assert explain(lines, credits, shares, at=AT) == [Why(1), Why(2)]


def test_explain_matches_allocate_explained() -> None:
    lines = [Line("c", "compute", Decimal("10")), Line("s", "storage", Decimal("10"))]
    credits = [credit(1, "15", valid_until=AT + DAY),
               credit(2, "10", valid_until=AT + 9 * DAY, products=("compute",))]
    shares, whys = allocate_explained(lines, credits, at=AT)
    assert explain(lines, credits, shares, at=AT) == whys


# deadline=None: what this checks is values, not speed; on the shared 2-core CI
# machine an example now and then passes hypothesis' 200 ms default under load,
# which would fail a correct run. Each example allocates, then explains every share.
@settings(max_examples=300, deadline=None)
@given(lines=line_lists, credits=credit_lists())
def test_explanations_are_consistent_with_the_allocation_and_the_order(
    lines: list[Line], credits: list[CreditState]
) -> None:
    shares, whys = allocate_explained(lines, credits, at=AT)
    assert shares == allocate(lines, credits, at=AT)
    assert len(whys) == len(shares)
    # Usable at AT: eligible for a product in every scope's eyes (rule 8 without scopes).
    usable = [c for c in oracle_order(credits)
              if oracle_eligible(c._replace(products=frozenset()), "any", AT)]
    by_id = {c.id: c for c in credits}
    used = spent(shares)
    product = {line.id: line.product for line in lines}
    places = [why.place for why in whys]
    # Shares come in consumption order: their places never go down.
    assert places == sorted(places)
    for share, why in zip(shares, whys, strict=True):
        # The place is the credit's, in the oracle's consumption order.
        assert usable[why.place - 1].id == share.credit_id
        payer = by_id[share.credit_id]
        line_product = product[share.line_id]
        skipped = {skip.credit_id: skip for skip in why.skipped}
        assert [skip.credit_id for skip in why.skipped] == [
            c.id for c in usable[: why.place - 1] if c.id in skipped]
        for ahead in usable[: why.place - 1]:
            covers = not ahead.products or line_product in ahead.products
            if covers:
                # Ahead in the order and able to pay the line: used up first.
                assert used.get(ahead.id, Decimal(0)) == ahead.available
            skip = skipped.get(ahead.id)
            if not covers:
                assert skip == Skip(ahead.id, NOT_COVERED)
                continue
            elsewhere = sorted({product[s.line_id] for s in shares
                                if s.credit_id == ahead.id
                                and payer.products and product[s.line_id] not in payer.products})
            if elsewhere:
                assert skip == Skip(ahead.id, NEEDED_ELSEWHERE, tuple(elsewhere))
            else:
                assert skip is None
        assert why.reason == ("scope" if why.skipped else "order")
    if not any(c.products for c in credits):
        assert all(why.reason == "order" for why in whys)


def test_order_key_is_what_the_consumption_key_sorts_on() -> None:
    """The explanation shows a credit's order fields; the rule stays in consumption_key."""
    voucher = credit(7, "1", valid_until=None, created_at=AT - 3 * DAY)
    key = allocation.order_key(voucher)
    assert key == allocation.OrderKey("voucher", None, AT - 3 * DAY, 7)
    shifted = voucher._replace(available=Decimal(99), valid_from=AT - 900 * DAY,
                               products=frozenset({"gpu"}))
    # Fields outside the order key do not move a credit in the order.
    assert allocation.consumption_key(shifted) == allocation.consumption_key(voucher)
    assert allocation.order_key(shifted) == key
    later = voucher._replace(created_at=AT - dt.timedelta(days=1))
    assert allocation.consumption_key(later) > allocation.consumption_key(voucher)
