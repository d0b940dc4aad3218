"""The REST API: pecan controllers over the credit service, served inside CloudKitty or alone.

Nothing here writes the ledger itself; the controllers translate HTTP into
:class:`~ovh_credit_plugin.service.CreditService` calls, after oslo.policy
has authorized the caller.
"""
