"""Project > Rating > Credits & Vouchers."""

from __future__ import annotations

import horizon
from django.utils.translation import gettext_lazy as _


class CreditsPanel(horizon.Panel):
    name = _("Credits & Vouchers")
    slug = "cloud_credit"
    # Shown where the catalog has the rating service (CloudKitty, or ovh-credit-api
    # registered under that type), as cloudkitty-dashboard's panels are.
    permissions = ("openstack.services.rating",)
