"""The plugin's errors.

One base, :class:`CreditError`; each subclass also inherits the builtin that
matches it (as oslo.config's errors do), so callers may catch either.
``str(error)`` is one line meant for the person who caused it.
"""

from __future__ import annotations

from ovh_credit_plugin.i18n import _


class CreditError(Exception):
    """Base of every error this plugin raises on purpose."""


def message_of(error: BaseException) -> str:
    """The error's message as raised: a lazy message stays one, to be translated
    in the language of whoever reads it (``str(error)`` would fix it now)."""
    first = error.args[0] if len(error.args) == 1 else None
    return first if isinstance(first, str) else str(error)


class InvalidInput(CreditError, ValueError):
    """A value given by a caller is malformed or out of bounds."""


class InvalidAmount(InvalidInput):
    """An amount is not a positive exact decimal the currency allows."""


class InvalidCurrency(InvalidInput):
    """A currency code is unknown to ISO 4217 or unusable for money."""


class PurchaseNotOffered(InvalidCurrency):
    """Credit is not sold in this currency: no purchase limits are configured for it.

    ``str(error)`` is the customer's (« cloud credit is not sold in GBP »): the
    REST API answers with it. ``operator_hint`` says which options sell it, for
    an operator only: logged where the order is refused, and appended to the
    operator CLI's error line (``ovh-credit order create``), never in an API answer.
    """

    def __init__(self, message: str, *, currency: str, operator_hint: str) -> None:
        super().__init__(message)
        self.currency = currency
        self.operator_hint = operator_hint


class CurrencyMismatch(InvalidInput):
    """A currency differs from the project's; credit is never converted."""


class InvalidVoucherCode(InvalidInput):
    """A voucher code does not have the shape of one (checked offline)."""


class NotFound(CreditError, LookupError):
    """An object named by its id does not exist."""


class OrderNotFound(NotFound):
    pass


class CreditNotFound(NotFound):
    pass


class SettlementNotFound(NotFound):
    pass


class InvalidState(CreditError, RuntimeError):
    """The operation is not allowed in the object's current state."""


class IdempotencyConflict(CreditError, RuntimeError):
    """An idempotency key was used before for a different request."""


class SettlementConflict(CreditError, RuntimeError):
    """An invoice was already settled with different content."""


class VoucherRefused(CreditError, RuntimeError):
    """A voucher cannot be activated for this project.

    ``reason`` is precise (for operators and logs); ``str(error)`` stays the
    same for unknown, used and expired codes so that a customer probing codes
    learns nothing from the message.
    """

    public_message = "this voucher code cannot be activated"

    def __init__(self, reason: str, *, public: bool = True) -> None:
        self.reason = reason
        super().__init__(_("this voucher code cannot be activated") if public else reason)


class TooManyAttempts(VoucherRefused):
    """The project made too many failed voucher tries (activations, checks) recently.

    ``retry_after``: seconds until the project may try again, when known (a
    running try that ends well may free a place sooner).
    """

    def __init__(self, reason: str, *, retry_after: int | None = None) -> None:
        super().__init__(reason, public=False)
        self.retry_after = retry_after


class DatabaseNotReady(CreditError, RuntimeError):
    """The ledger schema is missing or older than this code."""


class ConfigError(CreditError, ValueError):
    """An option value is unusable."""
