"""The credit service: the only writer of the ledger.

One module per capability (orders, credits, vouchers and their throttle,
settlement and its transaction, expiry, audit), behind the
:class:`CreditService` facade, whose methods are the table of contents.
Hosts (CloudKitty, invoice processors), the CLI and the API only translate
their inputs into calls of :class:`CreditService`.

The names below are imported from their modules when first read (PEP 562):
importing one capability module does not import every other one, which a
command line run would pay for (issue 15, decision 3).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ovh_credit_plugin.allocation import Line
    from ovh_credit_plugin.models import SettlementResult
    from ovh_credit_plugin.service.audit import AuditReport
    from ovh_credit_plugin.service.charges import Charge, fingerprint, invoice_key
    from ovh_credit_plugin.service.expiry import ExpirySummary
    from ovh_credit_plugin.service.facade import CreditService, ledger_database, load_catalog
    from ovh_credit_plugin.service.inputs import now
    from ovh_credit_plugin.service.orders import add_months
    from ovh_credit_plugin.service.settings import Settings
    from ovh_credit_plugin.service.settlement import ChargeState
    from ovh_credit_plugin.service.settlement_txn import OnChange
    from ovh_credit_plugin.service.vouchers import VoucherPreview

_HOMES = {
    "Line": "ovh_credit_plugin.allocation",
    "SettlementResult": "ovh_credit_plugin.models",
    "AuditReport": "ovh_credit_plugin.service.audit",
    "Charge": "ovh_credit_plugin.service.charges",
    "fingerprint": "ovh_credit_plugin.service.charges",
    "invoice_key": "ovh_credit_plugin.service.charges",
    "ExpirySummary": "ovh_credit_plugin.service.expiry",
    "CreditService": "ovh_credit_plugin.service.facade",
    "ledger_database": "ovh_credit_plugin.service.facade",
    "load_catalog": "ovh_credit_plugin.service.facade",
    "now": "ovh_credit_plugin.service.inputs",
    "add_months": "ovh_credit_plugin.service.orders",
    "Settings": "ovh_credit_plugin.service.settings",
    "ChargeState": "ovh_credit_plugin.service.settlement",
    "OnChange": "ovh_credit_plugin.service.settlement_txn",
    "VoucherPreview": "ovh_credit_plugin.service.vouchers",
}

__all__ = [
    "AuditReport",
    "Charge",
    "ChargeState",
    "CreditService",
    "ExpirySummary",
    "Line",
    "OnChange",
    "Settings",
    "SettlementResult",
    "VoucherPreview",
    "add_months",
    "fingerprint",
    "invoice_key",
    "ledger_database",
    "load_catalog",
    "now",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
