"""Voucher catalogs: where codes are validated and redeemed.

Drivers are loaded by name from the ``ovh_credit_plugin.voucher_catalogs``
entry points (``[voucher_catalog] driver``).
"""
