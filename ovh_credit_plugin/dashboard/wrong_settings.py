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


def report(log: logging.Logger, setting: str, value: Any, message: str, *args: Any) -> None:
    """``log.error(message, *args)``, unless this process logged it for ``setting`` = ``value``."""
    key = (log.name, setting, repr(value))
    with _lock:
        if key in _reported:
            return
        _reported.add(key)
    log.error(message, *args)


def forget() -> None:
    """Log every wrong setting again (a test's fresh process)."""
    with _lock:
        _reported.clear()
