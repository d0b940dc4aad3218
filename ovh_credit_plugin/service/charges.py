"""What hosts hand the service to settle: charges, their lines, keys and fingerprints."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ovh_credit_plugin import allocation, contracts, exceptions, models, money
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.service import inputs

__all__ = ["Charge", "Line", "check", "fingerprint", "invoice_key"]


@dataclass(frozen=True)
class Charge:
    """Something to settle: an invoice, or a rated period of a CloudKitty scope.

    ``key`` is the idempotency key; ``at`` the settlement time used for
    eligibility; ``lines`` carry ledger-scale amounts.
    """

    key: str
    project_id: str
    invoice_id: str
    currency: str
    at: dt.datetime
    lines: Sequence[Line]
    fingerprint: str

    @classmethod
    def of(
        cls,
        *,
        key: str,
        project_id: str,
        invoice_id: str,
        currency: str,
        at: dt.datetime,
        lines: Sequence[Line],
    ) -> Charge:
        """A charge with the fingerprint of its content (what every host builds).

        Amounts are taken to the ledger's scale first, so that ``10.00`` and
        ``10`` make the same fingerprint (a replay, not a conflict or a
        re-rating); what is not an exact ledger amount is left for the
        settlement's check to refuse, never rounded here.
        """
        lines = [Line(line.id, line.product, money.ledger_if_exact(line.amount))
                 for line in lines]
        # An invoice holds each line id once: the same lines in another order (a
        # host's query without ORDER BY) are the same charge, a replay. Allocation
        # still follows the order they came in.
        # Ids that are not text are refused by check(), not here.
        by_id = (sorted(lines, key=_line_id) if all(isinstance(x.id, str) for x in lines)
                 else lines)
        return cls(key=key, project_id=project_id, invoice_id=invoice_id, currency=currency,
                   at=at, lines=lines, fingerprint=fingerprint(currency, at, by_id))

    def same_as(self, recorded: str) -> bool:
        """Whether ``recorded``, a settlement's fingerprint, is this charge's.

        Earlier versions fingerprinted the lines in the order they came: their
        record still matches the same lines in that order.
        """
        return recorded == self.fingerprint or (
            recorded == fingerprint(self.currency, self.at, self.lines))

    @classmethod
    def from_invoice(cls, invoice: models.Invoice) -> Charge:
        return cls.of(
            key=invoice_key(invoice.project_id, invoice.id),
            project_id=invoice.project_id,
            invoice_id=invoice.id,
            currency=invoice.currency,
            at=invoice.issued_at,
            lines=[Line(line.id, line.product, line.amount) for line in invoice.lines],
        )


def _line_id(line: Line) -> str:
    return line.id


def invoice_key(project_id: str, invoice_id: str) -> str:
    """An invoice's settlement key: ``invoice/<project>/<invoice>``, one per pair.

    Both ids may hold "/" ("2026/11/0042"), so the project's is written
    ``%2F``: "%" is no id character, so the first "/" after the project ends
    it. (Earlier versions wrote it as is: project "a/b" with invoice "c" and
    project "a" with invoice "b/c" shared a key; see
    ``settlement_txn.legacy_keys``.)
    """
    return f"invoice/{project_id.replace('/', '%2F')}/{invoice_id}"


# json.dumps(..., separators=(",", ":")) without building an encoder per call:
# the same text, so fingerprints recorded by earlier versions still match.
_CANONICAL = json.JSONEncoder(separators=(",", ":"))


def fingerprint(currency: str, at: dt.datetime, lines: Sequence[allocation.Line]) -> str:
    """What makes two settlements of one key the same charge."""
    canonical = _CANONICAL.encode(
        [currency, contracts.isoformat(at), [[x.id, x.product, str(x.amount)] for x in lines]]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check(charge: Charge) -> None:
    """A host's charge is checked like an invoice: nothing malformed reaches the ledger."""
    inputs.project_id(charge.project_id)
    money.check_currency(charge.currency)
    if not isinstance(charge.key, str) or not 0 < len(charge.key) <= 600:
        raise exceptions.InvalidInput(_("invalid settlement key %(key)r")
                                      % {"key": charge.key})
    if not isinstance(charge.invoice_id, str) or not 0 < len(charge.invoice_id) <= 255:
        raise exceptions.InvalidInput(_("invalid invoice id %(invoice_id)r")
                                      % {"invoice_id": charge.invoice_id})
    if not isinstance(charge.at, dt.datetime) or charge.at.tzinfo is None:
        raise exceptions.InvalidInput(
            _("charge %(key)s: settlement time must be an aware datetime, not %(at)r")
            % {"key": charge.key, "at": charge.at}
        )
    seen: set[str] = set()
    for line in charge.lines:
        # The ledger's columns are 255 characters: longer text would be a
        # driver error on PostgreSQL and MariaDB (SQLite would store it).
        for what, text in ((_("line id"), line.id), (_("product"), line.product)):
            if not isinstance(text, str) or not 0 < len(text) <= 255:
                raise exceptions.InvalidInput(_("charge %(key)s: invalid %(what)s %(text)r")
                                              % {"key": charge.key, "what": what, "text": text})
        # As in an invoice: an allocation, a debit and its explanation name their
        # line by its id, which two lines (of two products) would share.
        if line.id in seen:
            raise exceptions.InvalidInput(_("charge %(key)s: line id %(id)r appears twice")
                                          % {"key": charge.key, "id": line.id})
        seen.add(line.id)
        if not money.is_ledger_amount(line.amount):
            field = (_("charge %(key)s line %(line)s amount")
                     % {"key": charge.key, "line": line.id})
            if type(line.amount) is not Decimal:
                # parse_amount would take "10" or 10, and the allocation then fail untyped.
                raise exceptions.InvalidAmount(
                    _("%(field)s must be a Decimal, not %(name)s")
                    % {"field": field, "name": type(line.amount).__name__}
                )
            money.parse_amount(line.amount, allow_zero=True, field=field)
    if money.add(*(line.amount for line in charge.lines)) >= money.MAX_AMOUNT:
        raise exceptions.InvalidAmount(_("charge %(key)s: the total is too large")
                                       % {"key": charge.key})
