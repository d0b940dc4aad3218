"""The tables of the panel: credits in consumption order, ended credits, purchase orders."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from horizon import tables

from ovh_credit_plugin.dashboard.content.credits import common


class AddCredit(tables.LinkAction):
    name = "add_credit"
    verbose_name = _("Add credit")
    url = "horizon:project:cloud_credit:add_credit"
    classes = ("btn-primary",)
    icon = "plus"

    def allowed(self, request: Any, datum: Any = None) -> bool:
        return common.may_buy(request)

    def get_link_url(self, datum: Any = None) -> str:
        return common.with_project(self.table.request, reverse(self.url))


class AddVoucher(tables.LinkAction):
    name = "add_voucher"
    verbose_name = _("Add a voucher")
    url = "horizon:project:cloud_credit:add_voucher"
    icon = "ticket"

    def allowed(self, request: Any, datum: Any = None) -> bool:
        return common.may_buy(request)

    def get_link_url(self, datum: Any = None) -> str:
        return common.with_project(self.table.request, reverse(self.url))


class VoidCredit(tables.LinkAction):
    name = "void"
    verbose_name = _("Void")
    url = "horizon:project:cloud_credit:void"
    classes = ("btn-danger",)

    def allowed(self, request: Any, datum: Any = None) -> bool:
        return common.is_admin(request) and (datum is None or datum.get("status") != "voided")

    def get_link_url(self, datum: Any = None) -> str:
        assert datum is not None
        return common.with_project(self.table.request, reverse(self.url, args=[datum["id"]]))


def _kind(credit: dict[str, Any]) -> str:
    return str(common.KINDS.get(credit.get("kind", ""), credit.get("kind", "")))


def _status(item: dict[str, Any]) -> str:
    return str(common.STATUSES.get(item.get("status", ""), item.get("status", "")))


def _total(credit: dict[str, Any]) -> str:
    return common.money(credit.get("total"), credit.get("currency"))


def _used(credit: dict[str, Any]) -> str:
    return common.money(credit.get("used"), credit.get("currency"))


def _available(credit: dict[str, Any]) -> Any:
    """The available amount over a bar: the share of the total still to spend."""
    try:
        total = Decimal(credit.get("total") or "0")
        available = Decimal(credit.get("available") or "0")
        share = int(available * 100 / total) if total > 0 else 0
    except InvalidOperation:
        share = 0
    share = min(max(share, 0), 100)
    return format_html(
        '<div class="cloud-credit-available">{}'
        '<div class="progress" style="height: 6px; margin: 2px 0 0; min-width: 8em">'
        '<div class="progress-bar" role="progressbar" aria-valuenow="{}" aria-valuemin="0" '
        'aria-valuemax="100" style="width: {}%"></div></div></div>',
        common.money(credit.get("available"), credit.get("currency")), share, share)


def _validity(credit: dict[str, Any]) -> str:
    start = common.day(credit.get("valid_from"))
    if not credit.get("valid_until"):
        return str(_("from %(start)s, no end")) % {"start": start}
    return str(_("%(start)s to %(end)s")) % {"start": start,
                                              "end": common.day(credit.get("valid_until"))}


def _products(credit: dict[str, Any]) -> str:
    products = credit.get("products") or []
    return ", ".join(products) if products else str(_("All products"))


class CreditsTable(tables.DataTable):
    kind = tables.Column(_kind, verbose_name=_("Kind"))
    description = tables.Column(lambda c: c.get("description") or "",
                                verbose_name=_("Description"))
    total = tables.Column(_total, verbose_name=_("Total"))
    used = tables.Column(_used, verbose_name=_("Used"))
    available = tables.Column(_available, verbose_name=_("Available"))
    validity = tables.Column(_validity, verbose_name=_("Validity"))
    products = tables.Column(_products, verbose_name=_("Products"))
    status = tables.Column(_status, verbose_name=_("Status"))

    def __init__(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        # Void is the only row action, an admin's: no empty "Actions" column for others.
        if not common.is_admin(request):
            self.columns.pop("actions", None)

    def get_object_id(self, datum: dict[str, Any]) -> str:
        return str(datum["id"])

    class Meta:
        name = "credits"
        verbose_name = _("Credits, in the order they are used")
        table_actions = (AddCredit, AddVoucher)
        row_actions = (VoidCredit,)
        # The API's order is the consumption order: the table must not re-sort it.
        multi_select = False


class EndedCreditsTable(CreditsTable):
    class Meta:
        name = "ended_credits"
        verbose_name = _("Expired and voided credits")
        multi_select = False


def _order_amount(order: dict[str, Any]) -> str:
    return common.money(order.get("amount"), order.get("currency"))


def _payment(order: dict[str, Any]) -> Any:
    if order.get("status") != "pending" or not order.get("payment_url"):
        return ""
    return format_html('<a href="{}" class="cloud-credit-pay" rel="noopener" '
                       'target="_blank">{}</a>', order["payment_url"], _("Pay this order"))


def _order_link(order: dict[str, Any], request: Any = None) -> str:
    # An admin looking at another project stays on it: the order page's "Back" link
    # returns to that project (Horizon passes ``request`` to a link that takes one).
    url = str(reverse("horizon:project:cloud_credit:order", args=[order["id"]]))
    return common.with_project(request, url) if request is not None else url


class OrdersTable(tables.DataTable):
    order_id = tables.Column(lambda o: str(o["id"])[:8], verbose_name=_("Order"),
                             link=_order_link)
    created = tables.Column(lambda o: common.moment(o.get("created_at")),
                            verbose_name=_("Created"))
    amount = tables.Column(_order_amount, verbose_name=_("Amount"))
    status = tables.Column(_status, verbose_name=_("Status"))
    payment = tables.Column(_payment, verbose_name=_("Payment"))

    def get_object_id(self, datum: dict[str, Any]) -> str:
        return str(datum["id"])

    class Meta:
        name = "orders"
        verbose_name = _("Purchase orders")
        multi_select = False
