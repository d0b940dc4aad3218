"""``lazy.module``: a module imported on its first attribute read, then the very module."""

from __future__ import annotations

import sys

import pytest

from ovh_credit_plugin import lazy


def test_the_module_is_imported_when_first_read_and_patches_are_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    deferred = lazy.module("colorsys")
    assert "colorsys" not in sys.modules
    assert deferred.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    real = sys.modules["colorsys"]
    # Read from the module each time: a test's (or a host's) patch applies.
    monkeypatch.setattr(real, "rgb_to_hsv", lambda *rgb: "patched")
    assert deferred.rgb_to_hsv(1.0, 0.0, 0.0) == "patched"


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        lazy.module("colorsys").no_such_function  # noqa: B018
