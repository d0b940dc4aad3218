"""The ``file`` voucher catalog: vouchers from a local JSON file.

The embedded default: ``{"vouchers": [Voucher, ...]}`` with the same Voucher
objects as the HTTP wire contract. Redemptions are the catalog's side of the
story, so they are recorded in their own table of the ledger database,
counted against ``max_redemptions`` and looked up by idempotency key.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pydantic
import sqlalchemy as sa
from oslo_config import cfg

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.ledger import schema
from ovh_credit_plugin.ledger.database import Database

LOG = logging.getLogger(__name__)


class FileVoucherCatalog(base.VoucherCatalog):
    def __init__(self, *, conf: cfg.ConfigOpts, database: Database, **_: Any) -> None:
        self._path = Path(conf.voucher_catalog.file_path)
        self._database = database
        self._vouchers: dict[str, models.Voucher] | None = None

    def _load(self) -> dict[str, models.Voucher]:
        if self._vouchers is None:
            try:
                document = json.loads(self._path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise base.CatalogUnavailable(
                    f"voucher file {str(self._path)!r} does not exist"
                ) from None
            except (OSError, ValueError) as error:
                raise base.CatalogProtocolError(
                    f"voucher file {str(self._path)!r} is not readable JSON: {error}"
                ) from None
            if not isinstance(document, dict) or not isinstance(document.get("vouchers"), list):
                raise base.CatalogProtocolError(
                    f'voucher file {str(self._path)!r} must hold {{"vouchers": [...]}}'
                )
            vouchers = {}
            for index, raw in enumerate(document["vouchers"]):
                try:
                    voucher = models.Voucher.model_validate(raw)
                    code = base.normalize_code(voucher.code)
                except pydantic.ValidationError as error:
                    raise base.CatalogProtocolError(
                        f"voucher #{index} of {str(self._path)!r} is invalid: "
                        f"{error.errors()[0]['msg']} at {error.errors()[0]['loc']}"
                    ) from None
                except exceptions.InvalidVoucherCode:
                    # The operator's file is broken, not the customer's code:
                    # the customer-facing message would blame every activation
                    # on them. The code stays out of the message (a secret).
                    raise base.CatalogProtocolError(
                        f"voucher #{index} of {str(self._path)!r} has an invalid code: "
                        f"codes are 4 to 64 letters, digits or dashes"
                    ) from None
                vouchers[code] = voucher
            self._vouchers = vouchers
        return self._vouchers

    def get(self, code: str) -> models.Voucher:
        voucher = self._load().get(code)
        if voucher is None:
            raise base.VoucherNotFound(f"unknown voucher {base.mask_code(code)}", status=404)
        used = self._database.read(lambda conn: _count(conn, code))
        return voucher.model_copy(update={"redemptions": voucher.redemptions + used})

    def redeem(
        self,
        code: str,
        *,
        project_id: str,
        idempotency_key: str,
        at: dt.datetime | None = None,
    ) -> models.Redemption:
        now = models.utc(at or dt.datetime.now(dt.timezone.utc))
        voucher = self._load().get(code)
        if voucher is None:
            raise base.VoucherNotFound(f"unknown voucher {base.mask_code(code)}", status=404)

        def work(conn: sa.Connection) -> models.Redemption:
            previous = conn.execute(
                sa.select(schema.catalog_redemptions.c.document).where(
                    schema.catalog_redemptions.c.idempotency_key == idempotency_key
                )
            ).scalar_one_or_none()
            if previous is not None:
                return models.Redemption.model_validate_json(previous)
            _check_redeemable(voucher, code, now, voucher.redemptions + _count(conn, code))
            redemption = models.Redemption(
                id=str(uuid.uuid4()),
                code=code,
                project_id=project_id,
                amount=voucher.amount,
                currency=voucher.currency,
                valid_from=voucher.valid_from,
                valid_until=voucher.valid_until,
                validity_days=voucher.validity_days,
                products=voucher.products,
                description=voucher.description,
                redeemed_at=now,
            )
            conn.execute(
                schema.catalog_redemptions.insert().values(
                    id=redemption.id,
                    code=code,
                    project_id=project_id,
                    idempotency_key=idempotency_key,
                    document=redemption.model_dump_json(),
                    redeemed_at=now,
                )
            )
            return redemption

        # Serializable: the count of redemptions checked above must still hold
        # when the insert commits, or two projects racing for the last
        # redemption would both get it (READ COMMITTED lets both count 2 of 3).
        return self._database.write(work, isolation_level="SERIALIZABLE")


def _count(conn: sa.Connection, code: str) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(schema.catalog_redemptions)
            .where(schema.catalog_redemptions.c.code == code)
        ).scalar_one()
    )


def _check_redeemable(
    voucher: models.Voucher, code: str, now: dt.datetime, redemptions: int
) -> None:
    masked = base.mask_code(code)
    if voucher.status == "revoked":
        raise base.VoucherUnavailable(f"voucher {masked} is revoked", status=410)
    if voucher.status == "expired" or (
        voucher.valid_until is not None and now >= voucher.valid_until
    ):
        raise base.VoucherUnavailable(f"voucher {masked} has expired", status=410)
    if voucher.status == "exhausted" or (
        voucher.max_redemptions is not None and redemptions >= voucher.max_redemptions
    ):
        raise base.VoucherAlreadyRedeemed(f"voucher {masked} is used up", status=409)
