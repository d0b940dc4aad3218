"""Who is calling: the caller's project, user and roles, from a request.

Inside CloudKitty, its ContextHook has put an oslo.context RequestContext on
``pecan.request.context``; the standalone server builds one from the WSGI
environ, where keystonemiddleware (or, with ``noauth``, the client itself)
put ``X-Project-Id``, ``X-User-Id`` and ``X-Roles``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oslo_context import context as oslo_context

from ovh_credit_plugin.api import errors


@dataclass(frozen=True)
class Caller:
    project_id: str | None
    user_id: str | None
    roles: tuple[str, ...]
    request_id: str | None
    is_admin: bool
    # The oslo.context the policy checks read (scope, roles, project).
    context: oslo_context.RequestContext


def caller_of(request: Any) -> Caller:
    """The caller of a webob/pecan request (its ``context`` attribute first, if it has one)."""
    environ = request.environ
    context = getattr(request, "context", None)
    if not isinstance(context, oslo_context.RequestContext):
        context = oslo_context.RequestContext.from_environ(environ)
    request_id = environ.get(errors.REQUEST_ID_ENV) or context.request_id
    return Caller(
        project_id=context.project_id or None,
        user_id=context.user_id or None,
        roles=tuple(context.roles or ()),
        request_id=request_id,
        is_admin=bool(context.is_admin),
        context=context,
    )
