"""The REST resources (DESIGN.md section 4), as plain pecan RestControllers.

``CreditRootController`` is mounted at ``/v1`` by the standalone app and at
``/v1/rating/module_config/cloud_credit`` by CloudKitty (the processor's
``config_controller``). Each handler: parse and check the request, ask
oslo.policy, call the service, answer JSON; errors are API-SIG documents.

Authorization only through oslo.policy. A caller acts on its token's project;
``?project_id=`` names another one, which the rule's target check then allows
only to admins. Item routes ask policy twice: first about the caller's own
project (a role that may never do this is a 403 whatever the id), then about
the object's project (refused: 404, the same answer as for no such object,
so that ids of other projects' objects cannot be probed).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

import pecan
import webob
from oslo_config import cfg
from oslo_policy import policy as oslo_policy
from pecan import rest
from pecan import util as pecan_util
from pecan.routing import PecanNotFound
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from webob import acceptparse
from webob import exc as webob_exc

from ovh_credit_plugin import (
    contracts,
    descriptions,
    exceptions,
    i18n,
    json_syntax,
    models,
    money,
    request_ids,
)
from ovh_credit_plugin.api import argspecs, errors, ovh, policy
from ovh_credit_plugin.api.context import Caller, caller_of
from ovh_credit_plugin.catalog import base as catalog_base
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.service.credits import STATUSES as CREDIT_STATUSES
from ovh_credit_plugin.service.orders import STATUSES as ORDER_STATUSES

if TYPE_CHECKING:
    from ovh_credit_plugin.service import CreditService

LOG = logging.getLogger(__name__)


# pecan asks for a controller's argument spec about ten times per request
# (routing, the REST verbs, the call), and each answer built a new named tuple
# *class* on top of ``inspect.getfullargspec``: ~35% of a ``GET credits``. pecan
# only reads the answer (it copies ``args`` before changing it).
if not hasattr(pecan_util._getargspec, "uncached"):
    pecan_util._getargspec = argspecs.per_function(pecan_util._getargspec)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_MAX_BODY = 65536
_BASE_URL_ENV = "ovh_credit.base_url"
_ROUTING_ERROR_ENV = "ovh_credit.routing_error"
_ALLOW_ENV = "ovh_credit.allow"
_BODY_ENV = "ovh_credit.body"
#: The methods whose body a handler reads.
_BODY_METHODS = ("POST", "PUT", "PATCH")
#: Set by keystonemiddleware's auth_token on every request it passes on.
_IDENTITY_STATUS_ENV = "HTTP_X_IDENTITY_STATUS"
#: The challenge of a 401 when no authentication middleware is in front
#: (``auth_strategy = noauth``): the caller names itself in X-Project-Id,
#: X-User-Id and X-Roles.
NOAUTH_CHALLENGE = 'Noauth realm="cloud_credit"'



class Runtime:
    """What every controller shares: the host's options, the policy, the service.

    The service is built on the first request that needs it: CloudKitty
    builds the controller of every installed processor at start, enabled
    or not, and loading one must not open the ledger. ``cache=False`` asks
    ``service`` on every request, for a host that keeps its services itself
    (CloudKitty's processor, one per ledger URL, closed by its tests).
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        service: Callable[[], CreditService],
        *,
        max_body: int = DEFAULT_MAX_BODY,
        cache: bool = True,
    ) -> None:
        # Messages stay lazy until an answer knows its language (Accept-Language).
        i18n.enable_lazy()
        self.conf = conf
        self.max_body = max_body
        self._make_service = service
        self._cache = cache
        self._service: CreditService | None = None
        self._enforcer: oslo_policy.Enforcer | None = None
        self._lock = threading.Lock()

    @property
    def service(self) -> CreditService:
        if not self._cache:
            return self._make_service()
        if self._service is None:
            with self._lock:
                if self._service is None:
                    self._service = self._make_service()
        return self._service

    def close(self) -> None:
        """Close the service this runtime built, if it built one."""
        with self._lock:
            service, self._service = self._service, None
        if service is not None:
            service.close()

    @property
    def enforcer(self) -> oslo_policy.Enforcer:
        if self._enforcer is None:
            with self._lock:
                if self._enforcer is None:
                    self._enforcer = policy.make_enforcer(self.conf)
        return self._enforcer

    @property
    def throttle_window(self) -> int:
        return int(self.conf.cloud_credit.voucher_attempt_window)

    def allowed(self, caller: Caller, rule: str, project_id: str | None) -> bool:
        return policy.allowed(self.enforcer, rule, {"project_id": project_id}, caller.context)

    def describe_ledger_error(self, error: BaseException) -> str:
        """One line for the log: the ledger's URL (password hidden), the driver's error."""
        from ovh_credit_plugin.ledger.engine import describe_error

        try:
            service = self._service if self._cache else self._make_service()
            url = service.database.engine.url if service is not None else None
        except Exception:  # the line must be written whatever else is broken
            url = None
        if url is None:
            return f"ledger database: {str(getattr(error, 'orig', None) or error).splitlines()[0]}"
        return describe_error(url, error)


# -- request bodies -----------------------------------------------------------------


class _Body(BaseModel):
    # Strict: "10" for an int, 10 for a string, and unknown fields are refused.
    model_config = ConfigDict(extra="forbid", strict=True)


class OrderBody(_Body):
    amount: str = Field(max_length=64)
    currency: str | None = Field(default=None, max_length=3)


class PaymentBody(_Body):
    amount: str = Field(max_length=64)
    currency: str = Field(max_length=3)


class VoucherBody(_Body):
    code: str = Field(max_length=256)


class VoidBody(_Body):
    reason: str = Field(min_length=1, max_length=1000)


_B = TypeVar("_B", bound=_Body)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise errors.ApiError(
                "invalid_request", _("field '%(field)s' is given twice") % {"field": key})
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise errors.ApiError(
        "invalid_request", _("%(value)s is not a JSON value here") % {"value": name})


def capture_body(request: webob.Request, max_body: int) -> None:
    """Read and parse the body once, before pecan does; keep the outcome for the handler.

    pecan parses a JSON body itself to pass its fields as keyword arguments,
    whatever the method (but GET), even to the handler of a routing error,
    and an exception there (a nesting too deep) escapes as a 500: the body
    it sees is replaced by ``{}``, for every request that carries one. A
    failure is kept, not raised: a handler checks the caller first, so that
    a refused caller learns nothing about what its body would have done.
    """
    if not _carries_body(request):
        return
    try:
        request.environ[_BODY_ENV] = _parse_body(request, max_body)
    except errors.ApiError as error:
        request.environ[_BODY_ENV] = error
    request.body = b"{}"


def _carries_body(request: webob.Request) -> bool:
    if request.method in _BODY_METHODS:
        return True
    length: int | None = request.content_length
    if length is not None:
        return length > 0
    return "chunked" in str(request.headers.get("Transfer-Encoding", "")).lower()


def _too_large(max_body: int) -> str:
    # The limit as the reader writes numbers (« 65 536 octets », "65,536 bytes"), as
    # every number of a sentence.
    return _("the request body is larger than %(limit)s bytes") % {
        "limit": i18n.count(max_body)}


def _parse_body(request: webob.Request, max_body: int) -> Any:
    length = request.content_length
    if (length is None and "HTTP_TRANSFER_ENCODING" in request.environ
            and not request.is_body_readable):
        # A chunked body that the server did not decode: wsgiref (ovh-credit-api)
        # passes the raw chunks on, and tells no end; webob would read it as
        # empty. Servers that decode it (gunicorn, mod_wsgi) say so
        # (wsgi.input_terminated), and it is read below up to the limit.
        raise errors.ApiError("length_required", errors.LENGTH_REQUIRED_DETAIL)
    if length is not None and length > max_body:
        raise errors.ApiError("too_large", _too_large(max_body))
    try:
        raw = request.body_file.read(max_body + 1) if length is None else request.body
    except OSError:
        # webob's DisconnectionError (an OSError): the client stopped sending, or
        # its connection broke, before Content-Length bytes came.
        raise errors.ApiError(
            "invalid_request", _("the request body ended before its Content-Length")) from None
    if len(raw) > max_body:
        raise errors.ApiError("too_large", _too_large(max_body))
    if not raw:
        raise errors.ApiError("invalid_request", _("a JSON object is expected in the body"))
    # Media types are case-insensitive (RFC 9110 8.3.1): "Application/JSON" is JSON.
    if request.content_type.lower() != "application/json":
        raise errors.ApiError("invalid_request", _("the body must be application/json"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.ApiError("invalid_request", _("the body is not UTF-8")) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise errors.ApiError(
            "invalid_request",
            _("malformed JSON: %(error)s") % {"error": json_syntax.syntax_error(error)}
        ) from None
    except RecursionError:
        raise errors.ApiError("invalid_request", _("malformed JSON: nested too deep")) from None
    except ValueError:
        # Python's limit on the digits of an int (4300 by default), not a JSONDecodeError.
        raise errors.ApiError(
            "invalid_request", _("malformed JSON: a number has too many digits")) from None


def read_body(request: webob.Request, model: type[_B]) -> _B:
    """The request's JSON object (see :func:`capture_body`), checked against ``model``."""
    data = request.environ.get(_BODY_ENV)
    if isinstance(data, errors.ApiError):
        raise data
    if not isinstance(data, dict):
        raise errors.ApiError("invalid_request", _("a JSON object is expected in the body"))
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = models.first_error(error)
        amount = first.where == "amount" and first.type != "extra_forbidden"
        code = "invalid_amount" if amount else "invalid_request"
        raise errors.ApiError(code, first._replace(where=first.where or "body").described()
                              ) from None


# -- query parameters ----------------------------------------------------------------


def _query(*allowed: str) -> dict[str, str]:
    """The query string's parameters; unknown or repeated ones are refused.

    Read from the query string only: pecan also hands a handler the JSON
    body's fields as keyword arguments, which the handlers ignore.
    """
    checked: dict[str, str] = {}
    params = pecan.request.GET
    for name in params:
        if name not in allowed:
            raise errors.ApiError(
                "invalid_request", _("unknown query parameter '%(name)s'") % {"name": name})
        values = params.getall(name)
        if len(values) != 1:
            raise errors.ApiError(
                "invalid_request", _("query parameter '%(name)s' is given twice") % {"name": name})
        value = values[0]
        if len(value) > 255:
            raise errors.ApiError(
                "invalid_request", _("query parameter '%(name)s' is too long") % {"name": name})
        checked[name] = value
    return checked


# ASCII digits only: str.isdigit() takes "²" and "٣", which int() refuses or reads.
_NUMBER = re.compile(r"[0-9]{1,19}")


def _limit(params: Mapping[str, str]) -> int:
    text = params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not _NUMBER.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise errors.ApiError(
            "invalid_request",
            # As the parameter is written (a grouped 1,000 would be refused).
            _("limit is an integer from 1 to %(max)s") % {"max": MAX_LIMIT})
    return int(text)


def _storable(text: str) -> bool:
    """Whether ``text`` can be looked up in the ledger: PostgreSQL refuses a NUL in a
    text parameter (an error, not a miss), which no id or key holds."""
    return "\x00" not in text


def _status(params: Mapping[str, str], statuses: tuple[str, ...]) -> str | None:
    status = params.get("status")
    if status is not None and status not in statuses:
        raise errors.ApiError(
            "invalid_request", _("status is one of %(statuses)s")
            % {"statuses": ", ".join(statuses)})
    return status


# -- answers -------------------------------------------------------------------------


def _json(document: Any, status: int = 200, *, location: str | None = None,
          text: str | None = None, language: str | None = None) -> webob.Response:
    """``document`` as JSON; or ``text``, JSON already written (:func:`ovh.dumps`).

    ``language``: the language its words are in (credits' descriptions).
    """
    body = json.dumps(document) if text is None else text
    response = webob.Response(status=status, content_type="application/json", charset="UTF-8",
                              body=body.encode())
    response.headers["Cache-Control"] = errors.NO_STORE
    if location is not None:
        response.headers["Location"] = location
    if language is not None:
        response.headers["Content-Language"] = language
    return response


def _language() -> str:
    """The language the request's ``Accept-Language`` picks."""
    return i18n.best_language(pecan.request.accept_language)


def _base_url(request: webob.Request) -> str:
    return str(request.environ.get(_BASE_URL_ENV) or request.host_url)


def _next_link(request: webob.Request, resource: str, params: Mapping[str, str],
               marker: str, limit: int) -> list[dict[str, str]]:
    query = {name: value for name, value in params.items() if name not in ("marker", "limit")}
    query.update(limit=str(limit), marker=marker)
    href = f"{_base_url(request)}/{resource}?{urlencode(sorted(query.items()))}"
    return [{"rel": "next", "href": href}]


_F = TypeVar("_F", bound=Callable[..., webob.Response])


def handler(func: _F) -> _F:
    """Expose a handler to pecan; turn every error into an API-SIG answer.

    The path arguments are checked against the handler's own: pecan gives a
    RestController method whatever segments remain.
    """
    signature = inspect.signature(func)
    positional = [p for p in signature.parameters.values()
                  if p.kind is p.POSITIONAL_OR_KEYWORD][1:]

    @functools.wraps(func)
    def wrapper(self: _Resource, *args: Any, **kwargs: Any) -> webob.Response:
        request = pecan.request
        try:
            if len(args) != len(positional):
                raise errors.ApiError("not_found", _("no such resource: %(path)s")
                                      % {"path": errors.request_path(request.environ)})
            # The id the answer carries goes on to the voucher catalog's calls
            # (X-OpenStack-Request-ID), in CloudKitty's pipeline as in ours.
            with request_ids.acting_for(request.environ.get(errors.REQUEST_ID_ENV)):
                return func(self, *args)
        except Exception as error:
            api_error = errors.from_exception(error, throttle_window=self.runtime.throttle_window)
            path = errors.logged_path(request.environ)
            # The request id each line ends with is what the caller was answered
            # ("the request id finds it in the logs"); a log format need not show it.
            request_id = request.environ.get(errors.REQUEST_ID_ENV)
            if api_error.code == "ledger_unavailable":
                # An outage, not a bug: no traceback, but what failed, for the on-call.
                LOG.error("%s %s: %s (request %s)", request.method, path,
                          self.runtime.describe_ledger_error(error), request_id)
            elif isinstance(error, exceptions.DatabaseNotReady):
                # Every request until the schema is upgraded: its message says
                # which revision and what to run, and a traceback says nothing more.
                LOG.error("%s %s: %s (request %s)", request.method, path, error, request_id)
            elif api_error.status >= 500 and not isinstance(error, catalog_base.CatalogError):
                LOG.exception("%s %s failed (request %s)", request.method, path, request_id)
            elif api_error.status >= 500:
                LOG.warning("%s %s: %s (request %s)", request.method, path, error, request_id)
            return errors.error_response(api_error, request)

    # Seen by pecan as (self, *args, **kwargs): no path arguments checked by pecan.
    del wrapper.__wrapped__
    wrapper.path_arguments = [p.name for p in positional]  # type: ignore[attr-defined]
    return pecan.expose(content_type="application/json")(wrapper)  # type: ignore[no-any-return]


class _Resource(rest.RestController):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def service(self) -> CreditService:
        return self.runtime.service

    # -- who may do what ----------------------------------------------------------

    def caller(self) -> Caller:
        request = pecan.request
        caller = caller_of(request)
        if caller.project_id is None and caller.user_id is None and not caller.roles:
            # A 401 names how to authenticate (RFC 9110 11.6.1). Behind
            # keystonemiddleware (it marks what it passed on) the challenge is
            # its own, added to this answer by it when it let the request
            # through undecided (delay_auth_decision); with no auth in front,
            # the identity headers are the credentials.
            headers = ({} if _IDENTITY_STATUS_ENV in request.environ
                       else {"WWW-Authenticate": NOAUTH_CHALLENGE})
            raise errors.ApiError("unauthorized", _("no credentials came with the request"),
                                  headers=headers)
        return caller

    def project_for(self, caller: Caller, rule: str, params: Mapping[str, str]) -> str:
        """The project a collection request acts on: the token's, or ``?project_id=``."""
        project = params.get("project_id") or caller.project_id
        if project is None or not self.runtime.allowed(caller, rule, project):
            raise errors.ApiError("forbidden", (
                _("policy does not allow %(rule)s on project %(project)s")
                % {"rule": rule, "project": project} if project
                else _("policy does not allow %(rule)s") % {"rule": rule}))
        return project

    def may(self, caller: Caller, rule: str) -> None:
        """Whether the caller's role may ever do this (on its own project): 403 if not."""
        if not self.runtime.allowed(caller, rule, caller.project_id):
            raise errors.ApiError("forbidden",
                                  _("policy does not allow %(rule)s") % {"rule": rule})

    def owned(self, caller: Caller, rule: str, project_id: str, not_found: str) -> None:
        """An object of another project is not found, never forbidden."""
        if not self.runtime.allowed(caller, rule, project_id):
            raise errors.ApiError("not_found", not_found)


# -- credits -------------------------------------------------------------------------


def _credit_id(text: str) -> int:
    if not _NUMBER.fullmatch(text) or not 0 < int(text) < 2**63:
        raise errors.ApiError("not_found", _("no credit %(id)s") % {"id": text})
    return int(text)


class CreditsController(_Resource):
    _custom_actions = {"void": ["POST"]}

    @handler
    def get_all(self) -> webob.Response:
        caller = self.caller()
        query = _query("project_id", "status", "limit", "marker")
        project = self.project_for(caller, "cloud_credit:credit:list", query)
        limit = _limit(query)
        status = _status(query, CREDIT_STATUSES)
        marker = query.get("marker")
        page, more = self.service.list_credit_results_page(project, status=status, limit=limit,
                                                           marker=marker)
        links = (_next_link(pecan.request, "credits", query, str(page[-1].id), limit)
                 if more else [])
        language = _language()
        shown = [descriptions.localized(c, language).json_ready() for c in page]
        return _json({"credits": shown, "links": links}, language=language)

    @handler
    def get_one(self, credit_id: str) -> webob.Response:
        caller = self.caller()
        _query()
        self.may(caller, "cloud_credit:credit:get")
        ident = _credit_id(credit_id)
        try:
            credit, entries = self.service.show_credit(ident)
        except exceptions.CreditNotFound:
            raise errors.ApiError("not_found", _("no credit %(id)s") % {"id": ident}) from None
        self.owned(caller, "cloud_credit:credit:get", credit.project_id,
                   _("no credit %(id)s") % {"id": ident})
        language = _language()
        document = descriptions.localized(credit, language).json_ready()
        # Written as the credit's own amounts are (the ledger's sub-unit digits kept).
        written = money.formatter(credit.currency)
        document["entries"] = [{**entry.model_dump(mode="json"), "amount": written(entry.amount)}
                               for entry in entries]
        return _json(document, language=language)

    @handler
    def void(self, credit_id: str) -> webob.Response:
        caller = self.caller()
        _query()
        self.may(caller, "cloud_credit:credit:void")
        ident = _credit_id(credit_id)
        body = read_body(pecan.request, VoidBody)
        try:
            credit, _entries = self.service.show_credit(ident)
        except exceptions.CreditNotFound:
            raise errors.ApiError("not_found", _("no credit %(id)s") % {"id": ident}) from None
        self.owned(caller, "cloud_credit:credit:void", credit.project_id,
                   _("no credit %(id)s") % {"id": ident})
        voided = self.service.void_credit(ident, reason=body.reason)
        language = _language()
        return _json(descriptions.localized(voided, language).json_ready(),
                     language=language)


# -- forecast ------------------------------------------------------------------------


class ForecastController(_Resource):
    """``{base}/forecast``: one document per project, no items under it."""

    @handler
    def get_all(self) -> webob.Response:
        caller = self.caller()
        query = _query("project_id")
        project = self.project_for(caller, "cloud_credit:forecast:get", query)
        return _json(self.service.forecast(project).model_dump(mode="json"))


# -- vouchers ------------------------------------------------------------------------


class VouchersController(_Resource):
    @handler
    def post(self) -> webob.Response:
        caller = self.caller()
        query = _query("project_id")
        project = self.project_for(caller, "cloud_credit:voucher:activate", query)
        body = read_body(pecan.request, VoucherBody)
        credit, created = self.service.activate_voucher_outcome(project, body.code)
        language = _language()
        document = descriptions.localized(credit, language).json_ready()
        location = f"{_base_url(pecan.request)}/credits/{credit.id}"
        return _json(document, 201 if created else 200, location=location, language=language)

    @handler
    def get_one(self, code: str) -> webob.Response:
        caller = self.caller()
        query = _query("project_id")
        project = self.project_for(caller, "cloud_credit:voucher:check", query)
        normalized = catalog_base.normalize_code(code)
        # The caller's project's try: throttled and counted like an activation.
        preview = self.service.check_voucher(normalized, project_id=project)
        voucher = preview.voucher
        return _json({
            "code": catalog_base.mask_code(normalized),
            "amount": money.to_str(voucher.amount, voucher.currency),
            "currency": voucher.currency,
            "valid_from": (contracts.isoformat(voucher.valid_from)
                           if voucher.valid_from else None),
            "valid_until": (contracts.isoformat(voucher.valid_until)
                            if voucher.valid_until else None),
            "validity_days": voucher.validity_days,
            "products": list(voucher.products),
            "description": voucher.description,
            "redeemable": preview.redeemable,
        })


# -- orders --------------------------------------------------------------------------


class OrdersController(_Resource):
    _custom_actions = {"cancel": ["POST"], "payment": ["POST"]}

    @handler
    def get_all(self) -> webob.Response:
        caller = self.caller()
        query = _query("project_id", "status", "limit", "marker")
        project = self.project_for(caller, "cloud_credit:order:list", query)
        limit = _limit(query)
        status = _status(query, ORDER_STATUSES)
        marker = query.get("marker")
        if marker is not None and not _storable(marker):
            raise errors.ApiError("invalid_request",
                                  _("unknown marker %(marker)r") % {"marker": marker})
        page, more = self.service.list_orders_page(project, status=status, limit=limit,
                                                   marker=marker)
        links = _next_link(pecan.request, "orders", query, page[-1].id, limit) if more else []
        return _json({"orders": [o.json_ready() for o in page], "links": links})

    @handler
    def get_one(self, order_id: str) -> webob.Response:
        caller = self.caller()
        _query()
        order = self._order(caller, "cloud_credit:order:get", order_id)
        return _json(order.json_ready())

    @handler
    def post(self) -> webob.Response:
        caller = self.caller()
        query = _query("project_id")
        project = self.project_for(caller, "cloud_credit:order:create", query)
        body = read_body(pecan.request, OrderBody)
        key = pecan.request.headers.get("Idempotency-Key")
        order, created = self.service.create_order_once(
            project, body.amount, currency=body.currency, idempotency_key=key
        )
        location = f"{_base_url(pecan.request)}/orders/{order.id}"
        return _json(order.json_ready(), 201 if created else 200, location=location)

    @handler
    def cancel(self, order_id: str) -> webob.Response:
        caller = self.caller()
        _query()
        self._order(caller, "cloud_credit:order:cancel", order_id)
        try:
            order = self.service.cancel_order(order_id)
        except exceptions.InvalidState as error:
            raise errors.ApiError("order_not_pending", exceptions.message_of(error)) from None
        return _json(order.json_ready())

    @handler
    def payment(self, order_id: str) -> webob.Response:
        caller = self.caller()
        _query()
        self.may(caller, "cloud_credit:order:pay")
        body = read_body(pecan.request, PaymentBody)
        self._order(caller, "cloud_credit:order:pay", order_id)
        try:
            order = self.service.pay_order(order_id, amount=body.amount, currency=body.currency)
        except exceptions.InvalidState as error:
            raise errors.ApiError("order_not_pending", exceptions.message_of(error)) from None
        return _json(order.json_ready())

    def _order(self, caller: Caller, rule: str, order_id: str) -> models.Order:
        self.may(caller, rule)
        try:
            if not _storable(order_id):
                raise exceptions.OrderNotFound(order_id)
            order = self.service.show_order(order_id)
        except exceptions.OrderNotFound:
            raise errors.ApiError("not_found", _("no order %(id)s") % {"id": order_id}) from None
        self.owned(caller, rule, order.project_id,
                   _("no order %(id)s") % {"id": order_id})
        return order


# -- settlements ---------------------------------------------------------------------


_BOOLEAN = {"true": True, "false": False}


class SettlementsController(_Resource):
    @handler
    def get_all(self) -> webob.Response:
        """One recorded settlement: ``?invoice=`` (the project's invoice) or ``?key=``."""
        caller = self.caller()
        query = _query("project_id", "invoice", "key", "explain")
        rule = "cloud_credit:settlement:get"
        explain = _BOOLEAN.get(query.get("explain", "true"))
        if explain is None:
            raise errors.ApiError("invalid_request", _("explain is true or false"))
        if ("invoice" in query) == ("key" in query):
            raise errors.ApiError("invalid_request", _("give one of invoice and key"))
        if "invoice" in query:
            project = self.project_for(caller, rule, query)
            record = self.service.show_invoice_settlement(project, query["invoice"])
        else:
            if "project_id" in query:
                raise errors.ApiError("invalid_request",
                                      _("project_id goes with invoice: a key names its project"))
            self.may(caller, rule)
            if not _storable(query["key"]):
                raise errors.ApiError("not_found",
                                      _("no settlement %(key)s") % {"key": query["key"]})
            record = self.service.show_settlement(query["key"])
            self.owned(caller, rule, record.project_id,
                       _("no settlement %(key)s") % {"key": query["key"]})
        document = record.model_dump(mode="json")
        if not explain:
            for shown in document["allocations"]:
                del shown["explanation"]
        return _json(document)


# -- OVH-shaped credits ----------------------------------------------------------------


class OvhController(_Resource):
    """``{base}/ovh/cloud/project/{project_id}/credit[/{credit_id}]``: OVH's paths and
    ``cloud.Credit`` shape (api/ovh.py), on the credit rules."""

    #: Each handler's path under {base}, as docs/api.openapi.yaml writes it.
    PATHS = {"get_all": "ovh/cloud/project/{project_id}/credit",
             "get_one": "ovh/cloud/project/{project_id}/credit/{credit_id}"}

    @staticmethod
    def served(args: list[str]) -> bool:
        """Whether ``args`` (the path under ``{base}/ovh``) is one of the two paths."""
        return len(args) in (4, 5) and args[:2] == ["cloud", "project"] and args[3] == "credit"

    @pecan.expose()
    def _route(self, args: list[str], request: Any = None) -> Any:
        if request is None:
            request = pecan.request
        if not self.served(args):
            raise PecanNotFound
        if request.method != "GET":
            raise webob_exc.HTTPMethodNotAllowed
        return (self.get_all if len(args) == 4 else self.get_one), [args[2], *args[4:]]

    @handler
    def get_all(self, project_id: str) -> webob.Response:
        caller = self.caller()
        _query()
        project = self.project_for(caller, "cloud_credit:credit:list",
                                   {"project_id": project_id})
        # OVH's list is every id at once (long[]): a project holds few credits.
        return _json([credit.id for credit in self.service.list_credit_results(project)])

    @handler
    def get_one(self, project_id: str, credit_id: str) -> webob.Response:
        caller = self.caller()
        _query()
        rule = "cloud_credit:credit:get"
        self.may(caller, rule)
        ident = _credit_id(credit_id)
        try:
            credit, _entries = self.service.show_credit(ident)
        except exceptions.CreditNotFound:
            raise errors.ApiError("not_found", _("no credit %(id)s") % {"id": ident}) from None
        # Another project's credit, or the path naming another project than the
        # credit's: the answer a missing id gets, so that neither the credit nor
        # its owner can be probed.
        self.owned(caller, rule, credit.project_id, _("no credit %(id)s") % {"id": ident})
        if credit.project_id != project_id:
            raise errors.ApiError("not_found", _("no credit %(id)s") % {"id": ident})
        language = _language()
        return _json(None, text=ovh.dumps(ovh.credit(descriptions.localized(credit, language))),
                     language=language)


# -- the root ------------------------------------------------------------------------


#: The resources under {base}, each a child controller of the root.
RESOURCES = ("credits", "forecast", "vouchers", "orders", "settlements", "ovh")
#: Those that are one document, with nothing under them: a deeper path is not
#: found (pecan would answer 405, as for a collection without items).
DOCUMENTS = ("forecast",)


class CreditRootController(rest.RestController):
    """``{base}``: credits, the forecast, vouchers, orders, settlements (DESIGN.md section 4)
    and the OVH-shaped view of credits."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.credits = CreditsController(runtime)
        self.forecast = ForecastController(runtime)
        self.vouchers = VouchersController(runtime)
        self.orders = OrdersController(runtime)
        self.settlements = SettlementsController(runtime)
        self.ovh = OvhController(runtime)
        # What pecan's RestController routing finds for GET {base}/{resource}, found
        # in one lookup: that routing is ~20% of a GET credits (two levels of it).
        self._collections: dict[str, Callable[..., webob.Response]] = {
            name: getattr(self, name).get_all for name in _CONTROLLERS
            if hasattr(_CONTROLLERS[name], "get_all")}

    @pecan.expose(content_type="application/json")
    def _route(self, args: list[str], request: Any = None) -> Any:
        if request is None:
            request = pecan.request
        # First: pecan parses the body of whatever it routes to, a routing error too.
        capture_body(request, self.runtime.max_body)
        state = getattr(request, "pecan", None)
        if isinstance(state, dict) and not state.get("content_type"):
            # Every answer is JSON, the Accept checked below (accepts_json): pecan's
            # own negotiation after routing would refuse what that check takes
            # ("application/json; charset=utf-8") and log an ERROR for each 406.
            state["content_type"] = "application/json"
        # HEAD wherever GET is served (RFC 9110 9.3.2): routed as a GET, answered
        # as one; webob's Response leaves the body out for the HEAD it is again
        # by the time the answer is written.
        head = request.method == "HEAD"
        if head:
            request.method = "GET"
        try:
            if not accepts_json(request):
                status = 406
            else:
                return self._find(args, request)
        except webob_exc.HTTPException as error:
            # pecan's 405s; its 400 for a query string webob cannot decode.
            status = error.code
        except PecanNotFound:
            status = 404
        finally:
            if head:
                request.method = "HEAD"
        if status == 405:
            allowed = allowed_methods(args)
            if allowed:
                request.environ[_ALLOW_ENV] = ", ".join(allowed)
            else:
                status = 404  # no method at all: no such resource
        request.environ[_ROUTING_ERROR_ENV] = status
        return self._routing_error, []

    def _find(self, args: list[str], request: Any) -> Any:
        # {base} as the client sees it, for Location and next links.
        rest_of_path = "/".join(args)
        url = request.path_url
        if rest_of_path and url.endswith(rest_of_path):
            url = url[: -len(rest_of_path)]
        request.environ[_BASE_URL_ENV] = url.rstrip("/")
        if (not args or args[0] not in RESOURCES
                or (args[0] in DOCUMENTS and any(args[1:]))):
            raise PecanNotFound
        if (len(args) == 1 and request.method == "GET" and args[0] in self._collections
                # pecan's answer too, but for a "_method" in the query (a 405 below)
                and "_method" not in request.GET):
            return self._collections[args[0]], []
        if len(args) > 1 and "_method" not in request.GET:
            # pecan hands an item's path to a collection's POST and an action's
            # to the item's GET, whose handlers then answer 404: a method the
            # path does not serve is a 405 naming those it does, whatever it is.
            allowed = allowed_methods(args)
            if allowed and request.method not in allowed:
                raise webob_exc.HTTPMethodNotAllowed
        return super()._route(args, request)

    @pecan.expose(content_type="application/json")
    def _routing_error(self, *args: Any, **kwargs: Any) -> webob.Response:
        request = pecan.request
        status = int(request.environ.get(_ROUTING_ERROR_ENV) or 404)
        method = request.method
        if status == 405:
            # The method pecan routed: "GET ...?_method=delete" is a DELETE.
            method = str(request.params.get("_method", method)).upper()
        error = errors.http_error(status, request.environ, method)
        allow = request.environ.get(_ALLOW_ENV)
        if allow:
            error.headers["Allow"] = allow
        return errors.error_response(error, request)


def accepts_json(request: webob.Request) -> bool:
    """Whether the request's ``Accept`` takes ``application/json``, the only type answered.

    pecan's own check lets ``application/json;q=0`` through (a prefix match
    after the negotiation refused it); an Accept that merely allows JSON
    (none, ``*/*``) costs a dictionary lookup. The answers are UTF-8: an
    Accept naming that charset takes them (webob compares parameter values
    case-sensitively; media types and charsets are not, RFC 9110 8.3.1 and 8.3.2).
    """
    accept = request.environ.get("HTTP_ACCEPT")
    if not accept or accept in ("*/*", "application/json"):
        return True
    return bool(acceptparse.create_accept_header(accept.lower()).acceptable_offers(
        ["application/json", "application/json;charset=utf-8"]))


def allowed_methods(args: list[str]) -> list[str]:
    """The methods the handlers serve at ``{base}/`` + ``args`` (the ``Allow`` of a 405)."""
    segments = list(args)
    while segments and not segments[-1]:  # a trailing slash
        segments.pop()
    if not segments:
        return []
    resource, rest = segments[0], segments[1:]
    if resource == "ovh":
        return ["GET", "HEAD"] if OvhController.served(rest) else []
    controller = _CONTROLLERS.get(resource)
    if controller is None:
        return []
    if not rest:
        found = [method for name, method in (("get_all", "GET"), ("post", "POST"))
                 if hasattr(controller, name)]
    elif len(rest) == 1:
        found = ["GET"] if hasattr(controller, "get_one") else []
    elif len(rest) == 2:
        found = list(controller._custom_actions.get(rest[1], []))
    else:
        found = []
    if "GET" in found:
        found.append("HEAD")  # served wherever GET is (_route)
    return sorted(found)


_CONTROLLERS: dict[str, type[_Resource]] = {
    "credits": CreditsController, "forecast": ForecastController,
    "vouchers": VouchersController, "orders": OrdersController,
    "settlements": SettlementsController,
}


def served_routes() -> set[tuple[str, str]]:
    """(method, path under {base}) of every handler, as docs/api.openapi.yaml writes them."""
    found = {("GET", path) for path in OvhController.PATHS.values()}
    for resource, controller in _CONTROLLERS.items():
        for name, method in (("get_all", "GET"), ("get_one", "GET"), ("post", "POST")):
            function = getattr(controller, name, None)
            if function is not None:
                found.add((method, "/".join([resource, *(
                    f"{{{arg}}}" for arg in function.path_arguments)])))
        for action, methods in controller._custom_actions.items():
            arguments = getattr(controller, action).path_arguments
            for method in methods:
                found.add((method, "/".join([resource, *(f"{{{arg}}}" for arg in arguments),
                                              action])))
    return found
