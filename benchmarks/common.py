"""Shared bits of the benchmark modules."""

from __future__ import annotations


class Unavailable(Exception):
    """A figure that cannot be measured here (a module or package is missing)."""
