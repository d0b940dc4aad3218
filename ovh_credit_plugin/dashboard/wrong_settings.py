"""A wrong Horizon setting of the panel is logged once per process, not once per page.

The panel reads its settings on every page and form it renders, and goes on with a
default where one is wrong (as Horizon does for its own). Logging the error each
time buried the web server's log under one identical line per page view; once per
process and per wrong value says it as often as an operator needs: each worker
that starts, and again for a different wrong value (the settings edited, the
workers not yet restarted).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

_lock = threading.Lock()
_reported: set[tuple[str, str, str]] = set()


#: The most of a wrong value a log line shows.
SHOWN_LENGTH = 200


def shown(value: Any) -> str:
    """``repr(value)`` for the log, at most :data:`SHOWN_LENGTH` characters.

    Never raises: a setting is the operator's Python, and a value whose repr fails
    (an int of more than 4300 digits, a class of their own) must not stop the page
    the panel would otherwise show with its default.
    """
    try:
        text = repr(value)
    except Exception:  # any repr of the operator's own may fail, not only int's
        return f"<{type(value).__name__} that cannot be written out>"
    if len(text) > SHOWN_LENGTH:
        return f"{text[:SHOWN_LENGTH - 3]}..."
    return text


def report(log: logging.Logger, setting: str, value: Any, message: str, *args: Any) -> None:
    """``log.error(message, *args)``, unless this process logged it for ``setting`` = ``value``.

    ``args`` give the value as :func:`shown` writes it.
    """
    key = (log.name, setting, shown(value))
    with _lock:
        if key in _reported:
            return
        _reported.add(key)
    log.error(message, *args)


def forget() -> None:
    """Log every wrong setting again (a test's fresh process)."""
    with _lock:
        _reported.clear()
