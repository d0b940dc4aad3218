# Project > Rating > Credits & Vouchers.
PANEL = "cloud_credit"
PANEL_DASHBOARD = "project"
PANEL_GROUP = "rating"

ADD_PANEL = "ovh_credit_plugin.dashboard.content.credits.panel.CreditsPanel"
# The templates and the French catalog of the panel.
ADD_INSTALLED_APPS = ["ovh_credit_plugin.dashboard"]
