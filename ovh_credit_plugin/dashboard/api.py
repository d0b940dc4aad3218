"""The plugin's REST API as the dashboard calls it: the user's token, the catalog's endpoint.

The session is keystoneauth's, with the token Horizon holds for the user; the
endpoint is the ``rating`` service of the catalog that came with that token, in
the user's region, at ``OPENSTACK_ENDPOINT_TYPE`` (``SECONDARY_ENDPOINT_TYPE`` as
fallback): Horizon's own ``url_for``, as its panels use. Unlike
cloudkitty-dashboard's client, nothing asks Keystone again on each page. The requests and
the reading of error answers are the ``openstack rating credit`` commands'
(:mod:`ovh_credit_plugin.osc.client`). Which server answers at that endpoint
(CloudKitty's API with the ``cloud_credit`` module, or ``ovh-credit-api``) is the
setting ``CLOUD_CREDIT_API`` (``cloudkitty``, the default, or ``standalone``).

Answers carry the user's language (``Accept-Language``), so the API's own error
texts come in it too.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from ovh_credit_plugin.dashboard import wrong_settings
from ovh_credit_plugin.osc.client import (
    CreditAPIError,
    CreditClient,
    Request,
    UnexpectedAnswer,
)

__all__ = ["CreditAPIError", "UnexpectedAnswer", "client", "credits", "forecast", "orders"]

LOG = logging.getLogger(__name__)

SERVICE_TYPE = "rating"
#: Seconds a request of the panel waits for the API (``CLOUD_CREDIT_API_TIMEOUT``):
#: without one, an API that accepts the connection and never answers would hold
#: the page, and the web server's worker, for ever.
DEFAULT_TIMEOUT = 30
#: The most ``CLOUD_CREDIT_API_TIMEOUT`` may be: no page waits an hour, and far larger
#: numbers overflow the socket's clock (every page an error).
MAX_TIMEOUT = 3600


def _timeout(setting: Any) -> float:
    """``CLOUD_CREDIT_API_TIMEOUT``, or the default where it is unset or wrong (logged).

    Horizon's settings are Python the operator writes; a ``"30"`` between quotes reached
    urllib3, which refused it on every page. Horizon logs its own wrong settings and
    goes on: so does the panel, with the default (a wait, not a term shown to anyone).
    """
    if setting is None:
        return DEFAULT_TIMEOUT
    if (isinstance(setting, (int, float)) and not isinstance(setting, bool)
            and 0 < setting <= MAX_TIMEOUT):  # nan compares false, and so is refused
        return setting
    wrong_settings.report(
        LOG, "CLOUD_CREDIT_API_TIMEOUT", setting,
        "Horizon's setting CLOUD_CREDIT_API_TIMEOUT = %s is wrong: it must be a number of "
        "seconds above 0 and at most %s (a Python int or float, no quotes); the panel "
        "waits %s s for the API until it is fixed.",
        wrong_settings.shown(setting), MAX_TIMEOUT, DEFAULT_TIMEOUT)
    return DEFAULT_TIMEOUT


class PageClient(CreditClient):
    """The client of one page: once a request got no answer (a timeout, a refused
    connection), the page's next requests fail the same way without waiting again, so a
    silent API holds the page, and the web server's worker, for one timeout only."""

    _no_answer: CreditAPIError | None = None

    def send(self, request: Request) -> dict[str, Any]:
        if self._no_answer is not None:
            raise self._no_answer
        try:
            return super().send(request)
        except UnexpectedAnswer:
            raise
        except CreditAPIError as error:
            if error.status is None:
                self._no_answer = error
            raise


def client(request: Any) -> CreditClient:
    """A client of the API for the user of ``request`` (a Horizon request)."""
    from django.conf import settings
    from django.utils import translation
    from django.utils.translation import gettext as _
    from keystoneauth1 import adapter, session, token_endpoint
    from openstack_dashboard.api import base

    # The catalog that came with the user's token (region, interface and their
    # fallbacks as for every Horizon panel): no request to Keystone per page.
    try:
        endpoint = base.url_for(request, SERVICE_TYPE)
    except Exception as error:  # Horizon's ServiceCatalogException
        raise CreditAPIError(_("no %(service)s endpoint in the catalog: %(error)s")
                             % {"service": SERVICE_TYPE, "error": error}) from error
    verify: Any = not getattr(settings, "OPENSTACK_SSL_NO_VERIFY", False)
    cacert = getattr(settings, "OPENSTACK_SSL_CACERT", None)
    if verify and cacert:
        verify = cacert
    timeout = _timeout(getattr(settings, "CLOUD_CREDIT_API_TIMEOUT", None))
    ks_adapter = adapter.Adapter(
        session.Session(auth=token_endpoint.Token(endpoint, request.user.token.id),
                        verify=verify, timeout=timeout),
        endpoint_override=endpoint,
        additional_headers={"Accept-Language": translation.get_language() or "en"})
    return PageClient(ks_adapter, getattr(settings, "CLOUD_CREDIT_API", None),
                      mode_setting="CLOUD_CREDIT_API")


def _all(api: CreditClient, request: Request, key: str) -> list[dict[str, Any]]:
    return list(api.pages(request, key))


def credits(api: CreditClient, *, project_id: str | None = None) -> list[dict[str, Any]]:
    """Every credit of the project, in consumption order."""
    return _all(api, api.requests.list_credits(project_id=project_id, limit=1000), "credits")


def orders(api: CreditClient, *, project_id: str | None = None) -> list[dict[str, Any]]:
    """Every purchase order of the project, oldest first."""
    return _all(api, api.requests.list_orders(project_id=project_id, limit=1000), "orders")


def forecast(api: CreditClient, *, project_id: str | None = None) -> dict[str, Any]:
    return api.send(api.requests.forecast(project_id=project_id))


def parse_time(text: str | None) -> dt.datetime | None:
    """An RFC 3339 UTC time of the API as an aware datetime (None stays None)."""
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
