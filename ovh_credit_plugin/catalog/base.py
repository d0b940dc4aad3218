"""The voucher catalog driver interface."""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ovh_credit_plugin import contracts, exceptions, i18n
from ovh_credit_plugin.i18n import _

if TYPE_CHECKING:
    from ovh_credit_plugin import models

NAMESPACE = "ovh_credit_plugin.voucher_catalogs"


class CatalogError(exceptions.CreditError):
    """Base of the catalog's errors; carries what the catalog said, when it said something.

    ``status`` is the HTTP status (None when no answer came), ``request_id``
    the catalog's request id for its operators, ``response`` the decoded
    body of the answer (never the request: it carries the auth token).
    ``str(error)`` is one line; it names the request id so that the
    catalog's operators can find the call in their logs.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        response: object | None = None,
    ) -> None:
        if request_id:
            message = (_("%(message)s (catalog request %(request_id)s)")
                       % {"message": message, "request_id": request_id})
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.response = response


class VoucherNotFound(CatalogError, LookupError):
    """The catalog knows no such code."""


class VoucherAlreadyRedeemed(CatalogError):
    """The code was used up (single use, or max_redemptions reached)."""


class VoucherUnavailable(CatalogError):
    """The voucher is revoked or past its end (410, or its status says so)."""


class CatalogThrottled(CatalogError):
    """The catalog asked us to slow down (429) and retries ran out."""


class CatalogUnavailable(CatalogError, ConnectionError):
    """No usable answer in time: connection refused, timeouts, 5xx."""


class CatalogTLSError(CatalogUnavailable):
    """The catalog's TLS certificate could not be verified (or ours was refused)."""


class CatalogProtocolError(CatalogError, ValueError):
    """An answer that breaks the wire contract (bad JSON, wrong fields, wrong code)."""


class CatalogAuthError(CatalogError, PermissionError):
    """The catalog refused our credentials (401/403)."""


def normalize_code(code: str) -> str:
    """Strip and upper-case a code; refuse anything that is not one (offline)."""
    if not isinstance(code, str):
        raise exceptions.InvalidVoucherCode(_("a voucher code must be text"))
    stripped = code.strip()
    normalized = stripped.upper()
    # Checked as typed too: str.upper() turns some letters that are not ASCII
    # into ASCII ones (the sharp s into "SS", the dotless i into "I"), which would
    # make another code of a typo or a lookalike.
    if not stripped.isascii() or not contracts.VOUCHER_CODE_RE.fullmatch(normalized):
        raise exceptions.InvalidVoucherCode(
            _("a voucher code is 4 to 64 letters, digits or dashes")
        )
    return normalized


def mask_code(code: str) -> str:
    """What logs show of a code: enough to find it, not enough to use it.

    A third of the code at most (rounded down), never more than 6
    characters: two thirds of them from its start, the rest from its end.
    ``WELCOME-2026`` (12) shows 4: ``WEL…6``; 18 characters or more show
    ``ABCD…YZ``; ``GPU-ONLY`` (8) shows ``GP…``; codes of 4 or 5 characters
    show their first one. Codes of fewer than 3 (never valid ones) show
    nothing.
    """
    shown = min(6, len(code) // 3)
    suffix = shown // 3
    return code[: shown - suffix] + "…" + (code[-suffix:] if suffix else "")


# The refusals a customer causes: they count against the project's failed
# attempts and all show the customer the same message.
REFUSALS = (VoucherNotFound, VoucherAlreadyRedeemed, VoucherUnavailable)


def idempotency_key(project_id: str, code: str) -> str:
    """Deterministic per (project, code): a retry recovers the same redemption."""
    return hashlib.sha256(f"{project_id}\x00{code}".encode()).hexdigest()


def same_code(found: object, code: str) -> bool:
    """Whether the catalog's ``found`` spells normalized ``code`` (case and blanks aside)."""
    return isinstance(found, str) and found.strip().upper() == code


def check_usable(
    voucher: models.Voucher, code: str, at: dt.datetime, *, redemptions: int | None = None
) -> None:
    """The one rule of a usable voucher, for the service and every driver.

    ``redemptions`` is the count to hold against ``max_redemptions`` (the
    voucher's own by default); refusals carry the status a catalog answers
    them with.
    """
    masked = mask_code(code)
    if not same_code(voucher.code, code):
        raise CatalogProtocolError(_("the catalog answered for another code than %(masked)s")
                                   % {"masked": masked})
    if voucher.status == "revoked":
        raise VoucherUnavailable(_("voucher %(code)s is revoked") % {"code": masked}, status=410)
    if voucher.valid_from is not None and at < voucher.valid_from:
        raise VoucherUnavailable(
            _("voucher %(code)s is not valid before %(time)s")
            % {"code": masked, "time": i18n.moment(voucher.valid_from)},
            status=410,
        )
    if voucher.status == "expired" or (
        voucher.valid_until is not None and at >= voucher.valid_until
    ):
        raise VoucherUnavailable(_("voucher %(code)s has expired") % {"code": masked}, status=410)
    used = voucher.redemptions if redemptions is None else redemptions
    if voucher.status == "exhausted" or (
        voucher.max_redemptions is not None and used >= voucher.max_redemptions
    ):
        raise VoucherAlreadyRedeemed(_("voucher %(code)s is used up") % {"code": masked},
                                     status=409)


def check_redemption(
    redemption: models.Redemption,
    *,
    code: str,
    project_id: str,
    currency: str | None = None,
    status: int | None = None,
    request_id: str | None = None,
) -> None:
    """A redemption the ledger may grant: ours, for something, in the voucher's currency.

    Drivers check it on the answer (``status`` and ``request_id`` name it in
    the error); the service again with the voucher's currency.
    """
    masked = mask_code(code)
    # One whole sentence each, never a translated piece inside an English one:
    # a lazy message (the REST API) is translated whole in the reader's language.
    if not same_code(redemption.code, code):
        raise CatalogProtocolError(
            _("the catalog redeemed another code than %(masked)s") % {"masked": masked},
            status=status, request_id=request_id)
    if redemption.project_id != project_id:
        raise CatalogProtocolError(
            _("the catalog redeemed %(masked)s for another project than %(project_id)s")
            % {"masked": masked, "project_id": project_id},
            status=status, request_id=request_id)
    if redemption.amount <= 0:
        raise CatalogProtocolError(
            _("the catalog redeemed %(masked)s for nothing") % {"masked": masked},
            status=status, request_id=request_id)
    if currency is not None and redemption.currency != currency:
        raise CatalogProtocolError(
            _("the catalog redeemed %(masked)s in %(currency)s, but the voucher is in "
              "%(voucher_currency)s")
            % {"masked": masked, "currency": redemption.currency, "voucher_currency": currency},
            status=status, request_id=request_id)


class RedemptionLedger(Protocol):
    """Where a catalog without a server of its own (``file``) records its redemptions.

    Built by the caller (``service.load_catalog``) on the ledger database, so
    that the catalog drivers hold no SQL.
    """

    def count(self, code: str) -> int:
        """Redemptions recorded for ``code``."""

    def redeem(
        self,
        redemption: models.Redemption,
        *,
        idempotency_key: str,
        limit: int | None,
        check: Callable[[], None],
    ) -> models.Redemption | None:
        """Record ``redemption`` in one transaction, deciding the limit with every node.

        The redemption already recorded under ``idempotency_key``, if any, is
        returned as it is. Otherwise ``check`` runs (it raises to refuse,
        nothing written), then the redemption is recorded unless ``limit``
        redemptions of its code exist already (``None``: no limit), in which
        case nothing is written and None is returned.
        """


class VoucherCatalog(abc.ABC):
    """A source of vouchers. Drivers take the host's ConfigOpts (and the ledger engine)."""

    @abc.abstractmethod
    def get(self, code: str) -> models.Voucher:
        """The voucher for a normalized ``code``; raises VoucherNotFound."""

    @abc.abstractmethod
    def redeem(
        self,
        code: str,
        *,
        project_id: str,
        idempotency_key: str,
        at: dt.datetime | None = None,
    ) -> models.Redemption:
        """Redeem ``code`` for ``project_id``.

        Idempotent on ``idempotency_key``: the same key returns the same
        redemption, never a second one. ``at`` is the activation time, for
        catalogs that let the caller tell it (the local file); a remote
        catalog keeps its own clock.
        """

    def deadline(self) -> contextlib.AbstractContextManager[None]:
        """One time budget for the calls made inside (an activation's GET and POST).

        A remote catalog bounds every call by its configured ``timeout``;
        inside this context the calls share one such budget, so that an
        activation as a whole cannot stall its caller longer. Drivers
        without a network ignore it.
        """
        return contextlib.nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
