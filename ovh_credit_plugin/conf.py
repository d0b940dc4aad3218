"""Configuration options, registered on the host's ConfigOpts.

Nothing is registered at import time: a host (CloudKitty, the CLI, a test)
calls :func:`register_opts` on its own ``ConfigOpts`` object, and
``oslo-config-generator --namespace ovh_credit_plugin`` reads :func:`list_opts`.
"""

from __future__ import annotations

import difflib
import glob
import math
import os
import re
import string
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any, NamedTuple, cast

from oslo_config import cfg, types

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.i18n import _

DEFAULT_SQLITE_CONNECTION = "sqlite:///ovh-credit-ledger.sqlite"

#: An amount option's value: one amount (for ``default_currency``), or amounts by currency.
CurrencyAmounts = Decimal | Mapping[str, Decimal]


class AmountByCurrency(types.String):
    """One positive exact amount (``"5"``), or one per currency (``"EUR:5,JPY:500"``).

    A single amount is read as a ``Decimal``: it is for ``default_currency``,
    another option, whose decimals :func:`purchase_limits` checks. A list is
    read as a mapping of ISO 4217 codes to amounts, each checked here against
    its own currency's decimals.
    """

    def __init__(self, option: str) -> None:
        super().__init__(type_name="amount, or CURRENCY:AMOUNT pairs")
        self.option = option  # named in its errors, as the operator wrote it

    def __call__(self, value: Any) -> CurrencyAmounts:  # type: ignore[override]
        # Here, not at the top: the command line's --help reads the options
        # without pydantic, which the money module brings (issue 15).
        from ovh_credit_plugin import money

        if isinstance(value, Decimal):
            return value
        if isinstance(value, Mapping):  # an override set by code: checked like a list
            return self._pairs([(str(code), amount) for code, amount in value.items()])
        text: str = super().__call__(value)
        if ":" not in text:
            return money.parse_amount(text, field=self.option)
        pairs = []
        for item in text.split(","):
            code, colon, amount = item.strip().partition(":")
            if not colon:
                raise ValueError(_("%(option)s: %(item)r is not CURRENCY:AMOUNT (e.g. "
                                   "EUR:5,JPY:500)")
                                 % {"option": self.option, "item": item.strip()})
            pairs.append((code.strip(), amount.strip()))
        return self._pairs(pairs)

    def _pairs(self, pairs: Iterable[tuple[str, Any]]) -> dict[str, Decimal]:
        from ovh_credit_plugin import money

        amounts: dict[str, Decimal] = {}
        for code, amount in pairs:
            try:
                places = money.currency_places(code)
            except exceptions.InvalidCurrency as error:
                raise ValueError(_("%(option)s: %(error)s")
                                 % {"option": self.option, "error": error}) from None
            if code in amounts:
                raise ValueError(_("%(option)s: %(code)s is given twice")
                                 % {"option": self.option, "code": code})
            amounts[code] = money.parse_amount(amount, places=places,
                                               field=f"{self.option} {code}")
        return amounts


#: The fields a payment URL template may use.
PAYMENT_URL_FIELDS = frozenset({"order_id", "project_id", "amount", "currency"})


class PaymentUrlTemplate(types.String):
    """A ``str.format`` template of plain :data:`PAYMENT_URL_FIELDS` names."""

    def __call__(self, value: Any) -> str:  # type: ignore[override]
        template: str = super().__call__(value)
        # Plain field names only: str.format also follows attributes and indexes
        # ("{order_id.__class__}"), which would put Python internals in a URL.
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(template)
                      if name is not None]
        except ValueError as error:  # unbalanced braces
            raise ValueError(_("not a valid template: %(error)s")
                             % {"error": error}) from None
        for name in fields:
            if name not in PAYMENT_URL_FIELDS:
                known = ", ".join("{" + f + "}" for f in sorted(PAYMENT_URL_FIELDS))
                raise ValueError(_("unknown field {%(name)s}: use %(known)s")
                                 % {"name": name, "known": known})
        try:
            url = template.format(order_id="o", project_id="p", amount="1", currency="EUR")
        except ValueError as error:  # a bad format spec
            raise ValueError(_("not a valid template: %(error)s")
                             % {"error": error}) from None
        # Every order a customer gets carries this link: an empty value, or a
        # link the payment page cannot tie to the order, is no payment page.
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(_("not an http(s) URL: %(template)r") % {"template": template})
        if "order_id" not in fields:
            raise ValueError(_("%(template)r has no {order_id}: the payment page could not "
                               "tell which order is paid") % {"template": template})
        return template


class FiniteFloat(types.Float):
    """A number of seconds: oslo.config's float, but ``inf`` and ``nan`` are refused.

    ``types.Float`` reads them, and ``nan`` passes every ``min``: ``timeout = inf``
    would break every catalog call instead of meaning "no limit".
    """

    def __init__(self, option: str, *, min: float | None = None) -> None:
        super().__init__(min=min)
        self.option = option  # named in its errors, as the operator wrote it

    def __call__(self, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = 0.0  # not a number at all: types.Float says so
        if not math.isfinite(number):
            raise ValueError(_("%(field)s must be a finite number, not %(value)r")
                             % {"field": self.option, "value": value})
        return cast(float, super().__call__(value))


def error_message(error: Exception) -> str:
    """oslo.config's message on one line, naming the file instead of its LocationInfo repr."""
    text = str(error).splitlines()[0]
    return re.sub(r"LocationInfo\(location=<[^>]*>, detail='([^']*)'\)", r"\1", text)


class PurchaseLimit(NamedTuple):
    """The smallest and largest credit purchase in one currency, excluding tax."""

    minimum: Decimal
    maximum: Decimal


class PurchaseLimits(Mapping[str, PurchaseLimit]):
    """Limits by currency, unchangeable and hashable (the service's settings are both)."""

    def __init__(self, limits: Mapping[str, PurchaseLimit]) -> None:
        self._limits = dict(sorted(limits.items()))

    def __getitem__(self, currency: str) -> PurchaseLimit:
        return self._limits[currency]

    def __iter__(self) -> Iterator[str]:
        return iter(self._limits)

    def __len__(self) -> int:
        return len(self._limits)

    def __hash__(self) -> int:
        return hash(tuple(self._limits.items()))

    def __repr__(self) -> str:
        return f"PurchaseLimits({self._limits!r})"


#: How the purchase options are written per currency, in errors that ask for them.
PURCHASE_LIMITS_EXAMPLE = "EUR:5,JPY:500"


def purchase_limits(
    minimum: CurrencyAmounts, maximum: CurrencyAmounts, default_currency: str
) -> PurchaseLimits:
    """The purchase limits by currency: the rules across purchase options.

    Each option alone is checked by its type. A single amount is for
    ``default_currency``; every currency must have both bounds, the smallest
    not above the largest. A currency without limits is not sold: the
    service refuses an order in it.
    """
    from ovh_credit_plugin import money

    bounds: dict[str, dict[str, Decimal]] = {}
    for name, value in (("purchase_min_amount", minimum), ("purchase_max_amount", maximum)):
        if isinstance(value, Decimal):
            # Written for the default currency: a bound it cannot express
            # (5.001 EUR) is a typo, not a limit.
            try:
                money.parse_amount(value, places=money.currency_places(default_currency),
                                   field=name)
            except exceptions.InvalidInput as error:
                raise exceptions.ConfigError(_("[cloud_credit] %(error)s")
                                             % {"error": error}) from None
            bounds[name] = {default_currency: value}
        else:
            bounds[name] = dict(value)
    lows, highs = bounds["purchase_min_amount"], bounds["purchase_max_amount"]
    for has, name, lacks, other in (
        (lows, "purchase_min_amount", highs, "purchase_max_amount"),
        (highs, "purchase_max_amount", lows, "purchase_min_amount"),
    ):
        missing = sorted(set(has) - set(lacks))
        if missing:
            raise exceptions.ConfigError(
                _("[cloud_credit] %(name)s has a limit for %(missing)s, %(other)s has none: "
                  "every currency sold needs both (e.g. %(example)s; a single amount is for "
                  "default_currency %(default_currency)s)")
                % {"name": name, "missing": ", ".join(missing), "other": other,
                   "example": PURCHASE_LIMITS_EXAMPLE, "default_currency": default_currency}
            )
    for code in sorted(lows):
        if lows[code] > highs[code]:
            raise exceptions.ConfigError(
                _("[cloud_credit] purchase_min_amount is above purchase_max_amount for "
                  "%(code)s (%(lowest)s > %(highest)s)")
                % {"code": code, "lowest": money.to_str(lows[code], code),
                   "highest": money.to_str(highs[code], code)}
            )
    return PurchaseLimits({code: PurchaseLimit(lows[code], highs[code]) for code in lows})


cloud_credit_group = cfg.OptGroup(
    name="cloud_credit",
    title="Cloud credit ledger",
    help="Prepaid cloud credit and vouchers applied to Public Cloud charges.",
)

voucher_catalog_group = cfg.OptGroup(
    name="voucher_catalog",
    title="Voucher catalog",
    help="Where voucher codes are validated and redeemed.",
)

cloud_credit_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL of the ledger database. When unset: the [database] "
        "connection of the same configuration (CloudKitty's own database, for the "
        "plugin and for ovh-credit run with cloudkitty.conf); without one, the SQLite "
        f"file '{DEFAULT_SQLITE_CONNECTION.removeprefix('sqlite:///')}' in the working "
        "directory. SQLite serves one host only; use PostgreSQL "
        "(postgresql+psycopg://) or MariaDB (mysql+pymysql://) when several workers "
        "or nodes share the ledger.",
    ),
    cfg.IntOpt(
        "pool_size",
        default=5,
        min=1,
        help="Connections kept open per process (PostgreSQL and MariaDB).",
    ),
    cfg.IntOpt(
        "max_overflow",
        default=10,
        min=0,
        help="Extra connections allowed above pool_size under load.",
    ),
    cfg.IntOpt(
        "pool_recycle",
        default=3600,
        min=-1,
        help="Seconds after which a pooled connection is replaced (0 or -1: never).",
    ),
    cfg.IntOpt(
        "sqlite_busy_timeout",
        default=30,
        min=0,
        help="Seconds a SQLite writer waits for another writer before failing.",
    ),
    cfg.IntOpt(
        "max_transaction_attempts",
        default=8,
        min=1,
        help="Attempts of one ledger transaction on deadlocks, serialization "
        "failures and busy databases, with jittered backoff between them.",
    ),
    cfg.StrOpt(
        "default_currency",
        default="EUR",
        regex=r"^[A-Z]{3}$",
        help="ISO 4217 currency of a project whose currency is not set yet "
        "(fixed at its first credit or order).",
    ),
    cfg.IntOpt(
        "purchased_credit_validity_months",
        default=13,
        min=1,
        max=120,
        help="Calendar months purchased credit stays valid after payment "
        "(clamped at month end). The dashboard panel tells customers this from "
        "Horizon's CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS: set both.",
    ),
    cfg.Opt(
        "purchase_min_amount",
        type=AmountByCurrency("purchase_min_amount"),
        default="5",
        help="Smallest credit purchase, excluding tax. One amount is for "
        "default_currency (at most as many decimals as it has); per currency, "
        "write CURRENCY:AMOUNT pairs, e.g. EUR:5,JPY:500 (each at most as many "
        "decimals as its currency has). An order in a currency that has no limits "
        "here and in purchase_max_amount is refused.",
    ),
    cfg.Opt(
        "purchase_max_amount",
        type=AmountByCurrency("purchase_max_amount"),
        default="100000",
        help="Largest credit purchase, excluding tax: one amount for "
        "default_currency, or CURRENCY:AMOUNT pairs, e.g. EUR:100000,JPY:10000000 "
        "(see purchase_min_amount). Every currency needs both limits.",
    ),
    cfg.IntOpt(
        "order_lapse_days",
        default=7,
        min=1,
        max=3660,
        help="Days after which an unpaid purchase order lapses (status expired).",
    ),
    cfg.Opt(
        "payment_url_template",
        type=PaymentUrlTemplate(),
        default="https://www.ovh.com/cgi-bin/order/displayOrder.cgi?orderId={order_id}",
        help="Payment page of a purchase order: an http(s) URL naming {order_id}. "
        "Fields: {order_id}, {project_id}, {amount}, {currency}.",
    ),
    cfg.IntOpt(
        "clock_skew_allowance",
        default=300,
        min=0,
        max=3600,
        help="Seconds another node's clock may differ from this one's. A change "
        "dated up to this much before the order or credit it acts on existed (a "
        "payment webhook) is taken at that creation time; a change dated later "
        "than now by more than this (--at in the future) is refused.",
    ),
    cfg.IntOpt(
        "voucher_max_failed_attempts",
        default=5,
        min=1,
        help="Failed voucher attempts (activations, and checks made for the project) a "
        "project may make within voucher_attempt_window before further attempts are "
        "refused; 'ovh-credit voucher unblock' ends a project's window early.",
    ),
    cfg.IntOpt(
        "voucher_attempt_window",
        default=3600,
        min=1,
        max=366 * 86400,
        help="Seconds over which failed voucher attempts are counted (at most a year).",
    ),
    cfg.IntOpt(
        "forecast_window_days",
        default=30,
        min=1,
        max=366,
        help="Days of settled history the forecast's burn rate is the daily average "
        "of: the credit applied to the project's charges settled in the last "
        "forecast_window_days days, divided by forecast_window_days.",
    ),
    cfg.ListOpt(
        "forecast_warning_days",
        item_type=types.Integer(min=1, max=3660),
        default=[30, 7],
        help="The forecast warns about each credit that will still hold money at its "
        "end (at the burn rate) when that end is at most this many days away; "
        "several values are thresholds (a warning names the smallest one it is "
        "within). The notify-expiring job of ovh-credit sends each warning as the "
        "cloud_credit.credit.expiring notification, once per credit and threshold. "
        "Empty: no warnings.",
    ),
    cfg.IntOpt(
        "expiry_warning_send_timeout",
        default=3600,
        min=60,
        max=7 * 86400,
        help="Seconds a notify-expiring run may take to send the warnings it recorded. "
        "A warning still unsent after that (plus clock_skew_allowance, for another "
        "node's clock) belongs to a run that died between recording and sending it "
        "(killed, out of memory, a reboot): the next run sends it, if it is still due. "
        "Longer than any run takes to send a batch (a run still sending after it may "
        "see its warnings sent twice).",
    ),
]

api_group = cfg.OptGroup(
    name="api",
    title="REST API (ovh-credit-api)",
    help="The standalone REST API server. Inside CloudKitty the API is served by "
    "CloudKitty's own API (its [api] and auth_strategy options); these options are "
    "read by ovh-credit-api only.",
)

api_opts: list[cfg.Opt] = [
    cfg.HostAddressOpt(
        "bind_host",
        default="127.0.0.1",
        help="Address ovh-credit-api listens on.",
    ),
    cfg.PortOpt(
        "bind_port",
        default=8890,
        help="TCP port ovh-credit-api listens on (0: any free port).",
    ),
    cfg.StrOpt(
        "auth_strategy",
        default="keystone",
        choices=[
            ("keystone", "Validate X-Auth-Token with keystonemiddleware ([keystone_authtoken])."),
            ("noauth", "Trust the X-Project-Id, X-User-Id and X-Roles headers: development "
             "only, anyone reaching the port acts as any project."),
        ],
        help="How ovh-credit-api authenticates callers.",
    ),
    cfg.IntOpt(
        "max_request_body_size",
        default=65536,
        min=1,
        help="Largest request body accepted, in bytes; a larger one is refused with 413.",
    ),
]

voucher_catalog_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "driver",
        default="file",
        help="Voucher catalog driver, from the ovh_credit_plugin.voucher_catalogs "
        "entry points: 'file' (a local JSON file, redemptions tracked in the ledger "
        "database) or 'http' (the remote voucher catalog).",
    ),
    cfg.StrOpt(
        "file_path",
        default="vouchers.json",
        help="JSON file of the 'file' driver: {\"vouchers\": [Voucher, ...]}. "
        "Read again when it changes (checked on every call, no restart "
        "needed); replace it by renaming a complete new file over it.",
    ),
    cfg.URIOpt(
        "endpoint",
        schemes=["http", "https"],
        help="Base URL of the remote voucher catalog ('http' driver).",
    ),
    cfg.StrOpt(
        "auth_token",
        secret=True,
        help="Sent as the X-Auth-Token header to the voucher catalog.",
    ),
    cfg.Opt(
        "timeout",
        type=FiniteFloat("timeout", min=0.1),
        default=10.0,
        help="Total seconds one voucher catalog operation may take, retries included.",
    ),
    cfg.Opt(
        "connect_timeout",
        type=FiniteFloat("connect_timeout", min=0.1),
        default=3.05,
        help="Seconds to resolve the voucher catalog's host name, then seconds to "
        "establish a connection to it (each capped by what is left of timeout).",
    ),
    cfg.IntOpt(
        "retries",
        default=3,
        min=0,
        help="Retries of a failed catalog call (429, 5xx, connection errors, timeouts).",
    ),
    cfg.Opt(
        "max_retry_after",
        type=FiniteFloat("max_retry_after", min=0),
        default=30.0,
        help="Longest Retry-After the client honours, in seconds.",
    ),
    cfg.BoolOpt(
        "verify",
        default=True,
        help="Verify the catalog's TLS certificate.",
    ),
    cfg.StrOpt(
        "ca_file",
        help="CA bundle used to verify the catalog's TLS certificate.",
    ),
    cfg.StrOpt(
        "cert_file",
        help="Client certificate (PEM) presented to the catalog.",
    ),
    cfg.StrOpt(
        "key_file",
        help="Private key (PEM) of the client certificate.",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the plugin's options on a host's ConfigOpts (idempotent).

    Not the ``[api]`` options: they belong to ``ovh-credit-api`` alone
    (:func:`register_api_opts`), and a host such as CloudKitty has an
    ``[api]`` section of its own.
    """
    for group, opts in list_opts():
        if group.name == api_group.name:
            continue
        # A fresh OptGroup per ConfigOpts: oslo.config keeps overrides in the
        # group object, which must not leak from one ConfigOpts to another.
        if group.name not in conf:
            conf.register_group(cfg.OptGroup(name=group.name, title=group.title, help=group.help))
        conf.register_opts(opts, group=group.name)


def register_api_opts(conf: cfg.ConfigOpts) -> None:
    """Register the standalone server's options on ``conf`` (idempotent): ``[api]``,
    and ``[oslo_middleware] enable_proxy_headers_parsing``, oslo.middleware's own
    option (the ``api`` extra installs it), which ``ovh-credit-api`` reads too
    (docs/api.md, "Behind a TLS-terminating proxy")."""
    from oslo_middleware import http_proxy_to_wsgi

    if api_group.name not in conf:
        conf.register_group(cfg.OptGroup(name=api_group.name, title=api_group.title,
                                          help=api_group.help))
    conf.register_opts(api_opts, group=api_group.name)
    conf.register_opts(http_proxy_to_wsgi.OPTS, group="oslo_middleware")


def ledger_connection(conf: cfg.ConfigOpts) -> str | None:
    """``[cloud_credit] connection``, else the host's ``[database] connection``, else None."""
    url = conf.cloud_credit.connection
    if url:
        return str(url)
    if "database" in conf and "connection" in conf.database:
        return str(conf.database.connection) if conf.database.connection else None
    return None


def uses_fallback_ledger(conf: cfg.ConfigOpts) -> bool:
    """True when no option names the ledger: ``./ovh-credit-ledger.sqlite`` is used.

    ``connection =`` left empty names a ledger, not given: a ConfigError, not a
    reason to open another.
    """
    if ledger_connection(conf) is not None:
        return False
    if conf.cloud_credit.connection == "":
        raise exceptions.ConfigError(
            _("[cloud_credit] connection is empty: write the ledger's URL, or remove the "
              "line to use %(path)s in the working directory")
            % {"path": DEFAULT_SQLITE_CONNECTION.removeprefix("sqlite:///")}
        )
    return True


def _closest(name: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    found = difflib.get_close_matches(name.lower(), sorted(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def not_utf8(paths: Iterable[str]) -> exceptions.ConfigError:
    """The error for a configuration file that is not UTF-8 (oslo.config raises a bare
    UnicodeDecodeError, naming no file): the first of ``paths`` that is not."""
    for path in paths:
        try:
            with open(path, "rb") as handle:
                handle.read().decode("utf-8")
        except UnicodeDecodeError as error:
            return exceptions.ConfigError(
                _("%(path)s is not UTF-8 text (byte %(position)d)")
                % {"path": path, "position": error.start})
        except OSError:
            continue
    return exceptions.ConfigError(_("a configuration file is not UTF-8 text"))


def config_paths(conf: cfg.ConfigOpts) -> list[str]:
    """The files oslo.config read: ``--config-file``'s, then each config directory's
    ``*.conf`` in name order (``--config-dir``), as oslo.config reads them."""
    found = list(conf.config_file)
    for directory in conf.config_dirs or ():
        found += directory_files(directory)
    return found


def directory_files(directory: str) -> list[str]:
    """A config directory's files, in the order oslo.config reads them."""
    return sorted(glob.glob(os.path.join(directory, "*.conf")))


def check_config_files(paths: Iterable[str], *, api: bool = False) -> None:
    """Refuse an unknown option in our sections, or a section named almost like ours.

    A typo there is silent in oslo.config: ``[cloud-credit]`` or ``conection =``
    would leave ``connection`` unset, and the CLI would open an empty ledger
    of its own in the working directory. Only our sections are checked, and
    sections whose name is close to ours: the file may be a host's
    (``cloudkitty.conf``, whose many other sections are the host's business).
    ``[api]`` is ours only for ``ovh-credit-api`` (``api=True``): in a host's
    file it is the host's own (CloudKitty's ``[api] port``).
    """
    known = {group.name: {opt.dest for opt in opts} for group, opts in list_opts()
             if api or group.name != api_group.name}
    for path in paths:
        sections: dict[str, dict[str, Any]] = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.Error):
            continue  # oslo.config reports an unreadable or unparsable file itself
        for section, options in sections.items():
            if section in known:
                for option in options:
                    if option not in known[section]:
                        guess = _closest(option, known[section])
                        values = {"path": path, "option": option, "section": section,
                                  "guess": guess}
                        raise exceptions.ConfigError(
                            _("%(path)s: unknown option %(option)r in [%(section)s] "
                              "(did you mean %(guess)r?)") % values
                            if guess else
                            _("%(path)s: unknown option %(option)r in [%(section)s]") % values
                        )
                continue
            normalized = re.sub(r"[^a-z]", "", section.lower())
            guess = _closest(section, known, cutoff=0.8) or next(
                (name for name in known if name.replace("_", "") == normalized), None)
            if guess is not None:
                raise exceptions.ConfigError(
                    _("%(path)s: unknown section [%(section)s] (did you mean [%(guess)s]?)")
                    % {"path": path, "section": section, "guess": guess}
                )


def register_host_database_opt(conf: cfg.ConfigOpts) -> None:
    """Let a stand-alone tool read a host's ``[database] connection`` (oslo.db's name).

    ``ovh-credit`` run with ``cloudkitty.conf`` then finds the same ledger as
    the plugin inside CloudKitty, instead of a SQLite file of its own.
    """
    if "database" in conf and "connection" in conf.database:
        return
    conf.register_opt(
        cfg.StrOpt("connection", secret=True, help="The host's own database (oslo.db)."),
        group="database",
    )


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """Entry point of ``oslo-config-generator``."""
    return [
        (cloud_credit_group, cloud_credit_opts),
        (voucher_catalog_group, voucher_catalog_opts),
        (api_group, api_opts),
    ]
