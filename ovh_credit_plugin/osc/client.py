"""The HTTP side of ``openstack rating credit ...``: requests built from arguments, answers read.

The commands reuse python-cloudkittyclient's ``rating`` client: its keystoneauth
adapter carries the session (token, TLS, retries, ``--os-endpoint`` or the
catalog's ``rating`` endpoint, interface and region). Only the path differs
between the two servers of the same API:

- ``cloudkitty`` (default): the API is CloudKitty's rating module configuration,
  ``{endpoint}/v1/rating/module_config/cloud_credit``;
- ``standalone``: the ``ovh-credit-api`` server, ``{endpoint}/v1``.

The choice is ``--os-cloud-credit-api``, ``OS_CLOUD_CREDIT_API`` or
``cloud_credit_api`` in clouds.yaml (see :mod:`ovh_credit_plugin.osc.plugin`).
"""

from __future__ import annotations

import decimal
import html
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ovh_credit_plugin import i18n
from ovh_credit_plugin.i18n import _, deferred

API_MODES = {
    "cloudkitty": "/v1/rating/module_config/cloud_credit",
    "standalone": "/v1",
}
DEFAULT_MODE = "cloudkitty"
# A list follows ``next`` links at most this many times: a server that always
# answers one would otherwise keep the command running for ever.
MAX_PAGES = 1000
# The API's largest page (docs/api.md "Lists"): a larger ``limit`` is a 400 there,
# so a command's ``--limit`` above it is fetched in pages of this size.
MAX_PAGE_SIZE = 1000
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")
_TLS_REASON = re.compile(r"\[SSL[^\]]*\][^'\"]*")
_OPENSSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)\s*$")
# keystoneauth's words for a request that got no answer (keystoneauth1/session.py),
# the URL in the first group: the line is ours, in the user's language.
_REFUSED = re.compile(r"Unable to establish connection to (\S+?): ")
_TIMED_OUT = re.compile(r"Request to (\S+) timed out")
_TLS_FAILED = re.compile(r"SSL exception connecting to (\S+?): ")
_BLANKS = re.compile(r"[ \t\r\n\f\v]+")
_PAGE_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_MARKUP = re.compile(r"<[^>]*>")


class CreditAPIError(Exception):
    """An error answer of the API, or no answer: one line for the terminal."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 text: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        #: The server's own words (title and detail), without the HTTP status and
        #: request id: what the dashboard shows a customer.
        self.text = text if text is not None else message
        #: ``Retry-After`` in seconds, when the server said when to try again.
        self.retry_after = retry_after
        #: When the server said nothing: our word for its status, untranslated
        #: (:func:`ovh_credit_plugin.i18n.translate` puts it in a user's language).
        self.reason: str | None = None


class UnexpectedAnswer(CreditAPIError):
    """The server answered, but not with the API's JSON: most often the endpoint is
    another service than the one the client's mode expects (a success's words name the
    setting to check, for whoever configured the client), or an error page of what
    stands in front of the API (a proxy's 502)."""


@dataclass(frozen=True)
class Request:
    """One HTTP request, relative to the session's endpoint."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def base_path(mode: str | None) -> str:
    try:
        return API_MODES[mode or DEFAULT_MODE]
    except KeyError:
        raise CreditAPIError(
            _("unknown cloud credit API %(mode)r: choose from %(modes)s")
            % {"mode": mode, "modes": ', '.join(API_MODES)}
        ) from None


def amount_text(text: str) -> str:
    """An amount argument as a plain decimal string (exact; never a float).

    Signs, decimals and limits are the server's to judge: it is the one place
    that knows the project's currency and the configured minimum and maximum.
    """
    try:
        value = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        raise ValueError(_("invalid amount %(text)r: use a decimal number, e.g. 50.00")
                         % {"text": text}) from None
    _sign, digits, exponent = value.as_tuple()
    # Written out, "1E+100000000" is a hundred million digits: past 64 either side of
    # the point, no amount the server takes.
    if not isinstance(exponent, int) or not -64 <= exponent <= 64 - len(digits):
        raise ValueError(_("invalid amount %(text)r: use a decimal number, e.g. 50.00")
                         % {"text": text})
    return format(value, "f")


def _quote(segment: str | int) -> str:
    return urllib.parse.quote(str(segment), safe="")


def _project(project_id: str | None) -> dict[str, str]:
    return {"project_id": project_id} if project_id else {}


class Requests:
    """Every request of the API (DESIGN.md §4 "REST API"), built from arguments."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")

    def _path(self, *segments: str | int) -> str:
        return "/".join([self.base, *(_quote(s) for s in segments)])

    def list_credits(self, *, project_id: str | None = None, status: str | None = None,
                     limit: int | None = None, marker: str | None = None) -> Request:
        return Request("GET", self._path("credits"),
                       params=_list_params(project_id, status, limit, marker))

    def forecast(self, *, project_id: str | None = None) -> Request:
        return Request("GET", self._path("forecast"), params=_project(project_id))

    # A credit or an order is addressed by its id alone: its project is the
    # ledger's, so the item routes take no ?project_id= (the API refuses it).
    def show_credit(self, credit_id: str) -> Request:
        return Request("GET", self._path("credits", credit_id))

    def void_credit(self, credit_id: str, reason: str) -> Request:
        return Request("POST", self._path("credits", credit_id, "void"),
                       body={"reason": reason})

    def activate_voucher(self, code: str, *, project_id: str | None = None) -> Request:
        return Request("POST", self._path("vouchers"), params=_project(project_id),
                       body={"code": code})

    def check_voucher(self, code: str, *, project_id: str | None = None) -> Request:
        return Request("GET", self._path("vouchers", code.strip()), params=_project(project_id))

    def create_order(self, amount: str, *, currency: str | None = None,
                     idempotency_key: str | None = None,
                     project_id: str | None = None) -> Request:
        body: dict[str, Any] = {"amount": amount_text(amount)}
        if currency:
            body["currency"] = currency.strip().upper()
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return Request("POST", self._path("orders"), params=_project(project_id), body=body,
                       headers=headers)

    def list_orders(self, *, project_id: str | None = None, status: str | None = None,
                    limit: int | None = None, marker: str | None = None) -> Request:
        return Request("GET", self._path("orders"),
                       params=_list_params(project_id, status, limit, marker))

    def show_order(self, order_id: str) -> Request:
        return Request("GET", self._path("orders", order_id))

    def cancel_order(self, order_id: str) -> Request:
        return Request("POST", self._path("orders", order_id, "cancel"))

    def pay_order(self, order_id: str, amount: str, currency: str) -> Request:
        return Request("POST", self._path("orders", order_id, "payment"),
                       body={"amount": amount_text(amount), "currency": currency.strip().upper()})

    def show_settlement(self, invoice_id: str, *, by_key: bool = False,
                        project_id: str | None = None) -> Request:
        """A settlement by its invoice's id (of the project), or by its settlement key."""
        if by_key:
            return Request("GET", self._path("settlements"), params={"key": invoice_id})
        return Request("GET", self._path("settlements"),
                       params={"invoice": invoice_id, **_project(project_id)})


def _list_params(project_id: str | None, status: str | None, limit: int | None,
                 marker: str | None) -> dict[str, str]:
    params = _project(project_id)
    if status:
        params["status"] = status
    if limit is not None:
        params["limit"] = str(min(limit, MAX_PAGE_SIZE))
    if marker:
        params["marker"] = marker
    return params


def next_marker(document: Mapping[str, Any]) -> str | None:
    """The ``marker`` of a list's ``next`` link, if there is one.

    Only the marker is taken from the link: its host and path are what the
    server believes its address is, which behind a proxy need not be ours.
    """
    for link in document.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") == "next":
            query = urllib.parse.urlsplit(str(link.get("href", ""))).query
            markers = urllib.parse.parse_qs(query).get("marker")
            if markers:
                return markers[-1]
    return None


def error_message(status: int, body: bytes, headers: Mapping[str, str]) -> CreditAPIError:
    """One line from an error answer: the API-SIG error when there is one.

    Other bodies come from what stands in front of the API (keystonemiddleware's
    401, CloudKitty's own errors, a proxy's HTML page): their message, a web page's
    title. A body that is not JSON is an :class:`UnexpectedAnswer`: not the API's
    words, and not for a customer to read.
    """
    import json

    code: str | None = None
    text = ""
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("errors"), list) \
            and document["errors"] and isinstance(document["errors"][0], dict):
        error = document["errors"][0]
        code = str(error.get("code") or "") or None
        title = str(error.get("title") or "").strip()
        detail = str(error.get("detail") or "").strip()
        if title and detail and detail != title:
            # Joined as the language of the server's words writes it (« Montant
            # invalide : ... » in French): the answer's, not the locale's (the
            # dashboard asks in its user's language, whatever the server's locale).
            text = i18n.translate(_TITLE_AND_DETAIL, answer_language(headers)) % {
                "title": title, "detail": detail}
        else:
            text = title or detail
        request_id = error.get("request_id")
        extra = [f"HTTP {status}"]
        if code:
            extra.append(code)
        if request_id:
            extra.append(_("request %(request_id)s") % {"request_id": request_id})
    else:
        if isinstance(document, dict):
            # CloudKitty (WSME) and keystonemiddleware shapes.
            fault = document.get("faultstring") or (document.get("error") or {})
            text = str(fault.get("message", "")) if isinstance(fault, dict) else str(fault)
        elif document is None:
            text = _page_words(body.decode("utf-8", "replace"))
        extra = [f"HTTP {status}"]
        request_id = headers.get("X-Openstack-Request-Id")
        if request_id:
            extra.append(_("request %(request_id)s") % {"request_id": request_id})
    retry_after = (headers.get("Retry-After") or "").strip()
    seconds = int(retry_after) if retry_after.isascii() and retry_after.isdigit() else None
    if retry_after and status in (429, 503):
        # Seconds, or an HTTP date (a proxy's), which takes no "s".
        extra.append(_("retry after %(seconds)ss") % {"seconds": i18n.count(seconds)}
                     if seconds is not None
                     else _("retry after %(date)s") % {"date": retry_after})
    # One line, but French's no-break spaces kept (str.split would take them too).
    line = _BLANKS.sub(" ", text).strip()[:300]
    # The server said nothing: our word for its status, translated here (the
    # command line's locale) and kept in English for the dashboard's (its user's).
    reason = None if line else _REASONS.get(status, _DEFAULT_REASON)
    if reason is not None:
        line = _(reason)
    kind = UnexpectedAnswer if document is None and body.strip() else CreditAPIError
    failure = kind(f"{line} ({', '.join(extra)})", status=status, code=code,
                   text=line, retry_after=seconds)
    failure.reason = reason
    return failure


_TITLE_AND_DETAIL = deferred("%(title)s: %(detail)s")


def no_answer(error: Exception) -> CreditAPIError:
    """One line in the user's language for a request that got no answer: nothing
    listens, no answer in time, TLS failed (keystoneauth's ConnectFailure,
    ConnectTimeout, SSLError).

    keystoneauth words them in English around urllib3's whole repr: the URL and
    the system's reason are what a user can act on, and the words around them are
    ours. A message of another shape (another keystoneauth) is its first part.
    """
    text = str(error)
    refused, timed_out, tls = (_REFUSED.match(text), _TIMED_OUT.match(text),
                               _TLS_FAILED.match(text))
    errno = _ERRNO.findall(text)
    system = errno[-1] if errno else _("no answer")
    if refused:
        return CreditAPIError(_("Unable to establish connection to %(url)s: %(reason)s")
                              % {"url": refused[1], "reason": system})
    if timed_out:
        return CreditAPIError(_("Request to %(url)s timed out") % {"url": timed_out[1]})
    if tls:
        found = _TLS_REASON.findall(text)
        openssl = _OPENSSL_SOURCE.sub("", found[-1]).strip() if found else ""
        return CreditAPIError(
            _("TLS error connecting to %(url)s: %(reason)s")
            % {"url": tls[1], "reason": openssl} if openssl else
            _("TLS error connecting to %(url)s") % {"url": tls[1]})
    return CreditAPIError(_("%(where)s: %(reason)s")
                          % {"where": text.split(": ", 1)[0], "reason": system})


def _page_words(text: str) -> str:
    """A web page's (a proxy's 502, a web server's 404) title, else its text without
    markup; any other text as it is."""
    if not text.lstrip().startswith("<"):
        return text
    title = _PAGE_TITLE.search(text)
    return html.unescape(title.group(1) if title else _MARKUP.sub(" ", text))


def answer_language(headers: Mapping[str, str]) -> str:
    """The language of an answer's words: its ``Content-Language`` (``fr-FR``
    gives ``fr_FR``, which gettext looks up as ``fr_FR`` then ``fr``); English,
    the API's own, when the answer does not say."""
    found = ""
    for name, value in headers.items():
        if str(name).lower() == "content-language":
            found = str(value).split(",", 1)[0].strip()
            break
    return found.replace("-", "_") or i18n.SOURCE_LANGUAGE


_REASONS = {400: deferred("Bad request"), 401: deferred("Unauthorized: no valid token"),
            403: deferred("Forbidden"), 404: deferred("Not found"), 409: deferred("Conflict"),
            413: deferred("Request too large"), 429: deferred("Too many requests"),
            500: deferred("Server error"), 502: deferred("Bad gateway"),
            503: deferred("Service unavailable"), 504: deferred("Gateway timeout")}
_DEFAULT_REASON = deferred("error")


def _has_header(adapter: Any, name: str) -> bool:
    """Whether the adapter adds header ``name`` to every request itself."""
    added = getattr(adapter, "additional_headers", None) or {}
    return any(str(key).lower() == name.lower() for key in added)


class CreditClient:
    """Sends :class:`Request` objects through a keystoneauth adapter."""

    def __init__(self, adapter: Any, mode: str | None = None, *,
                 mode_setting: str = "--os-cloud-credit-api"):
        self.adapter = adapter
        self.mode = mode or DEFAULT_MODE
        #: Where ``mode`` came from, named when an answer suggests it is wrong.
        self.mode_setting = mode_setting
        self.requests = Requests(base_path(self.mode))

    def send(self, request: Request) -> dict[str, Any]:
        from keystoneauth1 import exceptions as ks_exceptions

        headers = {"Accept": "application/json", **request.headers}
        # The server's words (errors, descriptions) in the user's language: the
        # adapter's when its owner knows it (the dashboard: the Horizon user's),
        # else the process locale's (a command line).
        language = i18n.accept_language()
        if language and not _has_header(self.adapter, "Accept-Language"):
            headers["Accept-Language"] = language
        kwargs: dict[str, Any] = {"headers": headers, "raise_exc": False}
        if request.params:
            kwargs["params"] = request.params
        if request.body is not None:
            kwargs["json"] = request.body
        try:
            response = self.adapter.request(request.path, request.method, **kwargs)
        except (ks_exceptions.ConnectFailure, ks_exceptions.ConnectTimeout,
                ks_exceptions.SSLError) as error:
            raise no_answer(error) from error
        except ks_exceptions.ClientException as error:
            # Mostly no request sent (no rating endpoint in the catalog, bad
            # credentials for the token request), or one requests failed otherwise
            # (UnknownConnectionError): keystoneauth's own message.
            raise CreditAPIError(" ".join(str(error).split())) from error
        if response.status_code >= 400:
            raise error_message(response.status_code, response.content, response.headers)
        try:
            document = response.json()
        except ValueError:
            raise UnexpectedAnswer(
                _("the server answered HTTP %(status_code)s with a body that is not JSON (is "
                  "%(setting)s %(mode)r right for this endpoint?)")
                % {"status_code": response.status_code, "setting": self.mode_setting,
                   "mode": self.mode}
            ) from None
        if not isinstance(document, dict):
            raise UnexpectedAnswer(_("unexpected answer from the server: %(answer)s")
                                   % {"answer": str(document)[:100]})
        return document

    def pages(self, request: Request, key: str, limit: int | None = None
              ) -> Iterator[dict[str, Any]]:
        """Every item of a list, following ``next`` links (up to ``limit`` items)."""
        seen = 0
        for _page in range(MAX_PAGES):
            document = self.send(request)
            items = document.get(key)
            if not isinstance(items, list):
                raise UnexpectedAnswer(_("unexpected answer from the server: no %(key)r list")
                                       % {"key": key})
            for item in items:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            marker = next_marker(document)
            if marker is None or (limit is not None and seen >= limit) or not items:
                return
            params = dict(request.params, marker=marker)
            request = Request(request.method, request.path, params=params)
        raise CreditAPIError(_("more than %(pages)s pages: use --limit and --marker")
                             % {"pages": i18n.count(MAX_PAGES)})
