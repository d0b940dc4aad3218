"""Harness code the tests import: throwaway database servers, ledgers, the CLI in-process,
a loopback voucher catalog, the bank workload. Fixtures stay in tests/conftest.py."""
