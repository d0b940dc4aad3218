"""Argument specs remembered per function, for the libraries that ask on every request.

pecan (routing, ~ten times a request) and oslo.policy (every check of a rule)
inspect the same functions' signatures again and again; a function's signature
does not change, and both only read the answer, so the first one is kept
(docs/performance.md, figure 8).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def per_function(real: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``real`` (an argument-spec function), its answer remembered per function.

    A bound method's answer is its function's (``self`` included in both), so
    the new bound method each attribute read makes shares one answer; an
    unhashable callable object is asked every time. ``.uncached`` is ``real``.
    """
    @functools.lru_cache(maxsize=4096)
    def of_function(function: Any) -> Any:
        return real(function)

    def remembered(function: Any) -> Any:
        target = getattr(function, "__func__", function)
        try:
            return of_function(target)
        except TypeError:  # an unhashable callable object
            return real(function)

    remembered.uncached = real  # type: ignore[attr-defined]
    return remembered
