"""Edge cases of the voucher catalog drivers that need no network and no database.

The ``file`` catalog on an in-memory redemption ledger (the ``RedemptionLedger``
protocol the ledger database implements), and the ``http`` driver's
configuration checks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.catalog.file import FileVoucherCatalog
from ovh_credit_plugin.conf import register_opts
from tests.support.catalog_docs import make_catalog

SINGLE = "SINGLE-USE-1"
OTHER = "OTHER-CODE-2"


class MemoryRedemptions:
    """``base.RedemptionLedger`` in a dict, with the ledger database's semantics."""

    def __init__(self) -> None:
        self.by_key: dict[str, models.Redemption] = {}
        self.counts: dict[str, int] = {}

    def count(self, code: str) -> int:
        return self.counts.get(code, 0)

    def redeem(
        self,
        redemption: models.Redemption,
        *,
        idempotency_key: str,
        limit: int | None,
        check: Callable[[], None],
    ) -> models.Redemption | None:
        previous = self.by_key.get(idempotency_key)
        if previous is not None:
            return previous
        check()
        used = self.counts.get(redemption.code, 0)
        if limit is not None and used >= limit:
            return None
        self.counts[redemption.code] = used + 1
        self.by_key[idempotency_key] = redemption
        return redemption


def voucher(code: str, **changes: Any) -> dict[str, Any]:
    document = {"code": code, "amount": "20.00", "currency": "EUR", "status": "active",
                "max_redemptions": 1, "products": [], "description": "trial"}
    document.update(changes)
    return document


def write_file(path: Path, *vouchers: dict[str, Any]) -> None:
    """Replace the file the safe way the docs ask for: a complete new one, renamed over it."""
    new = path.with_suffix(".new")
    new.write_text(json.dumps({"vouchers": list(vouchers)}))
    os.replace(new, path)


def file_catalog(path: Path, redemptions: MemoryRedemptions) -> FileVoucherCatalog:
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(args=[])
    conf.set_override("file_path", str(path), group="voucher_catalog")
    return FileVoucherCatalog(conf=conf, redemptions=redemptions)


# -- the file catalog: idempotency "whatever happened since" -------------------------------


def test_a_replay_after_the_voucher_left_the_file_returns_the_same_redemption(
    tmp_path: Path,
) -> None:
    # The catalog recorded the redemption, the ledger did not grant it (the
    # process died); the operator then takes the code out of the file. The
    # replay of the same key must get the same redemption back (the contract:
    # "whatever happened since"), or the customer's single-use voucher is
    # burnt with no credit.
    path = tmp_path / "vouchers.json"
    write_file(path, voucher(SINGLE), voucher(OTHER))
    redemptions = MemoryRedemptions()
    catalog = file_catalog(path, redemptions)
    key = base.idempotency_key("p1", SINGLE)
    first = catalog.redeem(SINGLE, project_id="p1", idempotency_key=key)

    write_file(path, voucher(OTHER))
    replayed = catalog.redeem(SINGLE, project_id="p1", idempotency_key=key)
    assert replayed == first
    assert redemptions.count(SINGLE) == 1

    # A new key for the removed code is still unknown, and nothing is written.
    with pytest.raises(base.VoucherNotFound):
        catalog.redeem(SINGLE, project_id="p2",
                       idempotency_key=base.idempotency_key("p2", SINGLE))
    with pytest.raises(base.VoucherNotFound):
        catalog.get(SINGLE)
    assert redemptions.count(SINGLE) == 1
    assert len(redemptions.by_key) == 1


# -- the http driver's configuration ---------------------------------------------------------


def test_an_endpoint_with_credentials_never_shows_them_even_when_malformed() -> None:
    # "Must not carry credentials": an endpoint that carries some and is
    # also malformed (no host) must not quote them back in the error, which
    # the CLI prints and hosts log.
    with pytest.raises(exceptions.ConfigError) as caught:
        make_catalog(endpoint="https://user:hunter2-secret@")
    assert "hunter2-secret" not in str(caught.value)
    assert "credentials" in str(caught.value)


@pytest.mark.parametrize("token", ["tok\u20acn-secret-1", "secret\u2019s-token"])
def test_a_token_http_cannot_carry_is_a_configuration_error(token: str) -> None:
    # A header value is ASCII on the wire: a token pasted with a typographic
    # character made every call fail with a bare UnicodeEncodeError (an
    # internal error for the REST API) naming the character and its position.
    with pytest.raises(exceptions.ConfigError) as caught:
        make_catalog(auth_token=token)
    assert "auth_token" in str(caught.value)
    assert token not in str(caught.value)
