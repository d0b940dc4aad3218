"""The panel's pages."""

from __future__ import annotations

import uuid
from typing import Any

from django.urls import reverse, reverse_lazy
from django.utils.translation import gettext_lazy as _
from horizon import forms, tables, views

from ovh_credit_plugin.dashboard import api
from ovh_credit_plugin.dashboard.content.credits import common
from ovh_credit_plugin.dashboard.content.credits import forms as credit_forms
from ovh_credit_plugin.dashboard.content.credits import tables as credit_tables

TEMPLATES = "cloud_credit"


class IndexView(tables.MultiTableView):
    table_classes = (credit_tables.CreditsTable, credit_tables.EndedCreditsTable,
                     credit_tables.OrdersTable)
    template_name = f"{TEMPLATES}/index.html"
    page_title = _("Credits & Vouchers")

    def _client(self) -> Any:
        if not hasattr(self, "_api"):
            self._api = api.client(self.request)
        return self._api

    def _credits(self) -> list[dict[str, Any]]:
        if not hasattr(self, "_all_credits"):
            try:
                self._all_credits = api.credits(
                    self._client(), project_id=common.target_project(self.request))
            except api.CreditAPIError as error:
                common.log_in_again(error)
                self._all_credits = []
                common.handle(self.request, _("Unable to list the credits: %s")
                              % common.error_text(error), error)
        return self._all_credits

    def get_credits_data(self) -> list[dict[str, Any]]:
        return [c for c in self._credits() if c.get("status") not in common.ENDED]

    def get_ended_credits_data(self) -> list[dict[str, Any]]:
        return [c for c in self._credits() if c.get("status") in common.ENDED]

    def get_orders_data(self) -> list[dict[str, Any]]:
        try:
            return api.orders(self._client(), project_id=common.target_project(self.request))
        except api.CreditAPIError as error:
            common.log_in_again(error)
            common.handle(self.request, _("Unable to list the purchase orders: %s")
                          % common.error_text(error), error)
            return []

    def _warnings(self) -> list[str]:
        """The forecast's warnings: credit that will expire before it is spent."""
        try:
            forecast = api.forecast(self._client(),
                                    project_id=common.target_project(self.request))
        except api.CreditAPIError:
            # The forecast only adds a warning: the page stands without it.
            return []
        ends = {c.get("credit_id"): c.get("valid_until") for c in forecast.get("credits", [])}
        currency = forecast.get("currency")
        return [str(_("%(amount)s of your credit will expire unused on %(date)s: at your "
                      "current usage it will not be spent before then."))
                % {"amount": common.money(common.estimate(w.get("amount"), currency), currency),
                   "date": common.day(ends.get(w.get("credit_id")))}
                for w in forecast.get("warnings", [])]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["warnings"] = self._warnings()
        context["is_admin"] = common.is_admin(self.request)
        context["project_id"] = (common.target_project(self.request)
                                 or self.request.user.project_id)
        return context


class _FormView(forms.ModalFormView):
    success_url = reverse_lazy("horizon:project:cloud_credit:index")
    cancel_url = reverse_lazy("horizon:project:cloud_credit:index")

    def get_initial(self) -> dict[str, Any]:
        return {"project_id": common.target_project(self.request) or ""}

    def get_cancel_url(self) -> str:
        # Cancel on the form's own page: back to the project the admin is looking at.
        return common.index_url(self.request)


class AddCreditView(_FormView):
    form_class = credit_forms.AddCreditForm
    template_name = f"{TEMPLATES}/add_credit.html"
    modal_id = "add_credit_modal"
    modal_header = _("Add credit")
    page_title = _("Add credit")
    submit_label = _("Create the purchase order")
    submit_url = reverse_lazy("horizon:project:cloud_credit:add_credit")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["purchase_terms"] = common.purchase_terms()
        return context

    def get_initial(self) -> dict[str, Any]:
        initial: dict[str, Any] = super().get_initial()
        initial["request_key"] = uuid.uuid4().hex
        try:
            forecast = api.forecast(api.client(self.request),
                                    project_id=common.target_project(self.request))
            initial["currency"] = forecast.get("currency") or ""
        except api.CreditAPIError:
            initial["currency"] = ""
        return initial


class AddVoucherView(_FormView):
    form_class = credit_forms.AddVoucherForm
    template_name = f"{TEMPLATES}/add_voucher.html"
    modal_id = "add_voucher_modal"
    modal_header = _("Add a voucher")
    page_title = _("Add a voucher")
    submit_label = _("Activate")
    submit_url = reverse_lazy("horizon:project:cloud_credit:add_voucher")


class VoidView(_FormView):
    form_class = credit_forms.VoidForm
    template_name = f"{TEMPLATES}/void.html"
    modal_id = "void_modal"
    modal_header = _("Void a credit")
    page_title = _("Void a credit")
    submit_label = _("Void")

    def get_initial(self) -> dict[str, Any]:
        return {**super().get_initial(), "credit_id": self.kwargs["credit_id"]}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["submit_url"] = reverse("horizon:project:cloud_credit:void",
                                        args=[self.kwargs["credit_id"]])
        return context


class OrderView(views.HorizonTemplateView):
    """One purchase order: pending with its payment link, or paid."""

    template_name = f"{TEMPLATES}/order.html"
    page_title = _("Purchase order")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        # Back to the project the admin is looking at (?project_id=), not the token's.
        index = common.index_url(self.request)
        try:
            client = api.client(self.request)
            order = client.send(client.requests.show_order(kwargs["order_id"]))
        except api.CreditAPIError as error:
            common.log_in_again(error)
            redirect = index
            common.handle(self.request,
                          _("Unable to show the order: %s") % common.error_text(error),
                          error, redirect=redirect)
            raise
        context["order"] = order
        context["index_url"] = index
        context["amount"] = common.money(order.get("amount"), order.get("currency"))
        context["status"] = common.STATUSES.get(str(order.get("status")), order.get("status"))
        context["created"] = common.moment(order.get("created_at"))
        context["expires"] = common.moment(order.get("expires_at"))
        return context
