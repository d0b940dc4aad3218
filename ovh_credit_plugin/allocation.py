"""Pure allocation of credit to the lines of a charge.

No I/O and no clock: the same inputs always give the same allocation.

Rules (DESIGN.md section 2, rules 6-8):

* a credit may pay a line when ``valid_from <= at < valid_until`` and the
  line's product is in the credit's scope (an empty scope covers all);
* consumption order: vouchers before purchased credit, then soonest
  ``valid_until`` (no end date last), then oldest, then id;
* no usable credit is left idle: the total applied is the maximum the
  eligibility rules allow, and among maximal allocations the one that
  uses credit earliest in the consumption order.

Why not line-by-line greedy: a voucher scoped to ``compute`` and an
unscoped voucher, lines ``storage 10`` then ``compute 10`` and 10 of each
voucher: greedy pays ``storage`` with the unscoped voucher first if it comes
first in order, then ``compute`` with the scoped one: fine; but in the other
order (unscoped voucher expires sooner and is spent on ``compute``), the
scoped one is left idle while ``storage`` is still due. Seen as a flow
network (credits -> lines they may pay -> due), each credit in consumption
order takes as much as augmenting paths allow, rerouting earlier credits
without lowering their totals. Supply vectors of a bipartite flow form a
polymatroid, so this greedy is both maximal and lexicographically first.

Why a credit paid a line (:func:`explain`, :class:`Why`): its place in the
consumption order of the credits usable at the charge's time, and the
credits ahead of it that scopes kept from paying that line. Every credit
ahead of it that covers the line's product is used up by the charge (were
one left with a balance, moving the line's payment onto it would use credit
earlier in the order); so a credit ahead was either used up, or does not
cover the line's product (``not_covered``), or paid lines whose product the
paying credit does not cover (``needed_elsewhere``: the paying credit could
not have taken those lines in its place). With no such credit the reason is
the plain ``order``; otherwise ``scope``.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple, Protocol

ZERO = Decimal(0)
_FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


# Named tuples rather than frozen dataclasses: as immutable, and built in half
# the time (a month-end batch builds several per invoice line).


class CreditState(NamedTuple):
    """What allocation needs to know of one credit."""

    id: int
    kind: str
    available: Decimal
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    created_at: dt.datetime
    products: frozenset[str] = frozenset()

    def covers(self, product: str) -> bool:
        return not self.products or product in self.products

    def usable_at(self, at: dt.datetime) -> bool:
        if self.available <= ZERO or at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until


class Line(NamedTuple):
    """One line of a charge; ``amount`` is already at ledger scale."""

    id: str
    product: str
    amount: Decimal


class Share(NamedTuple):
    """``amount`` of credit ``credit_id`` pays line ``line_id``."""

    line_id: str
    credit_id: int
    kind: str
    amount: Decimal


#: Why a credit paid a line: the plain consumption order, or scopes.
ORDER = "order"
SCOPE = "scope"
#: Why a credit ahead in the order did not pay the line instead (see the module's text).
NOT_COVERED = "not_covered"
NEEDED_ELSEWHERE = "needed_elsewhere"


class Skip(NamedTuple):
    """A credit ahead in the consumption order that scopes kept from paying a line."""

    credit_id: int
    cause: str  # NOT_COVERED or NEEDED_ELSEWHERE
    # NEEDED_ELSEWHERE: the products of the lines it paid that the paying
    # credit does not cover (sorted); empty for NOT_COVERED.
    products: tuple[str, ...] = ()


class Why(NamedTuple):
    """Why a share's credit paid its line."""

    # The credit's place (1 = first) in the consumption order of the credits
    # usable at the charge's time.
    place: int
    skipped: tuple[Skip, ...] = ()

    @property
    def reason(self) -> str:
        return SCOPE if self.skipped else ORDER


class Ordered(Protocol):
    """What the consumption order reads of a credit (a CreditState, a ledger row)."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def valid_until(self) -> dt.datetime | None: ...
    @property
    def created_at(self) -> dt.datetime: ...


class OrderKey(NamedTuple):
    """The fields of a credit the consumption order reads, in the order it reads them."""

    kind: str
    valid_until: dt.datetime | None
    created_at: dt.datetime
    id: int


def order_key(credit: Ordered) -> OrderKey:
    """What :func:`consumption_key` sorts on, as the credit's own values (for showing)."""
    return OrderKey(credit.kind, credit.valid_until, credit.created_at, credit.id)


def consumption_key(credit: Ordered) -> tuple[int, dt.datetime, dt.datetime, int]:
    return (
        0 if credit.kind == "voucher" else 1,
        credit.valid_until or _FAR_FUTURE,
        credit.created_at,
        credit.id,
    )


def consumption_order(credits: Iterable[CreditState]) -> list[CreditState]:
    return sorted(credits, key=consumption_key)


def allocate(
    lines: Sequence[Line], credits: Iterable[CreditState], *, at: dt.datetime
) -> list[Share]:
    """Shares of credit paying ``lines`` at time ``at``.

    Shares come in consumption order of credits, then line order; amounts are
    positive and never exceed a line's amount or a credit's availability.
    """
    return _allocate(lines, _usable(credits, at))


def allocate_explained(
    lines: Sequence[Line], credits: Iterable[CreditState], *, at: dt.datetime
) -> tuple[list[Share], list[Why]]:
    """:func:`allocate`'s shares, and why each share's credit paid its line (in step)."""
    usable = _usable(credits, at)
    if usable and lines and not any(c.products for c in usable):
        # What settles most charges: the places come with the shares, for about
        # nothing (a month-end batch explains shares by the hundred thousand).
        whys: list[Why] = []
        return _allocate_unscoped(lines, usable, whys), whys
    shares = _allocate(lines, usable)
    return shares, _explain(lines, usable, shares)


def explain(
    lines: Sequence[Line], credits: Iterable[CreditState], shares: Sequence[Share], *,
    at: dt.datetime,
) -> list[Why]:
    """Why each share (of ``allocate(lines, credits, at=at)``) paid its line."""
    return _explain(lines, _usable(credits, at), shares)


def _usable(credits: Iterable[CreditState], at: dt.datetime) -> list[CreditState]:
    """The credits that may pay something at ``at``, in consumption order."""
    return [c for c in consumption_order(credits) if c.usable_at(at)]


def _explain(
    lines: Sequence[Line], usable: list[CreditState], shares: Sequence[Share]
) -> list[Why]:
    places = {credit.id: place for place, credit in enumerate(usable, 1)}
    if not any(credit.products for credit in usable):
        # Nothing is scoped: every credit ahead was used up first.
        return [Why(places[share.credit_id]) for share in shares]
    product = {line.id: line.product for line in lines}
    paid: dict[int, set[str]] = {}  # credit id -> products of the lines it paid
    for share in shares:
        paid.setdefault(share.credit_id, set()).add(product[share.line_id])
    whys = []
    for share in shares:
        place = places[share.credit_id]
        payer = usable[place - 1]
        line_product = product[share.line_id]
        skipped = []
        for ahead in usable[: place - 1]:
            if not ahead.covers(line_product):
                skipped.append(Skip(ahead.id, NOT_COVERED))
                continue
            elsewhere = sorted(p for p in paid.get(ahead.id, ()) if not payer.covers(p))
            if elsewhere:
                skipped.append(Skip(ahead.id, NEEDED_ELSEWHERE, tuple(elsewhere)))
        whys.append(Why(place, tuple(skipped)))
    return whys


def _allocate(lines: Sequence[Line], usable: list[CreditState]) -> list[Share]:
    """:func:`allocate` on the usable credits, in consumption order."""
    if not usable or not lines:
        return []
    if not any(c.products for c in usable):
        return _allocate_unscoped(lines, usable)
    due = [line.amount for line in lines]
    total_due = sum(due, ZERO)
    # flow[c][l]: amount credit index c pays line index l (only non-zero kept).
    flow: list[dict[int, Decimal]] = [{} for _ in usable]
    # payers[l]: credit indexes with flow on line l, for reverse residual edges.
    payers: list[dict[int, None]] = [{} for _ in lines]
    reach: list[list[int]] = []
    every_line = list(range(len(lines)))

    for ci, credit in enumerate(usable):
        if total_due <= ZERO:
            break
        eligible = (
            every_line if not credit.products
            else [li for li, line in enumerate(lines) if credit.covers(line.product)]
        )
        reach.append(eligible)
        left = credit.available
        # Direct payment first: cheap, and all a scope-free ledger ever needs.
        for li in eligible:
            if due[li] > ZERO:
                take = min(left, due[li])
                _push(flow, payers, ci, li, take)
                due[li] -= take
                total_due -= take
                left -= take
                if left <= ZERO:
                    break
        while left > ZERO and total_due > ZERO:
            path = _augmenting_path(ci, reach, payers, due)
            if path is None:
                break
            left, total_due = _augment(
                path, left=left, total_due=total_due, flow=flow, payers=payers, due=due
            )

    shares = []
    for ci, credit in enumerate(usable):
        for li in sorted(flow[ci]):
            shares.append(Share(lines[li].id, credit.id, credit.kind, flow[ci][li]))
    return shares


def _allocate_unscoped(
    lines: Sequence[Line], usable: list[CreditState], whys: list[Why] | None = None
) -> list[Share]:
    """What :func:`allocate` gives when every credit may pay every line.

    Then no augmenting path is ever needed: each credit in consumption order
    pays the lines still due, in line order, until it is empty. The same
    shares, in the same order, without the flow network's bookkeeping.
    Given ``whys``, each share's :class:`Why` is appended to it (its credit's
    place: nothing is scoped, so every credit ahead was used up first).
    """
    shares = []
    due = [line.amount for line in lines]
    count = len(lines)
    li = 0
    for place, credit in enumerate(usable, 1):
        why = Why(place)
        left = credit.available
        while li < count:
            owed = due[li]
            if owed <= ZERO:
                li += 1
                continue
            take = owed if owed <= left else left
            shares.append(Share(lines[li].id, credit.id, credit.kind, take))
            if whys is not None:
                whys.append(why)
            due[li] = owed - take
            left -= take
            if left <= ZERO:
                break
        if li >= count:
            break
    return shares


def _push(
    flow: list[dict[int, Decimal]],
    payers: list[dict[int, None]],
    ci: int,
    li: int,
    amount: Decimal,
) -> None:
    new = flow[ci].get(li, ZERO) + amount
    if new > ZERO:
        flow[ci][li] = new
        payers[li][ci] = None
    else:
        flow[ci].pop(li, None)
        payers[li].pop(ci, None)


def _augmenting_path(
    start: int,
    reach: list[list[int]],
    payers: list[dict[int, None]],
    due: list[Decimal],
) -> list[tuple[int, int]] | None:
    """Shortest alternating path credit -> line (-> credit -> line)* ending on a due line.

    Returned as the (credit, line) hops that gain flow; between two hops the
    next credit gives up its flow on the previous hop's line.
    """
    reached_by: dict[int, int] = {}  # line -> credit that reached it
    entered_via: dict[int, int] = {}  # credit -> line whose flow it gives up
    queue: deque[int] = deque([start])
    while queue:
        ci = queue.popleft()
        for li in reach[ci]:
            if li in reached_by:
                continue
            reached_by[li] = ci
            if due[li] > ZERO:
                hops = [(ci, li)]
                back = ci
                while back != start:
                    line = entered_via[back]
                    back = reached_by[line]
                    hops.append((back, line))
                return hops[::-1]
            for cj in payers[li]:
                if cj != start and cj not in entered_via:
                    entered_via[cj] = li
                    queue.append(cj)
    return None


def _augment(
    hops: list[tuple[int, int]],
    *,
    left: Decimal,
    total_due: Decimal,
    flow: list[dict[int, Decimal]],
    payers: list[dict[int, None]],
    due: list[Decimal],
) -> tuple[Decimal, Decimal]:
    amount = min(left, due[hops[-1][1]])
    # Credit hops[k+1][0] gives up its flow on line hops[k][1].
    for k in range(len(hops) - 1):
        amount = min(amount, flow[hops[k + 1][0]][hops[k][1]])
    for k, (ci, li) in enumerate(hops):
        _push(flow, payers, ci, li, amount)
        if k + 1 < len(hops):
            _push(flow, payers, hops[k + 1][0], li, -amount)
    due[hops[-1][1]] -= amount
    return left - amount, total_due - amount
