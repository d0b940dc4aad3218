"""The credit service: the only writer of the ledger.

One module per capability (orders, credits, vouchers and their throttle,
settlement and its transaction, expiry, audit), behind the
:class:`CreditService` facade, whose methods are the table of contents.
Hosts (CloudKitty, invoice processors), the CLI and the API only translate
their inputs into calls of :class:`CreditService`.
"""

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
