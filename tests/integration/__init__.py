"""Tests against the real CloudKitty package (the ``cloudkitty`` extra)."""
