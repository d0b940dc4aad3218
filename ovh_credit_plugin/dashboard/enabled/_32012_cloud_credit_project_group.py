# Project > Rating: the panel group cloudkitty-dashboard also declares (same slug,
# same name), so that the panel stands on its own when CloudKitty's is not enabled.
from django.utils.translation import gettext_lazy as _

PANEL_GROUP = "rating"
PANEL_GROUP_NAME = _("Rating")
PANEL_GROUP_DASHBOARD = "project"
