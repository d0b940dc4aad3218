"""The panel's forms: add credit (a purchase order), add a voucher, void a credit (admins)."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from typing import Any

from django import forms as django_forms
from django import http
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from horizon import forms, messages

from ovh_credit_plugin import i18n
from ovh_credit_plugin.dashboard import api
from ovh_credit_plugin.dashboard.content.credits import common
from ovh_credit_plugin.money import currency_places


class AddCreditForm(forms.SelfHandlingForm):
    """An amount: the API makes a pending purchase order, the credit exists once paid."""

    project_id = django_forms.CharField(widget=django_forms.HiddenInput, required=False)
    currency = django_forms.CharField(widget=django_forms.HiddenInput, required=False)
    # Drawn when the form is shown, posted back with it: submitting the same form
    # again (after a lost answer, a double click) is the same order, not a second one.
    request_key = django_forms.CharField(widget=django_forms.HiddenInput, required=False,
                                         max_length=64)
    amount = django_forms.CharField(
        label=_("Amount"), max_length=32,
        help_text=_("The amount of credit to buy, before tax. You pay it on the payment "
                    "page; the credit appears once paid."))

    def clean_amount(self) -> str:
        # As the user's language writes numbers ("1 000,50", "1,000.50"), or
        # 1000.50 in any: Decimal would also take "1e100000000" (a hundred million
        # digits once written out for the API), "1_000", "١٢".
        amount = i18n.typed_amount(self.cleaned_data["amount"],
                                   translation.get_language() or i18n.SOURCE_LANGUAGE)
        if amount is None:
            raise django_forms.ValidationError(
                _("Write an amount as a number, for example 50.00."))
        if amount <= 0:
            raise django_forms.ValidationError(_("The amount must be more than zero."))
        currency = (self.data.get("currency") or "").strip()
        if currency:
            try:
                places = currency_places(currency)
            except Exception:  # an unknown code: the API judges it
                places = None
            exponent = amount.as_tuple().exponent
            if places is not None and isinstance(exponent, int) and -exponent > places:
                raise django_forms.ValidationError(
                    _("%(currency)s amounts have at most %(places)d decimals.")
                    % {"currency": currency, "places": places})
        # The purchase limits are the server's configuration: it checks them, and
        # its refusal (in the user's language) is shown on the form.
        return format(amount, "f")

    def idempotency_key(self, data: dict[str, Any]) -> str:
        """The form's key and the amount: another amount on the same form is another order
        (the API would refuse the same key with another amount)."""
        form_key = "".join(c for c in str(data.get("request_key") or "")
                           if c.isascii() and c.isalnum()) or uuid.uuid4().hex
        amount = hashlib.sha256(str(Decimal(data["amount"]).normalize()).encode()).hexdigest()
        return f"horizon-{form_key[:64]}-{amount[:16]}"

    def handle(self, request: Any, data: dict[str, Any]) -> Any:
        project_id = common.target_project(request)
        try:
            client = api.client(request)
            order = client.send(client.requests.create_order(
                data["amount"], project_id=project_id,
                idempotency_key=self.idempotency_key(data)))
        except api.CreditAPIError as error:
            common.log_in_again(error)
            self.api_error(common.error_text(error))
            return False
        # The order's page on the project it was made for: its "Back" link returns there.
        url = reverse("horizon:project:cloud_credit:order", args=[order["id"]])
        return http.HttpResponseRedirect(common.with_project(request, url))


class AddVoucherForm(forms.SelfHandlingForm):
    project_id = django_forms.CharField(widget=django_forms.HiddenInput, required=False)
    code = django_forms.CharField(label=_("Voucher code"), max_length=64,
                                  help_text=_("The code printed on your voucher, for "
                                              "example WELCOME-2026."))

    def handle(self, request: Any, data: dict[str, Any]) -> Any:
        project_id = common.target_project(request)
        try:
            client = api.client(request)
            credit = client.send(client.requests.activate_voucher(data["code"],
                                                                  project_id=project_id))
        except api.CreditAPIError as error:
            common.log_in_again(error)
            self.api_error(common.voucher_refusal(error))
            return False
        messages.success(request, str(_("Voucher activated: %(amount)s of credit.")) % {
            "amount": common.money(credit.get("total"), credit.get("currency"))})
        return http.HttpResponseRedirect(common.index_url(request))


class VoidForm(forms.SelfHandlingForm):
    project_id = django_forms.CharField(widget=django_forms.HiddenInput, required=False)
    credit_id = django_forms.CharField(widget=django_forms.HiddenInput)
    # The API takes up to 1000 characters (docs/api.openapi.yaml, VoidBody).
    reason = django_forms.CharField(label=_("Reason"), max_length=1000,
                                    widget=django_forms.Textarea(attrs={"rows": 3}),
                                    help_text=_("Why the credit is voided (kept in its "
                                                "ledger), for example a charge-back."))

    def handle(self, request: Any, data: dict[str, Any]) -> Any:
        try:
            client = api.client(request)
            client.send(client.requests.void_credit(data["credit_id"], data["reason"]))
        except api.CreditAPIError as error:
            common.log_in_again(error)
            self.api_error(common.error_text(error))
            return False
        messages.success(request, _("The credit is voided."))
        return http.HttpResponseRedirect(common.index_url(request))
