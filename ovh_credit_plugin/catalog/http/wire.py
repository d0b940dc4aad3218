"""What travels on the wire: the contract's documents and reading answers into models.

The models follow ``docs/voucher-catalog.openapi.yaml`` and a test keeps
them in step. A leaf: parsing says what is wrong with an answer
(:class:`WireError`) without deciding how that is told; the code masking
and token hiding of that message are ``errors``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar

import pydantic
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from ovh_credit_plugin import exceptions, models
from ovh_credit_plugin.i18n import _

API_PREFIX = "/v1/vouchers"
REQUEST_ID_HEADER = "X-Request-Id"
# Ours, sent: the id of the API request a call is made for (keystoneauth's
# ``global_request_id`` header); REQUEST_ID_HEADER is the catalog's, answered.
OPENSTACK_REQUEST_ID_HEADER = "X-OpenStack-Request-ID"
AUTH_HEADER = "X-Auth-Token"
# A catalog answer is a few hundred bytes; a megabyte is a broken server.
MAX_BODY_BYTES = 1 << 20

# The wire patterns; docs/voucher-catalog.openapi.yaml carries the same ones.
CODE_PATTERN = r"^[A-Z0-9-]{4,64}$"
AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)


class _Wire(BaseModel):
    # Fields the contract does not name are ignored (a catalog may grow);
    # every field it names must be there, with its JSON type: no number for
    # an amount, no string for a count.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


WireCode = Annotated[str, Field(pattern=CODE_PATTERN)]
WireAmount = Annotated[str, Field(pattern=AMOUNT_PATTERN)]
WireCurrency = Annotated[str, Field(pattern=CURRENCY_PATTERN)]


_TIME_TEXT = pydantic.TypeAdapter(AwareDatetime)


def _wire_time(value: object) -> object:
    # ISO 8601 text, read here: pydantic would read "20270131" (ISO's basic date)
    # as Unix time, and after a validator of ours, strict mode takes no text.
    if isinstance(value, str):
        models.iso_time(value)
        try:
            return _TIME_TEXT.validate_python(value)
        except pydantic.ValidationError:
            raise ValueError(_("a time is expected (ISO 8601)")) from None
    return value


WireTime = Annotated[AwareDatetime, BeforeValidator(_wire_time)]


class VoucherDocument(_Wire):
    """``Voucher`` of the contract: the answer to ``GET /v1/vouchers/{code}``."""

    code: WireCode
    amount: WireAmount
    currency: WireCurrency
    status: models.VoucherStatus
    valid_from: WireTime | None
    valid_until: WireTime | None
    validity_days: Annotated[int, Field(ge=1, le=36600)] | None
    products: list[Annotated[str, Field(min_length=1, max_length=255)]]
    max_redemptions: Annotated[int, Field(ge=1)] | None
    redemptions: Annotated[int, Field(ge=0)]
    description: Annotated[str, Field(max_length=1000)]


class RedemptionDocument(_Wire):
    """``Redemption`` of the contract: the answer to ``POST .../redemptions``."""

    id: Annotated[str, Field(min_length=1, max_length=255)]
    code: WireCode
    project_id: Annotated[str, Field(min_length=1, max_length=255)]
    amount: WireAmount
    currency: WireCurrency
    valid_from: WireTime | None
    valid_until: WireTime | None
    validity_days: Annotated[int, Field(ge=1, le=36600)] | None
    products: list[Annotated[str, Field(min_length=1, max_length=255)]]
    description: Annotated[str, Field(max_length=1000)]
    redeemed_at: WireTime


class RedemptionRequest(_Wire):
    """``RedemptionRequest`` of the contract: the body we POST."""

    project_id: Annotated[str, Field(min_length=1, max_length=255)]
    idempotency_key: Annotated[str, Field(pattern=IDEMPOTENCY_KEY_PATTERN)]


class ErrorDocument(BaseModel):
    """``Error`` of the contract: what a 4xx/5xx may carry (all optional)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Answer:
    """One answer as the driver read it: the body whole, the headers it keeps already cleaned.

    Everything after the exchange (status mapping, parsing, error messages)
    works on this, never on a live ``requests.Response``.
    """

    status: int
    body: bytes
    request_id: str | None
    attempts: int
    retry_after: str | None


#: What a :class:`WireError` is about: the document read, or the answer once
#: read when its values are wrong.
WireWhat = Literal["voucher", "redemption", "answer"]


class WireError(Exception):
    """An answer that does not follow the contract.

    Carries the answer and what is wrong with it, unmasked: the message a
    user sees (code masked, tokens hidden) is made by ``errors``, the one
    place that turns what went wrong into a ``CatalogError``.
    """

    def __init__(self, *, answer: Answer, what: WireWhat, problem: str | None) -> None:
        super().__init__(what, problem)
        self.answer = answer
        # What is wrong: None when the body is not a JSON object, else the
        # first problem, in the reader's language (a lazy message in the REST
        # API); ``errors`` words the whole sentence around it.
        self.what = what
        self.problem = problem


_Model = TypeVar("_Model", models.Voucher, models.Redemption)
_Document = TypeVar("_Document", VoucherDocument, RedemptionDocument)


def parse(model: type[_Document], answer: Answer, *, what: WireWhat) -> _Document:
    """The answer's body as a wire document; :class:`WireError` when it is not one."""
    try:
        return model.model_validate_json(answer.body)
    except pydantic.ValidationError as error:
        first = models.first_error(error)
        problem = (None if first.type in ("json_invalid", "json_type", "model_type")
                   else first.described())
        raise WireError(answer=answer, what=what, problem=problem) from None


def convert(
    model: type[_Model],
    document: VoucherDocument | RedemptionDocument,
    answer: Answer,
) -> _Model:
    """The wire document as the plugin's model (currency and decimals checked)."""
    try:
        return model.model_validate(document.model_dump())
    except (pydantic.ValidationError, exceptions.InvalidInput, ValueError) as error:
        # A lazy message stays one (str() would fix its language now).
        problem = (models.first_error(error).described()
                   if isinstance(error, pydantic.ValidationError)
                   else exceptions.message_of(error))
        raise WireError(answer=answer, what="answer", problem=problem) from None
