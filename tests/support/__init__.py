"""Harness code for the tests: real servers on loopback ports (Keystone, WSGI apps)."""
