"""The "Credits & Vouchers" panel for the OpenStack dashboard (Horizon): docs/dashboard.md.

A Horizon plugin (the ``dashboard`` extra): Project > Rating > Credits & Vouchers,
enabled by copying the files of :mod:`ovh_credit_plugin.dashboard.enabled` into
Horizon's ``openstack_dashboard/local/enabled/``. It reads and writes through the
plugin's REST API only (:mod:`ovh_credit_plugin.dashboard.api`), with the user's
Keystone token, at the catalog's ``rating`` endpoint.
"""
