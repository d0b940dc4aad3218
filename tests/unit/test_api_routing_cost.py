"""What the API's routing computes per request (docs/performance.md, figure 8).

Timings are for ``benchmarks/run.py``; these check that the work measured
there as avoidable stays avoided, and that the answers do not change.
"""

from __future__ import annotations

import inspect

from pecan import util as pecan_util

from ovh_credit_plugin.api import controllers


def test_pecan_reads_a_controllers_argument_spec_once() -> None:
    # Importing the controllers installs the cache (CloudKitty imports them too).
    assert hasattr(pecan_util._getargspec, "uncached")
    resource = controllers.CreditsController(runtime=None)  # type: ignore[arg-type]
    first = pecan_util.getargspec(resource.get_all)
    # A new bound method each attribute access, the same function: one answer.
    assert pecan_util.getargspec(resource.get_all) is first
    assert pecan_util.getargspec(controllers.CreditsController.get_all) is first
    # ... which is pecan's own.
    assert first == pecan_util._getargspec.uncached(resource.get_all)
    assert first.args == ["self"] and first.varargs == "args" and first.keywords == "kwargs"


def test_the_cache_gives_each_function_its_own_spec() -> None:
    def one(self: object, a: int, b: int = 2) -> None: ...

    def other(self: object, *rest: int) -> None: ...

    assert pecan_util.getargspec(one) == inspect.getfullargspec(one)[:4]
    assert pecan_util.getargspec(other) == inspect.getfullargspec(other)[:4]

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, x: int) -> None: ...

    assert pecan_util._getargspec(Unhashable()).args == ["self", "x"]
