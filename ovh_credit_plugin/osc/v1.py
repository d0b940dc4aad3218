"""``openstack rating credit ...``: the customer's and the operator's commands.

Each command builds one request of DESIGN.md §4 "REST API" and shows the
answer with cliff's formatters. Field names are the API's, money is the API's
decimal strings, unchanged (``-f json`` gives the same strings as the API).
"""

from __future__ import annotations

import argparse
import decimal
import json
from collections.abc import Iterable, Sequence
from typing import Any

from cliff import columns
from cliff.lister import Lister
from cliff.show import ShowOne

from ovh_credit_plugin import explained
from ovh_credit_plugin.i18n import _, deferred
from ovh_credit_plugin.osc import client as credit_client

CREDIT_FIELDS = (
    "id", "project_id", "kind", "description", "source", "currency", "total", "used",
    "expired", "voided", "available", "valid_from", "valid_until", "status", "products",
)
CREDIT_SHORT = ("id", "kind", "description", "currency", "total", "available",
                "valid_until", "status")
ORDER_FIELDS = (
    "id", "project_id", "amount", "currency", "status", "created_at", "expires_at",
    "paid_at", "payment_url", "credit_id",
)
ORDER_SHORT = ("id", "amount", "currency", "status", "created_at", "expires_at", "credit_id")
FORECAST_FIELDS = (
    "currency", "available", "burn_rate_per_day", "window_days", "runs_out_at",
    "amount_at_risk", "credits", "warnings",
)
CREDIT_STATUSES = ("active", "exhausted", "expired", "voided")
ORDER_STATUSES = ("pending", "paid", "cancelled", "expired")
# The amounts of a list's rows: sorted by value (``--sort-column``), shown as the API wrote them.
MONEY_FIELDS = frozenset({"amount", "total", "used", "expired", "voided", "available"})
SETTLEMENT_FIELDS = (
    "key", "invoice_id", "project_id", "currency", "total", "credit_applied", "amount_due",
    "allocations", "note", "settled_at", "revision",
)


class ListColumn(columns.FormattableColumn[Any]):
    """A JSON array with ``-f json|yaml``; one item per line in tables."""

    def human_readable(self) -> str:
        return "\n".join(
            ", ".join(f"{k}={v}" for k, v in item.items()) if isinstance(item, dict) else str(item)
            for item in self._value
        )

    def machine_readable(self) -> list[Any]:
        return list(self._value)


class JsonText(columns.FormattableColumn[Any]):
    """A list as JSON text, for formatters that print a value with str()."""

    def human_readable(self) -> str:
        return json.dumps(self._value)

    def machine_readable(self) -> str:
        return json.dumps(self._value)


class Money(columns.FormattableColumn[str]):
    """An amount: the API's decimal string in every format, compared by its value
    (as text, "10.00" would sort before "9.00")."""

    def _key(self) -> tuple[int, decimal.Decimal | str]:
        try:
            return 0, decimal.Decimal(self._value)
        except (decimal.InvalidOperation, TypeError, ValueError):
            return 1, str(self._value)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        return self._key() < other._key()

    def human_readable(self) -> str:
        return str(self._value)


# csv, value and shell print a list's Python repr, which no other program reads.
_TEXT_FORMATTERS = frozenset({"csv", "value", "shell"})


def _as_text(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(JsonText(cell.machine_readable())
                 if isinstance(cell, ListColumn | ExplainedColumn) else cell
                 for cell in row)


def _cell(value: Any) -> Any:
    return ListColumn(value) if isinstance(value, list) else value


def _show(document: dict[str, Any], fields: Sequence[str]
          ) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    # Fields the server adds beyond the contract (a newer API) are shown after it.
    names = [f for f in fields if f in document]
    names += sorted(k for k in document if k not in fields)
    return tuple(names), tuple(_cell(document[n]) for n in names)


def _row_cell(name: str, value: Any) -> Any:
    return Money(value) if name in MONEY_FIELDS and isinstance(value, str) else _cell(value)


def _rows(items: Iterable[dict[str, Any]], names: Sequence[str]) -> Iterable[tuple[Any, ...]]:
    return (tuple(_row_cell(n, item.get(n)) for n in names) for item in items)


def _amount(text: str) -> str:
    try:
        return credit_client.amount_text(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(_("invalid limit %(text)r: a whole number from 1")
                                         % {"text": text})
    return value


class _CreditCommand:
    """Shared by every command: the client; ``--project`` where the API takes it.

    Each command's description is its ``_description`` (cliff's attribute for a
    translatable one), marked with :func:`deferred`; its help texts are marked
    with ``_``: a French locale reads ``openstack rating credit list --help`` in French.
    """

    app: Any
    _description = ""
    # Lists and creations act on a project; a credit or an order is found by
    # its id alone, so those commands have no --project.
    takes_project = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().get_parser(prog_name)  # type: ignore[misc]
        if self.takes_project:
            parser.add_argument(
                "--project",
                metavar="<project-id>",
                default=None,
                help=_("Act on this project (ID) instead of the token's: admins only "
                       "(sent as ?project_id=)."),
            )
        return parser

    def get_description(self) -> str:
        # cliff shows _description (the parser's description, the one-liner of
        # ``openstack help``): marked with deferred() for the catalog, translated
        # here, when the help is written, in the language of the locale.
        return str(_(self._description)) if self._description else ""

    @property
    def client(self) -> credit_client.CreditClient:
        return self.app.client_manager.cloud_credit  # type: ignore[no-any-return]

    def send(self, request: credit_client.Request) -> dict[str, Any]:
        return self.client.send(request)

    def produce_output(self, parsed_args: argparse.Namespace, column_names: Any,
                       data: Any) -> int:
        if parsed_args.formatter in _TEXT_FORMATTERS:
            # A Lister's data is rows, a ShowOne's one row.
            data = (_as_text(row) for row in data) if isinstance(self, Lister) \
                else _as_text(data)
        return int(super().produce_output(parsed_args, column_names, data))  # type: ignore[misc]


class _ListCommand(_CreditCommand, Lister):
    statuses: tuple[str, ...] = ()
    takes_project = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--status", choices=self.statuses, default=None,
                            help=_("Only those in this status"))
        parser.add_argument("--long", action="store_true", default=False,
                            help=_("Every field"))
        parser.add_argument("--limit", type=_positive_int, default=None, metavar="<n>",
                            help=_("At most this many (default: all, page by page)"))
        parser.add_argument("--marker", default=None, metavar="<id>",
                            help=_("Start after this ID (the previous page's last)"))
        return parser


class ListCredits(_ListCommand):
    _description = deferred("List a project's credits (vouchers and purchased credit) in "
                            "consumption order.")

    statuses = CREDIT_STATUSES

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        request = self.client.requests.list_credits(
            project_id=parsed_args.project, status=parsed_args.status,
            limit=parsed_args.limit, marker=parsed_args.marker)
        names = CREDIT_FIELDS if parsed_args.long else CREDIT_SHORT
        items = self.client.pages(request, "credits", parsed_args.limit)
        return names, _rows(items, names)


class ShowCredit(_CreditCommand, ShowOne):
    _description = deferred("Show one credit with its ledger entries.")

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("credit", metavar="<credit-id>", help=_("Credit ID"))
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        document = self.send(self.client.requests.show_credit(
            parsed_args.credit))
        return _show(document, (*CREDIT_FIELDS, "entries"))


class VoidCredit(_CreditCommand, ShowOne):
    _description = deferred("Void a credit (fraud, charge-back): its balance can no longer be "
                            "used. Admin only.")

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("credit", metavar="<credit-id>", help=_("Credit ID"))
        parser.add_argument("--reason", required=True, metavar="<text>",
                            help=_("Why (recorded in the ledger; the same reason again is "
                                   "a replay, not a second void)"))
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        if not parsed_args.reason.strip():
            raise credit_client.CreditAPIError(_("--reason must not be empty"))
        document = self.send(self.client.requests.void_credit(
            parsed_args.credit, parsed_args.reason))
        return _show(document, CREDIT_FIELDS)


class ShowForecast(_CreditCommand, ShowOne):
    _description = deferred(
        "When the project's credit runs out at its burn rate, and how much expires unused."
        "\n\n"
        "The burn rate is the credit the project used per day over the server's window (30 "
        "days by default); credits are spent at that rate in the order they pay, and what a "
        "credit still holds at its end is at risk.")

    takes_project = True

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        document = self.send(self.client.requests.forecast(project_id=parsed_args.project))
        return _show(document, FORECAST_FIELDS)


class ActivateVoucher(_CreditCommand, ShowOne):
    _description = deferred("Activate a voucher code: the project gets its credit (again: the "
                            "same credit).")

    takes_project = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("code", metavar="<code>", help=_("The voucher code to activate"))
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        document = self.send(self.client.requests.activate_voucher(
            parsed_args.code, project_id=parsed_args.project))
        return _show(document, CREDIT_FIELDS)


class CheckVoucher(_CreditCommand, ShowOne):
    _description = deferred("Show what a voucher code would grant, without activating it.")

    takes_project = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("code", metavar="<code>", help=_("The voucher code to check"))
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        document = self.send(self.client.requests.check_voucher(
            parsed_args.code, project_id=parsed_args.project))
        return _show(document, ("code", "amount", "currency", "valid_from", "valid_until",
                                "validity_days", "products", "description"))


class CreateOrder(_CreditCommand, ShowOne):
    _description = deferred("Buy cloud credit: a pending order to pay at its payment_url (no "
                            "credit until paid).")

    takes_project = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("amount", metavar="<amount>", type=_amount,
                            help=_("Amount excluding tax, e.g. 50.00"))
        parser.add_argument("--currency", metavar="<ISO 4217>", default=None,
                            help=_("The project's currency (default: the project's, or the "
                                   "server's default for a project's first order)"))
        parser.add_argument("--idempotency-key", metavar="<key>", default=None,
                            help=_("Run again with the same key and amount after a lost "
                                   "answer: the same order, not a second one"))
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        document = self.send(self.client.requests.create_order(
            parsed_args.amount, currency=parsed_args.currency,
            idempotency_key=parsed_args.idempotency_key, project_id=parsed_args.project))
        return _show(document, ORDER_FIELDS)


class ListOrders(_ListCommand):
    _description = deferred("List a project's purchase orders.")

    statuses = ORDER_STATUSES

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        request = self.client.requests.list_orders(
            project_id=parsed_args.project, status=parsed_args.status,
            limit=parsed_args.limit, marker=parsed_args.marker)
        names = ORDER_FIELDS if parsed_args.long else ORDER_SHORT
        items = self.client.pages(request, "orders", parsed_args.limit)
        return names, _rows(items, names)


class _OrderCommand(_CreditCommand, ShowOne):
    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("order", metavar="<order-id>", help=_("Order ID"))
        return parser


class ShowOrder(_OrderCommand):
    _description = deferred("Show one purchase order.")

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        document = self.send(self.client.requests.show_order(
            parsed_args.order))
        return _show(document, ORDER_FIELDS)


class CancelOrder(_OrderCommand):
    _description = deferred("Cancel a pending purchase order.")

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        document = self.send(self.client.requests.cancel_order(
            parsed_args.order))
        return _show(document, ORDER_FIELDS)


class PayOrder(_OrderCommand):
    _description = deferred("Confirm an order's payment: its credit is created once (admin or "
                            "service role).")

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--amount", required=True, type=_amount, metavar="<amount>",
                            help=_("The amount paid (refused unless it is the order's)"))
        parser.add_argument("--currency", required=True, metavar="<ISO 4217>",
                            help=_("The currency paid (refused unless it is the "
                                   "order's)"))
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        document = self.send(self.client.requests.pay_order(
            parsed_args.order, parsed_args.amount, parsed_args.currency))
        return _show(document, ORDER_FIELDS)


class ExplainedColumn(columns.FormattableColumn[Any]):
    """A settlement's allocations: the JSON objects, or one sentence per allocation."""

    def human_readable(self) -> str:
        allocations, currency = self._value
        return "\n".join(explained.sentence(a, currency) for a in allocations)

    def machine_readable(self) -> list[Any]:
        return list(self._value[0])


class ShowSettlement(_CreditCommand, ShowOne):
    _description = deferred("Show how an invoice was settled: which credit paid how much of "
                            "each line, and why.")

    takes_project = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("invoice", metavar="<invoice-id>",
                            help=_("The invoice's ID (with --key: a settlement key)"))
        parser.add_argument("--key", action="store_true", default=False,
                            help=_("Read the argument as a settlement key, as a credit's "
                                   "ledger entries show it (a CloudKitty period's, say)"))
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        if parsed_args.key and parsed_args.project:
            raise credit_client.CreditAPIError(_("--project goes with an invoice ID: a "
                                                 "settlement key names its project"))
        document = self.send(self.client.requests.show_settlement(
            parsed_args.invoice, by_key=parsed_args.key, project_id=parsed_args.project))
        names, row = _show(document, SETTLEMENT_FIELDS)
        if "allocations" in names:
            cells = list(row)
            cells[names.index("allocations")] = ExplainedColumn(
                (document["allocations"], document.get("currency", "")))
            row = tuple(cells)
        return names, row


# The entry points' names (``rating_credit_order_create`` is ``rating credit
# order create``), for pyproject.toml and the tests that check it matches.
COMMANDS: dict[str, type[Any]] = {
    "rating_credit_list": ListCredits,
    "rating_credit_show": ShowCredit,
    "rating_credit_void": VoidCredit,
    "rating_credit_forecast": ShowForecast,
    "rating_credit_voucher_activate": ActivateVoucher,
    "rating_credit_voucher_check": CheckVoucher,
    "rating_credit_order_create": CreateOrder,
    "rating_credit_order_list": ListOrders,
    "rating_credit_order_show": ShowOrder,
    "rating_credit_order_cancel": CancelOrder,
    "rating_credit_order_pay": PayOrder,
    "rating_credit_settlement_show": ShowSettlement,
}
