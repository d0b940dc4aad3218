"""Pausing Python's cyclic garbage collector while a settlement is built.

Settling a batch allocates tens of thousands of small objects (charge lines,
shares, ledger entries, result models) that all live until the transaction
commits and form no reference cycles. The cyclic collector cannot free any
of them, yet every 700 allocations it scans them, and every ~70,000 it scans
the whole heap of the host process: a fifth of a month-end batch's CPU was
spent there. Mercurial pauses the collector around such work for the same
reason (``util.nogc``).

The pause covers one settlement call, never code of the caller: reference
counting still frees everything that is not in a cycle, so memory stays
bounded by the batch. The collector is process-wide; nested and concurrent
pauses (host threads) are counted, and only the last one to end switches it
back on, and only if it was on when the first one began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pauses:
    """Counts the pauses in progress; the collector is off while any runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    def begin(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1

    def end(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()


_PAUSES = _Pauses()


@contextmanager
def paused() -> Iterator[None]:
    """Run the body with the cyclic garbage collector off, then restore it."""
    _PAUSES.begin()
    try:
        yield
    finally:
        _PAUSES.end()
