"""Prepaid cloud credit and vouchers for OpenStack billing hosts (CloudKitty, invoice hosts)."""
