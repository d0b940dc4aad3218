"""Harness code the tests import: throwaway database servers and Galera clusters, ledgers,
the CLI in-process, a loopback voucher catalog, the bank workload. Fixtures stay in the
conftest.py files."""
