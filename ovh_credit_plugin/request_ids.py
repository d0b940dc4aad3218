"""The request id of the work in progress, for the calls it makes downstream.

OpenStack's convention: a service passes the id of the request it is serving
to the services it calls (``X-OpenStack-Request-ID``, keystoneauth's
``global_request_id``), so that one id finds the lines of every log. The
REST API's handlers set it here, for the length of a request, and the
``http`` voucher catalog driver sends it: no parameter through every layer
between them. A context variable set for the handler's length only, not
oslo.context's thread-local current context: that one is whichever
RequestContext was built last in the thread, and outlives its request in
the reused threads of a WSGI server's pool.

A leaf: nothing of the plugin is imported here.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator

#: The form of an OpenStack request id (oslo.context's ``generate_request_id``,
#: the form oslo.middleware accepts inbound): nothing else is ever passed on.
REQUEST_ID_PATTERN = r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_REQUEST_ID_RE = re.compile(REQUEST_ID_PATTERN)

_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ovh_credit_request_id", default=None
)


@contextlib.contextmanager
def acting_for(request_id: str | None) -> Iterator[None]:
    """Within the block (in this thread or task only), the work is ``request_id``'s."""
    token = _CURRENT.set(request_id)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> str | None:
    """The request id of the work in progress, if it is one (``req-<uuid>``); else None.

    Checked here, where it leaves for a header: whatever a host put in the
    WSGI environ, a value with a line break or any other character cannot
    reach the wire.
    """
    request_id = _CURRENT.get()
    if request_id is None or not _REQUEST_ID_RE.fullmatch(request_id):
        return None
    return request_id
