"""A keystoneauth plugin for an API running with ``auth_strategy = noauth`` (development).

Such a server takes the caller from the headers keystonemiddleware would have
set: ``X-Project-Id``, ``X-User-Id``, ``X-Roles``. keystoneauth's own ``none``
plugin sends none of them, so a noauth server would see no project. Usage::

    openstack --os-auth-type ovh-credit-noauth --os-endpoint http://127.0.0.1:8890 \\
        --os-project-id PROJECT --os-roles member,reader \\
        --os-cloud-credit-api standalone rating credit list

Never for production: whoever reaches the server claims any project and role.
"""

from __future__ import annotations

from typing import Any

from keystoneauth1 import loading, plugin

from ovh_credit_plugin.i18n import _


class CreditNoAuthPlugin(plugin.FixedEndpointPlugin):
    """A fixed endpoint, no token, and the caller's identity in plain headers."""

    def __init__(self, endpoint: str | None = None, project_id: str | None = None,
                 user_id: str | None = None, roles: str | None = "reader,member"):
        super().__init__(endpoint)
        self.project_id = project_id
        self.user_id = user_id
        self.roles = roles

    def get_headers(self, session: Any, **kwargs: Any) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.project_id:
            headers["X-Project-Id"] = self.project_id
        if self.user_id:
            headers["X-User-Id"] = self.user_id
        if self.roles:
            headers["X-Roles"] = ",".join(r.strip() for r in self.roles.split(",") if r.strip())
        return headers

    def get_project_id(self, session: Any) -> str | None:
        return self.project_id

    def get_user_id(self, session: Any) -> str | None:
        return self.user_id


class CreditNoAuthLoader(loading.BaseLoader[CreditNoAuthPlugin]):
    """Entry point ``keystoneauth1.plugin``: ``ovh-credit-noauth``."""

    @property
    def plugin_class(self) -> type[CreditNoAuthPlugin]:
        return CreditNoAuthPlugin

    def get_options(self) -> list[loading.Opt]:
        return [
            *super().get_options(),
            loading.Opt("endpoint", required=True,
                        help=_("The API's root URL, e.g. http://127.0.0.1:8890")),
            loading.Opt("project-id", help=_("The project to act as (X-Project-Id)")),
            loading.Opt("user-id", help=_("The user to act as (X-User-Id)")),
            loading.Opt("roles", default="reader,member",
                        help=_("Comma-separated roles (X-Roles), e.g. admin or service")),
        ]
