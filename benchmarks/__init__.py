"""Benchmarks of ovh-credit-plugin.

Every figure is a ratio against a floor measured in the same run.

Run ``python benchmarks/run.py --quick`` (or without ``--quick`` for the full
sizes); see docs/performance.md.
"""
