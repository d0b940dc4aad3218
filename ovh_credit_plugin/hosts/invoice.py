"""The generic invoice processor, for invoice-based billing hosts.

Registered as ``cloud_credit`` in the ``ovh_credit_plugin.invoice_processors``
entry-point namespace. A host loads it with stevedore::

    from stevedore import driver
    processor = driver.DriverManager(
        "ovh_credit_plugin.invoice_processors", "cloud_credit",
        invoke_on_load=True, invoke_kwds={"conf": conf},
    ).driver
    settlement = processor.process(invoice_dict)

``ovh-credit settle`` loads it exactly so.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pydantic
from oslo_config import cfg

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.conf import register_opts
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.service import CreditService

NAMESPACE = "ovh_credit_plugin.invoice_processors"


def parse_invoice(document: Any, *, where: str | None = None) -> models.Invoice:
    """Validate one invoice object of the contract; one clear error otherwise.

    ``where`` names the invoice in the error (translated: "invoice #3");
    by default "the invoice".
    """
    if isinstance(document, models.Invoice):
        return document
    if where is None:
        where = _("the invoice")
    if not isinstance(document, Mapping):
        raise exceptions.InvalidInput(_("%(where)s: expected an invoice object")
                                      % {"where": where})
    try:
        return models.Invoice.model_validate(dict(document))
    except exceptions.InvalidInput as error:
        raise exceptions.InvalidInput(_("%(where)s: %(error)s")
                                      % {"where": where, "error": error}) from None
    except pydantic.ValidationError as error:
        raise exceptions.InvalidInput(_("%(where)s: %(error)s")
                                      % {"where": where, "error": describe(error)}) from None


def describe(error: pydantic.ValidationError) -> str:
    """The first problem of a validation error, in one line, in the reader's language:
    ``lines.0.amount: ...`` for a field's, the problem alone for a rule across fields."""
    return models.first_error(error).described()


class InvoiceProcessor:
    """Applies prepaid credit to invoices before any other payment method."""

    def __init__(
        self, conf: cfg.ConfigOpts, *, service: CreditService | None = None, **_: Any
    ) -> None:
        register_opts(conf)
        self._conf = conf
        self._service = service
        self._service_lock = threading.Lock()

    @property
    def service(self) -> CreditService:
        # Built on first use: loading the plugin does no I/O. Once: a host's
        # threads bringing their first invoices at once would each build one
        # (an engine, a pool, a transport), and leave all but one undisposed.
        if self._service is None:
            with self._service_lock:
                if self._service is None:
                    self._service = CreditService.from_conf(self._conf)
        return self._service

    def process(
        self, invoice: Mapping[str, Any] | models.Invoice, *, at: dt.datetime | None = None
    ) -> dict[str, Any]:
        """Settle one invoice; returns the settlement as JSON-ready data.

        A malformed invoice raises :class:`~ovh_credit_plugin.exceptions.InvalidInput`,
        one settled before with other content
        :class:`~ovh_credit_plugin.exceptions.SettlementConflict`.
        """
        return self.service.settle_invoice_json(parse_invoice(invoice), at=at)

    def process_many(
        self,
        invoices: Iterable[Mapping[str, Any] | models.Invoice | models.InvoiceRefusal],
        *,
        batch_size: int = 1000,
        at: dt.datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Settle invoices in batches (one transaction each), one result per invoice in
        input order; one bad invoice never stops the others.

        A result is a settlement's JSON, or, for an invoice that was refused
        (malformed, or settled before with other content), a refusal's
        ``{"invoice", "project_id", "error"}`` (:func:`is_refusal`); nothing
        of a refused invoice is written. A
        :class:`~ovh_credit_plugin.models.InvoiceRefusal` given in
        ``invoices`` (one the host could not read) passes through in its place.
        """
        def parsed() -> Iterator[models.Invoice | models.InvoiceRefusal]:
            for number, document in enumerate(invoices, 1):
                if isinstance(document, models.InvoiceRefusal):
                    yield document
                    continue
                try:
                    yield parse_invoice(
                        document, where=_("invoice #%(number)d") % {"number": number})
                except exceptions.InvalidInput as error:
                    yield models.InvoiceRefusal.of_document(document, error)

        yield from self.service.settle_invoices_json(parsed(), batch_size=batch_size, at=at)


def is_refusal(result: Mapping[str, Any]) -> bool:
    """True for a refused invoice's result of :meth:`InvoiceProcessor.process_many`."""
    return "error" in result
