"""The descriptions the plugin writes on the credits it grants, in the reader's language.

The ledger stores them in English, the source language, so that every tool
reading the database reads the same text; they are shown in the reader's
language where they are shown (the REST API by ``Accept-Language``, the CLI
by its locale). A description a voucher catalog sent is the catalog's own
text: it is shown as sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from ovh_credit_plugin import i18n
from ovh_credit_plugin.catalog.base import mask_code
from ovh_credit_plugin.contracts import CreditResult
from ovh_credit_plugin.i18n import _

if TYPE_CHECKING:
    from ovh_credit_plugin import models

#: A credit as hosts get it (the pydantic model) or as the command line prints it.
Shown = TypeVar("Shown", bound="models.Credit | CreditResult")

PURCHASED = i18n.deferred("Cloud credit (order %(order)s)")
VOUCHER = i18n.deferred("Voucher %(code)s")


def purchased(order_id: str) -> str:
    """The stored description of the credit a paid order grants."""
    return PURCHASED % {"order": order_id}


def voucher(code: str) -> str:
    """The stored description of a voucher's credit when the catalog sent none."""
    return VOUCHER % {"code": mask_code(code)}


def localized(credit: Shown, language: str | None = None) -> Shown:
    """``credit`` with its description in ``language`` (None: the process locale)
    when the plugin wrote it; unchanged otherwise."""
    if credit.kind == "purchased":
        template, values = PURCHASED, {"order": credit.source}
    else:
        template, values = VOUCHER, {"code": mask_code(credit.source)}
    if credit.description != template % values:
        return credit
    text = str((_(template) if language is None else i18n.translate(template, language))
               % values)
    if isinstance(credit, CreditResult):
        return credit._replace(description=text)
    return credit.model_copy(update={"description": text})
