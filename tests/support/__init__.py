"""Harness code the tests import: throwaway database servers, Galera clusters and a real
Keystone, ledgers, the CLI in-process, the REST API, a loopback voucher catalog, the bank
workload. Fixtures stay in the conftest.py files."""
