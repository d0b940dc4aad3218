"""What the panel's tables, forms and views share: who may do what, how money reads."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext_lazy as _

from ovh_credit_plugin import exceptions, i18n
from ovh_credit_plugin.dashboard import api, wrong_settings
from ovh_credit_plugin.money import held_places

LOG = logging.getLogger(__name__)
# Which forms and actions the page offers. The API's policy decides (a reader's
# order is refused there whatever the page shows); the page only leaves out
# what the API's default rules would refuse to the user's roles.
BUYER_ROLES = frozenset({"member", "admin"})
ADMIN_ROLES = frozenset({"admin"})

KINDS = {"voucher": _("Voucher"), "purchased": _("Purchased credit")}
STATUSES = {"active": _("Active"), "exhausted": _("Used up"), "expired": _("Expired"),
            "voided": _("Voided"), "pending": _("Pending payment"), "paid": _("Paid"),
            "cancelled": _("Cancelled")}
ENDED = frozenset({"expired", "voided"})


#: The plugin's ``[cloud_credit] purchased_credit_validity_months`` default: the panel
#: does not read the plugin's configuration, Horizon's settings tell it otherwise.
PURCHASED_CREDIT_VALIDITY_MONTHS = 13
#: The bounds of the plugin's option (ovh_credit_plugin/conf.py): a Horizon setting
#: outside them cannot be the plugin's.
_VALIDITY_MONTHS_BOUNDS = (1, 120)
_VALIDITY_MONTHS_SETTING = "CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS"


def _validity_months() -> int | None:
    """Horizon's ``CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS``; None where it is not a
    whole number of months the plugin could have (logged as an error).

    Horizon's settings are Python, written by the operator. Horizon logs a wrong value
    of its own and goes on without it (``HORIZON_CONFIG``'s extra tabs and steps,
    ``DEFAULT_THEME``), rather than stopping the dashboard: so does the panel. Strict
    on the type: ``"24"`` or ``24.5`` is not guessed at, and ``True`` (1 to Python) is
    not a month count anyone means.
    """
    from django.conf import settings

    months = getattr(settings, _VALIDITY_MONTHS_SETTING, PURCHASED_CREDIT_VALIDITY_MONTHS)
    low, high = _VALIDITY_MONTHS_BOUNDS
    if isinstance(months, int) and not isinstance(months, bool) and low <= months <= high:
        return months
    wrong_settings.report(
        LOG, _VALIDITY_MONTHS_SETTING, months,
        "Horizon's setting %s = %s is wrong: it must be a whole number of months from %d "
        "to %d (a Python int, no quotes), the plugin's [cloud_credit] "
        "purchased_credit_validity_months. The Add credit form does not say how long "
        "purchased credit is valid until it is fixed.",
        _VALIDITY_MONTHS_SETTING, wrong_settings.shown(months), low, high)
    return None


def purchase_terms() -> str:
    """What the add-credit form says of purchased credit's validity and of vouchers.

    The months are Horizon's ``CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS``, set
    to the plugin's ``purchased_credit_validity_months`` where the operator changed it.
    A wrong setting leaves the months out: a count the operator did not mean (13 for a
    ``"24"`` between quotes) would be a false term of sale.
    """
    months = _validity_months()
    if months is None:
        return str(_("Vouchers are used before purchased credit."))
    if months == 1:  # English's only singular; French's « mois » does not change
        return str(_("Purchased credit is valid 1 month. Vouchers are used before "
                     "purchased credit."))
    return str(_("Purchased credit is valid %(months)s months. Vouchers are used before "
                 "purchased credit.")) % {"months": months}


def roles(request: Any) -> set[str]:
    return {str(role.get("name", "")).lower() for role in getattr(request.user, "roles", [])}


def may_buy(request: Any) -> bool:
    return bool(roles(request) & BUYER_ROLES)


def is_admin(request: Any) -> bool:
    return bool(roles(request) & ADMIN_ROLES)


def target_project(request: Any) -> str | None:
    """The project an admin chose (``?project_id=``); None: the token's project."""
    project_id = (request.GET.get("project_id") or request.POST.get("project_id") or "").strip()
    if project_id and is_admin(request) and project_id != request.user.project_id:
        return project_id
    return None


def with_project(request: Any, url: str) -> str:
    """``url`` on the project the admin is looking at (``?project_id=``), if another."""
    project_id = target_project(request)
    return f"{url}?{urlencode({'project_id': project_id})}" if project_id else url


def index_url(request: Any) -> str:
    """The panel's page, on the project the admin is looking at."""
    return with_project(request, reverse("horizon:project:cloud_credit:index"))


def money(amount: str | None, currency: str | None) -> str:
    """``"1234.50"``, ``"EUR"`` as the user's language writes it: 1,234.50 EUR or 1 234,50 EUR."""
    if amount is None:
        return "-"
    try:
        value = Decimal(amount)
    except InvalidOperation:
        return f"{amount} {currency or ''}".strip()
    exponent = value.as_tuple().exponent
    places = max(-exponent, 0) if isinstance(exponent, int) else 0
    text = str(formats.number_format(value, decimal_pos=places, use_l10n=True,
                                     force_grouping=True))
    # A no-break space: "15.00 EUR" never wraps between the number and its currency.
    return f"{text}\u00a0{currency}" if currency else text


def estimate(amount: str | None, currency: str | None) -> str | None:
    """A forecast's amount to the currency's units (half to even), as a customer reads
    an estimate: the API's figures are exact, with the burn rate's sub-cent digits
    (``65.000005`` EUR is ``65.00`` EUR). A currency ISO 4217 withdrew, which a ledger
    may still hold, has its last places; what is not a number, or in no currency, is
    left as given."""
    try:
        value = Decimal(amount) if amount is not None else None
        places = held_places(currency or "")
    except (InvalidOperation, exceptions.InvalidCurrency):
        return amount
    if value is None or not value.is_finite():
        return amount
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def day(value: str | dt.datetime | None) -> str:
    """A date in the user's language and time zone (1 February 2027, 1 février 2027)."""
    when = api.parse_time(value) if isinstance(value, str) else value
    if when is None:
        return ""
    return str(formats.date_format(timezone.localtime(when), "DATE_FORMAT", use_l10n=True))


def moment(value: str | dt.datetime | None) -> str:
    when = api.parse_time(value) if isinstance(value, str) else value
    if when is None:
        return ""
    return str(formats.date_format(timezone.localtime(when), "DATETIME_FORMAT",
                                   use_l10n=True))


REFUSALS = {
    "cloud_credit.voucher_unknown": _("This voucher code is unknown. Check the code and "
                                      "try again."),
    "cloud_credit.voucher_redeemed": _("This voucher has already been used."),
    "cloud_credit.voucher_expired": _("This voucher cannot be used: it has expired, was "
                                      "withdrawn or is not valid yet."),
    "cloud_credit.currency_mismatch": _("This voucher is in another currency than your "
                                        "project's credit."),
    "cloud_credit.catalog_unavailable": _("Vouchers cannot be checked right now: try again "
                                          "in a few minutes."),
}


def log_in_again(error: api.CreditAPIError) -> None:
    """A 401 of the API (the user's token expired or was revoked): Horizon's
    NotAuthenticated, which its middleware answers with the login page (a modal's
    request: a 401 that Horizon's scripts follow there), as for any page once the
    token has expired. Any other error: nothing."""
    if error.status == 401:
        from horizon import exceptions

        raise exceptions.NotAuthenticated() from error


# What a proxy in front of the API answers when the API is down or too slow.
_GATEWAY_STATUSES = frozenset({502, 503, 504})


def error_text(error: api.CreditAPIError) -> str:
    """The words of an API error for the user: the server's (asked in the user's
    language), else the client's word for the HTTP status, in the user's language;
    no answer at all (keystoneauth's English, the server's address), or a proxy's
    page: in plain words."""
    if isinstance(error, api.UnexpectedAnswer) and error.status in _GATEWAY_STATUSES:
        # A proxy's error page: its status and words are the operator's to read, in
        # the log.
        LOG.warning("the credit API is unavailable: %s", error)
        return str(_("The credit service cannot be reached. Try again in a few minutes."))
    if isinstance(error, api.UnexpectedAnswer):
        # Nothing the customer can do: the operator's setting (CLOUD_CREDIT_API) or
        # the endpoint is wrong, which the client's words say, in the log.
        LOG.warning("the credit API's answer cannot be read: %s", error)
        return str(_("The credit service gave an answer that cannot be read. Try again "
                     "later, or contact support if it persists."))
    reason = getattr(error, "reason", None)
    if reason:
        return i18n.translate(reason, translation.get_language() or i18n.SOURCE_LANGUAGE)
    if error.status is None:
        from keystoneauth1 import exceptions as ks_exceptions

        cause = error.__cause__
        if isinstance(cause, ks_exceptions.ConnectTimeout):
            return str(_("The credit service did not answer in time. Try again in a few "
                         "minutes."))
        if isinstance(cause, ks_exceptions.ClientException):
            return str(_("The credit service cannot be reached. Try again in a few "
                         "minutes."))
    return error.text


def handle(request: Any, message: str, error: api.CreditAPIError, *,
           redirect: str | None = None) -> None:
    """Horizon's ``exceptions.handle`` for an error of the API: ``message`` shown.

    Horizon adds the exception's text as the message's "Details": the API's own
    error keeps it (its request id is what support asks for); otherwise it is the
    client's words for an operator (a setting, keystoneauth's English, the API's
    address, a proxy's page), which :func:`error_text` has put in plain words.
    """
    from horizon import exceptions

    details = None if error.code else ""
    exceptions.handle(request, message, redirect=redirect, details=details)


def voucher_refusal(error: api.CreditAPIError, *, now: dt.datetime | None = None) -> str:
    """The API's refusal of a voucher code, in plain words."""
    if error.code == "cloud_credit.voucher_throttled":
        if error.retry_after is not None:
            when = (now or timezone.now()) + dt.timedelta(seconds=error.retry_after)
            # No full stop after the time: English times end with "a.m.".
            return str(_("Too many wrong voucher codes were tried on this project: you "
                         "can try again after %(time)s")) % {"time": moment(when)}
        return str(_("Too many wrong voucher codes were tried on this project. "
                     "Try again later."))
    if error.code in REFUSALS:
        return str(REFUSALS[error.code])
    return error_text(error)
