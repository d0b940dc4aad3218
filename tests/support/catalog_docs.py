"""Voucher catalog documents and an HTTP catalog driver pointed at a mocked endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import responses
from oslo_config import cfg

from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.http import HttpVoucherCatalog
from ovh_credit_plugin.conf import register_opts

ENDPOINT = "https://catalog.test/api"
CODE = "WELCOME-2026"
TOKEN = "s3cr3t-token-value"
PROJECT = "p1"
KEY = base.idempotency_key(PROJECT, CODE)
VOUCHER_URL = f"{ENDPOINT}/v1/vouchers/{CODE}"
REDEEM_URL = f"{VOUCHER_URL}/redemptions"
OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "voucher-catalog.openapi.yaml"


def voucher_doc(**changes: Any) -> dict[str, Any]:
    document = {
        "code": CODE, "amount": "50.00", "currency": "EUR", "status": "active",
        "valid_from": None, "valid_until": None, "validity_days": 90, "products": [],
        "max_redemptions": None, "redemptions": 0, "description": "Welcome voucher",
    }
    document.update(changes)
    return document


def redemption_doc(**changes: Any) -> dict[str, Any]:
    document = {
        "id": "r-1", "code": CODE, "project_id": PROJECT, "amount": "50.00",
        "currency": "EUR", "valid_from": None, "valid_until": None, "validity_days": 90,
        "products": [], "description": "Welcome voucher",
        "redeemed_at": "2026-01-31T10:00:00Z",
    }
    document.update(changes)
    return document


def make_conf(**options: Any) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args=[])
    options.setdefault("endpoint", ENDPOINT)
    options.setdefault("auth_token", TOKEN)
    options.setdefault("retries", 3)
    for name, value in options.items():
        conf.set_override(name, value, group="voucher_catalog")
    return conf


def make_catalog(**options: Any) -> HttpVoucherCatalog:
    return HttpVoucherCatalog(conf=make_conf(**options), backoff_factor=0.0)


MALFORMED_VOUCHERS = {
    "not json": b"<html>502 Bad Gateway</html>",
    "json array": b"[]",
    "json string": b'"ok"',
    "truncated json": json.dumps(voucher_doc()).encode()[:40],
    "empty": b"",
    "negative amount": voucher_doc(amount="-5.00"),
    "zero amount": voucher_doc(amount="0.00"),
    "amount as number": voucher_doc(amount=50.0),
    "amount as integer": voucher_doc(amount=50),
    "amount with exponent": voucher_doc(amount="5E1"),
    "amount with spaces": voucher_doc(amount=" 50.00"),
    "amount NaN": voucher_doc(amount="NaN"),
    "too many decimals for EUR": voucher_doc(amount="50.001"),
    "decimals for JPY": voucher_doc(amount="100.5", currency="JPY"),
    "unknown currency": voucher_doc(currency="EUX"),
    "currency without minor unit": voucher_doc(currency="XAU"),
    "lower-case currency": voucher_doc(currency="eur"),
    "another code": voucher_doc(code="OTHER-CODE"),
    "malformed code": voucher_doc(code="welcome 2026"),
    "unknown status": voucher_doc(status="on-sale"),
    "naive datetime": voucher_doc(valid_until="2027-01-01T00:00:00"),
    "not a datetime": voucher_doc(valid_until="tomorrow"),
    # pydantic reads digits as Unix time: "20270131" would be 1970-08-23.
    "basic ISO date read as Unix time": voucher_doc(valid_until="20270131"),
    "Unix time as text": voucher_doc(valid_from="1769853600"),
    "days as string": voucher_doc(validity_days="90"),
    "zero days": voucher_doc(validity_days=0),
    "negative redemptions": voucher_doc(redemptions=-1),
    "products not a list": voucher_doc(products="gpu"),
    "null description": voucher_doc(description=None),
}


def calls(mock: responses.RequestsMock, method: str | None = None) -> list[Any]:
    return [c for c in mock.calls if method is None or c.request.method == method]
