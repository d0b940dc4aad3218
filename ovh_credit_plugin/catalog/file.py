"""The ``file`` voucher catalog: vouchers from a local JSON file.

The embedded default: ``{"vouchers": [Voucher, ...]}`` with the same Voucher
objects as the HTTP wire contract. Redemptions are the catalog's side of the
story, so they are recorded in their own table of the ledger database,
counted against ``max_redemptions`` and looked up by idempotency key, through
the ``redemptions`` ledger the caller gives (``base.RedemptionLedger``): the
SQL lives in ``ovh_credit_plugin.ledger.catalog_redemptions``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pydantic
from oslo_config import cfg

from ovh_credit_plugin import contracts, exceptions, models
from ovh_credit_plugin.catalog import base
from ovh_credit_plugin.i18n import _

LOG = logging.getLogger(__name__)


# What tells one version of the voucher file from another without reading
# it: a rename (the safe way to replace it) changes the inode, an edit in
# place the size or the times. ctime too: tools that copy a file's mtime
# (cp -p, rsync -t) can give an edited file its old one.
_Signature = tuple[int, int, int, int, int]


class FileVoucherCatalog(base.VoucherCatalog):
    """Vouchers from ``[voucher_catalog] file_path``, re-read when the file changes.

    A running host must see an operator's edit (a leaked code revoked) on
    its next call: each call costs one ``stat``; the file is parsed again
    only when that says it changed. A file that became unusable is an error
    on every call until it is fixed, never the previous version served
    silently.
    """

    def __init__(
        self,
        *,
        conf: cfg.ConfigOpts,
        redemptions: base.RedemptionLedger | None = None,
        **_: Any,  # database=..., which older callers pass: the redemptions are built on it
    ) -> None:
        if redemptions is None:
            raise TypeError("the file voucher catalog needs its redemptions= ledger")
        self._path = Path(conf.voucher_catalog.file_path)
        self._redemptions = redemptions
        # One attribute, replaced whole: threads sharing the driver read
        # either the old pair or the new one, never a mix.
        self._cache: tuple[_Signature, dict[str, models.Voucher]] | None = None

    def _load(self) -> dict[str, models.Voucher]:
        signature = self._signature()
        cache = self._cache
        if cache is not None and cache[0] == signature:
            return cache[1]
        # Stat before reading: a change made while reading leaves a newer
        # signature on disk, so the next call reads the file again.
        vouchers = _read(self._path)
        self._cache = (signature, vouchers)
        return vouchers

    def _signature(self) -> _Signature:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            raise _missing(self._path) from None
        except OSError as error:
            raise base.CatalogProtocolError(
                _("voucher file %(path)r is not readable: %(error)s")
                % {"path": str(self._path), "error": error}
            ) from None
        return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    def get(self, code: str) -> models.Voucher:
        voucher = self._load().get(code)
        if voucher is None:
            raise base.VoucherNotFound(
                _("unknown voucher %(code)s") % {"code": base.mask_code(code)}, status=404)
        used = self._redemptions.count(code)
        return voucher.model_copy(update={"redemptions": voucher.redemptions + used})

    def redeem(
        self,
        code: str,
        *,
        project_id: str,
        idempotency_key: str,
        at: dt.datetime | None = None,
    ) -> models.Redemption:
        now = contracts.utc(at or dt.datetime.now(dt.timezone.utc))
        voucher = self._load().get(code)
        if voucher is None:
            # Gone from the file (or never in it). A redemption recorded under
            # this key before the operator removed the code is still returned:
            # the same key gets the same redemption, whatever happened since,
            # or a replay after a crash would burn the voucher for no credit.
            return self._replayed_only(code, project_id=project_id,
                                       idempotency_key=idempotency_key)

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
        # What the file's own count leaves to redeem here; the ledger decides
        # it with a conditional update of the code's counter, which every
        # Galera node certifies (a count of rows before an insert is not).
        limit = (
            None if voucher.max_redemptions is None
            else voucher.max_redemptions - voucher.redemptions
        )
        recorded = self._redemptions.redeem(
            redemption,
            idempotency_key=idempotency_key,
            limit=limit,
            # Checked once the key is known to be new: a redemption recorded
            # before the voucher was revoked is still returned on a retry.
            check=lambda: base.check_usable(voucher, code, now),
        )
        if recorded is None:
            raise base.VoucherAlreadyRedeemed(
                _("voucher %(code)s is used up") % {"code": base.mask_code(code)}, status=409
            )
        return recorded

    def _replayed_only(
        self, code: str, *, project_id: str, idempotency_key: str
    ) -> models.Redemption:
        """The redemption recorded under ``idempotency_key`` for a code the file lacks.

        Nothing is ever recorded here: the check refuses a new key as unknown
        (the placeholder is never written).
        """
        unknown = base.VoucherNotFound(
            _("unknown voucher %(code)s") % {"code": base.mask_code(code)}, status=404)

        def refuse() -> None:
            raise unknown

        placeholder = models.Redemption.model_construct(code=code, project_id=project_id)
        recorded = self._redemptions.redeem(
            placeholder, idempotency_key=idempotency_key, limit=0, check=refuse)
        if recorded is None:  # pragma: no cover - the check refuses first
            raise unknown
        return recorded


def _missing(path: Path) -> base.CatalogUnavailable:
    return base.CatalogUnavailable(_("voucher file %(path)r does not exist")
                                   % {"path": str(path)})


def _read(path: Path) -> dict[str, models.Voucher]:
    """The vouchers of the file by normalized code; CatalogProtocolError naming what is wrong."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:  # removed since the stat
        raise _missing(path) from None
    except (OSError, ValueError) as error:
        raise base.CatalogProtocolError(
            _("voucher file %(path)r is not readable JSON: %(error)s")
            % {"path": str(path), "error": error}
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("vouchers"), list):
        raise base.CatalogProtocolError(
            _('voucher file %(path)r must hold {"vouchers": [...]}') % {"path": str(path)}
        )
    vouchers = {}
    for index, raw in enumerate(document["vouchers"]):
        try:
            voucher = models.Voucher.model_validate(raw)
            code = base.normalize_code(voucher.code)
        except pydantic.ValidationError as error:
            first = models.first_error(error)
            # A rule across fields (valid_until after valid_from) has no location.
            raise base.CatalogProtocolError((
                _("voucher #%(index)d of %(path)r is invalid: %(error)s at %(where)s")
                if first.where else
                _("voucher #%(index)d of %(path)r is invalid: %(error)s"))
                % {"index": index, "path": str(path), "error": first.text, "where": first.where}
            ) from None
        except exceptions.InvalidVoucherCode:
            # The operator's file is broken, not the customer's code: the
            # customer-facing message would blame every activation on them.
            # The code stays out of the message (a secret).
            raise base.CatalogProtocolError(
                _("voucher #%(index)d of %(path)r has an invalid code: codes are 4 to 64 "
                  "letters, digits or dashes") % {"index": index, "path": str(path)}
            ) from None
        if code in vouchers:
            # One of the two is a mistake, and which one the operator meant
            # (amount, validity) is not ours to guess.
            raise base.CatalogProtocolError(
                _("voucher #%(index)d of %(path)r repeats the code of an earlier voucher")
                % {"index": index, "path": str(path)}
            )
        vouchers[code] = voucher
    return vouchers
