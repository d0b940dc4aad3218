"""CloudKitty rating processor: prepaid cloud credit applied to rated usage.

CloudKitty (25.x) loads this class through the ``cloudkitty.rating.processors``
entry point ``cloud_credit``. Only CloudKitty's stevedore imports this module,
so it may import CloudKitty at the top; nothing else in the package does.

What happens to one rated period (a ``DataFrame`` of one scope):

* each metric type of the frame becomes one line of a
  :class:`~ovh_credit_plugin.service.Charge` (id and product = metric type,
  amount = its points' prices floored to the ledger's scale, summed, less its
  discounts), keyed ``cloudkitty/<scope>/<start>/<end>`` and settled at the
  period's start by the same service and allocation as invoices: one ledger
  entry per credit and metric type, not per point;
* what credit paid a type is spread over its points in frame order; covered
  points get a lower price (as ``DataPoint.set_price`` would) and say in
  their metadata what credit paid; no metric type is ever added (CloudKitty would
  fail the period forever with a ``KeyError`` on a type metrics.yml lacks);
* a period rated again (CloudKitty reprocessing) with the same prices debits
  nothing; with new prices the earlier debits are reversed and credit applied
  anew, in one transaction (so is a period an earlier version settled with one
  line per point, ``<type>/<index>``: its lines differ);
* points CloudKitty will not store (its ``skip_datapoints_expression``, which it
  applies only after every rating module) get no credit: credit pays only for
  what is billed;
* any failure (ledger database down, schema not migrated) raises: CloudKitty
  then leaves the period unrated and retries it on its next loop. Rating it
  without credit would charge the customer what credit should have paid.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import os
import threading
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from cloudkitty import dataframe, rating
from cloudkitty import utils as ck_utils
from cloudkitty.db import api as ck_db_api
from oslo_config import cfg
from stevedore import extension

from ovh_credit_plugin import collector, contracts, exceptions, money
from ovh_credit_plugin.allocation import Line
from ovh_credit_plugin.conf import register_opts
from ovh_credit_plugin.hosts import cloudkitty_db
from ovh_credit_plugin.i18n import _
from ovh_credit_plugin.service import Charge, CreditService

LOG = logging.getLogger(__name__)

MODULE_NAME = "cloud_credit"
PROCESSORS_NAMESPACE = "cloudkitty.rating.processors"
ZERO = money.ZERO

#: Metadata keys set on a covered point (strings: storage keeps them as JSON).
CREDIT_APPLIED = "credit_applied"
CREDIT_IDS = "credit_ids"
PRICE_BEFORE_CREDIT = "price_before_credit"

# The immutable mapping type DataPoint's constructor stores groupby and metadata in.
_Immutable = type(dataframe.DataPoint("unit", 0, 0, {}, {}).metadata)
_make_point = dataframe.DataPoint._make

# Modules that never price anything: running before or after them is the same.
_PASS_THROUGH_MODULES = frozenset({"noop"})
# How often one process re-reads the module priorities to warn about the order.
_ORDER_CHECK_INTERVAL = 300.0


# -- one service per ledger URL and process --------------------------------------

# CloudKitty builds a new Worker, hence new processor objects, for every scope
# of every loop: the service (and its connection pool) lives at module level,
# one per ledger URL, shared by the threads of this process.
_services: dict[str, CreditService] = {}
_services_lock = threading.Lock()


def _service_for(conf: cfg.ConfigOpts) -> CreditService:
    url = cloudkitty_db.ledger_connection(conf)
    with _services_lock:
        service = _services.get(url)
        if service is None:
            service = CreditService.from_conf(conf, connection=url)
            _services[url] = service
        return service


def close_services() -> None:
    """Dispose of the cached services' connection pools (tests, clean shutdown)."""
    with _services_lock:
        for service in _services.values():
            service.close()
        _services.clear()


# -- run order -----------------------------------------------------------------

class _Throttle:
    """True at most once per ``interval`` seconds, across the threads of a process."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: float | None = None

    def due(self) -> bool:
        with self._lock:
            clock = time.monotonic()
            if self._last is not None and clock - self._last < self.interval:
                return False
            self._last = clock
            return True

    def reset(self) -> None:
        with self._lock:
            self._last = None


# Checked on the first period a process rates, then every few minutes (a
# priority changed through the API applies from CloudKitty's next loop).
_order_check = _Throttle(_ORDER_CHECK_INTERVAL)


def reset_order_check() -> None:
    """Make the next ``process()`` check the run order again (tests)."""
    _order_check.reset()


def modules_not_before(module_name: str) -> list[tuple[str, int]]:
    """Enabled rating modules that do not run before ``module_name``.

    CloudKitty runs the module with the highest priority first; a pricing
    module with a priority lower than or equal to ours may run after us, and
    its prices then get no credit. Reads CloudKitty's module table only (the
    processors are not instantiated: their constructors may do I/O).
    """
    info = ck_db_api.get_instance().get_module_info()
    ours = int(info.get_priority(module_name))
    found = []
    installed: extension.ExtensionManager[Any] = extension.ExtensionManager(PROCESSORS_NAMESPACE)
    for ext in installed:
        name = getattr(ext.plugin, "module_name", None) or ext.name
        if name == module_name or name in _PASS_THROUGH_MODULES:
            continue
        if not info.get_state(name):
            continue
        priority = int(info.get_priority(name))
        if priority <= ours:
            found.append((name, priority))
    return sorted(found)


# -- frames <-> charges ------------------------------------------------------------


def _price(value: Any) -> Decimal:
    # A module before us may have stored a float through set_price (which does
    # not coerce): go through str, as DataPoint itself does.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    return Decimal(value)


def _plain(value: Decimal) -> str:
    """Exact, without trailing zeros nor exponent: hashmap's 3.000000000000000000000000000 -> 3."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "") else text


def _floors(points: Iterable[Any], floors: dict[str, Decimal]) -> tuple[Decimal, Decimal]:
    """(sum of the positive prices floored one by one, sum of the negative ones negated)."""
    total = ZERO
    discount = ZERO
    for point in points:
        price = point.price
        if type(price) is not Decimal:
            price = _price(price)
        if price > ZERO:
            text = str(price)
            amount = floors.get(text)
            if amount is None:
                amount = floors[text] = money.floor_to_ledger(price)
            total += amount
        elif price < ZERO:
            discount -= price
    return total, discount


def frame_lines(frame: Any, floors: dict[str, Decimal] | None = None) -> list[Line]:
    """The charge lines of a rated frame: one per metric type, in frame order.

    Line id and product = the metric type; amount = the sum of the type's
    prices, each floored to the ledger's scale (CloudKitty prices may carry
    more decimals; credit never covers more than is due), less the type's
    negative prices (discounts a pricing rule produced). A discount larger
    than its own type lowers the other types' lines, last first, so that
    credit never covers more than the period's net due. A type that comes to
    zero has no line. :func:`apply_settlement` spreads each type's shares over
    its points.

    ``floors`` caches each distinct price's floor by its exact text (points of
    one frame often share a price; a ``Decimal``'s own hash costs more than the
    quantize it would save): pass the same dict to :func:`apply_settlement`.
    """
    if floors is None:
        floors = {}
    lines: list[Line] = []
    leftover = ZERO  # discount not absorbed by its own type
    for metric_type, points in frame.itertypes():
        try:
            amount, discount = _floors(points, floors)
            typed = [Line(metric_type, metric_type, amount)] if amount > ZERO else []
            typed, rest = _lower(typed, discount)
        except decimal.InvalidOperation:
            # NaN, an infinity, or more digits than any amount has (our
            # context traps these): what docs/cloudkitty.md promises for an
            # absurd amount, naming the type, rather than a bare
            # "[<class 'decimal.InvalidOperation'>]" in CloudKitty's log.
            raise exceptions.InvalidAmount(
                _("rated period %(start)s/%(end)s: metric type %(type)s has a price that is "
                  "not a usable amount (not a number, infinite or far too large): not "
                  "settled; fix its pricing rule")
                % {"start": contracts.isoformat(frame.start),
                   "end": contracts.isoformat(frame.end), "type": metric_type}
            ) from None
        leftover += rest
        lines.extend(typed)
    lines, _unused = _lower(lines, leftover)
    return lines


def _lower(lines: list[Line], discount: Decimal) -> tuple[list[Line], Decimal]:
    """Take ``discount`` off ``lines``, last line first; returns what was left over."""
    if discount <= ZERO:
        return lines, ZERO
    # Round the discount up to the ledger's scale: never cover more than due.
    rest = money.floor_to_ledger(discount)
    if rest < discount:
        rest += money.LEDGER_QUANTUM
    kept: list[Line] = []
    for line in reversed(lines):
        take = min(rest, line.amount)
        rest -= take
        if line.amount > take:
            kept.append(Line(line.id, line.product, line.amount - take))
    kept.reverse()
    return kept, rest


def period_key(scope: str, start: dt.datetime, end: dt.datetime) -> tuple[str, str]:
    """The settlement key and invoice id of one rated period of one scope."""
    # UTC ISO: the Worker's frames are in local time, the ReprocessingWorker's
    # in UTC; both must give the same key for the same period.
    period = f"{contracts.isoformat(start)}/{contracts.isoformat(end)}"
    return f"{_key_prefix(scope)}{period}", period


def _key_prefix(scope: str) -> str:
    """What every period key of ``scope`` starts with."""
    return f"cloudkitty/{scope}/"


def _neighbourhood(scope: str, end: dt.datetime) -> tuple[str, str]:
    """Key bounds, (low, high) exclusive, of the scope's periods starting before ``end``.

    Keys sort by period start (UTC ISO text), and settled periods do not
    overlap one another, so they also sort by end: of those starting before
    this one ends, the last one is the only one that can reach past its
    start, whatever its length (a day settled before the period became an
    hour, or an hour inside a day being reprocessed).
    """
    prefix = _key_prefix(scope)
    return prefix, f"{prefix}{contracts.isoformat(end)}"


def _refuse_overlaps(
    scope: str, key: str, others: Iterable[str], start: dt.datetime, end: dt.datetime
) -> None:
    """Refuse a period that overlaps one settled before under another key.

    CloudKitty's reprocessing takes windows aligned on UTC, while a scope's
    periods follow its own (local) boundaries; a window that cuts across the
    rated periods would be settled under new keys while the old settlements
    keep their debits: credit would pay the same usage twice. Raising leaves
    the period unrated (CloudKitty retries it) and says why.
    """
    start, end = contracts.utc(start), contracts.utc(end)
    prefix = _key_prefix(scope)
    for other in others:
        # Another scope's key: one the collation sorts in, or one of a scope
        # under this one ("org/1team" under "org": its keys start with "org"'s
        # prefix, and sort before "org"'s own, which go on with a year).
        if not other.startswith(prefix) or other[len(prefix):].count("/") != 1:
            continue
        try:
            begun, ended = (dt.datetime.fromisoformat(part.replace("Z", "+00:00"))
                            for part in other.split("/")[-2:])
        except ValueError:  # not a period key
            continue
        if begun < end and ended > start:
            raise exceptions.SettlementConflict(
                _("%(key)s overlaps %(other)s, settled before: not settled, so that credit "
                  "does not pay the same usage twice (a reprocessing window not aligned with "
                  "the rated periods, or a shorter [collect] period: see the CloudKitty "
                  "guide's scope state reset)")
                % {"key": key, "other": other}
            )


def apply_settlement(  # noqa: PLR0912, PLR0915 - CloudKitty's frame walked once, in order
    frame: Any, shares: Iterable[Any], currency: str,
    floors: dict[str, Decimal] | None = None,
) -> Any:
    """A new frame whose covered points are lowered by what credit paid.

    ``shares`` pay the lines of :func:`frame_lines` (one per metric type).
    Each type's shares, in the order given (the allocation's: consumption
    order), are spread over the type's points in frame order: each point with
    a positive floored price is covered by as much as is left, up to that
    floor, possibly by two credits. Uncovered points are the same objects.
    """
    paid: dict[str, list[tuple[str, Decimal]]] = {}  # metric type -> [(credit id, amount)]
    for share in shares:
        if share.amount > ZERO:
            paid.setdefault(share.line_id, []).append((str(share.credit_id), share.amount))
    if not paid:
        return frame
    if floors is None:
        floors = {}
    # Each distinct amount is formatted once per frame, found by its exact text.
    applied_text: dict[str, str] = {}
    before_text: dict[str, str] = {}
    output = dataframe.DataFrame(start=frame.start, end=frame.end)
    for metric_type, points in frame.itertypes():
        typed = paid.get(metric_type)
        if typed is None:
            # A copy: add_points keeps the list itself, the input frame's.
            output.add_points(list(points), metric_type)
            continue
        lowered = list(points)  # uncovered points: the same objects
        payers = iter(typed)
        credit_id, left = next(payers)
        for index, point in enumerate(points):
            unit, qty, before, groupby, metadata, description = point
            if type(before) is not Decimal:
                before = _price(before)
            if before <= ZERO:
                continue
            text = str(before)
            floor = floors.get(text)
            if floor is None:
                floor = floors[text] = money.floor_to_ledger(before)
            if floor <= ZERO:
                continue
            if left >= floor:  # the usual case: one credit pays the whole point
                credit = floor
                ids = credit_id
                left -= floor
            else:  # this credit's share ends here: the next ones pay the rest
                credit = left
                ids = credit_id
                left = ZERO
                # credit_id and left go on to the next point.
                for credit_id, share in payers:
                    take = min(share, floor - credit)
                    credit += take
                    left = share - take
                    if credit_id not in ids.split(","):
                        ids += f",{credit_id}"
                    if credit == floor:
                        break
            plain = before_text.get(text)
            if plain is None:
                plain = before_text[text] = _plain(before)
            amount_text = str(credit)
            applied = applied_text.get(amount_text)
            if applied is None:
                applied = applied_text[amount_text] = money.to_str(credit, currency)
            metadata = {
                **metadata,
                CREDIT_APPLIED: applied,
                CREDIT_IDS: ids,
                PRICE_BEFORE_CREDIT: plain,
            }
            if unit and type(qty) is Decimal and type(groupby) is _Immutable:
                # The usual point, as DataPoint's constructor made it: the same
                # fields without converting them again (set_price does not
                # coerce: the new price is a Decimal).
                lowered[index] = _make_point((
                    unit, qty, before - credit, groupby, _Immutable(metadata), description,
                ))
            else:
                lowered[index] = dataframe.DataPoint(
                    unit, qty, before - credit, groupby, metadata, description
                )
            if left <= ZERO:
                found = next(payers, None)
                if found is None:
                    break  # the type's shares are spent: the other points stay as they are
                credit_id, left = found
        # Always the frame's own metric type: never one metrics.yml lacks.
        output.add_points(lowered, metric_type)
    return output


# -- points CloudKitty will not store ------------------------------------------------

# CloudKitty's default skip_datapoints_expression: nothing is skipped.
_KEEP_ALL = "False"
_skip_cache: dict[tuple[str, int, str], dict[str, str]] = {}


def skip_expressions(conf: cfg.ConfigOpts) -> dict[str, str]:
    """CloudKitty's ``skip_datapoints_expression`` of each metric type that has one.

    CloudKitty evaluates it on every rated point after all rating modules, and
    stores (bills) only the points where it is false: credit spent on the
    others would pay for usage nobody is billed for. As the Worker does: the
    metric's own expression in metrics.yml (by alt name), else
    ``[orchestrator] skip_datapoints_expression``. Read again when the file
    changes; empty (nothing to evaluate) in the default set-up.
    """
    try:
        default = str(conf.orchestrator.skip_datapoints_expression)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):  # an older CloudKitty
        default = _KEEP_ALL
    try:
        path = str(conf.collect.metrics_conf)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):  # not inside a CloudKitty service
        return {"": default} if default.strip() != _KEEP_ALL else {}
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = -1
    found = _skip_cache.get((path, stamp, default))
    if found is None:
        definitions: dict[str, Any] = {}
        for name, metric in (ck_utils.load_conf(path) or {}).get("metrics", {}).items():
            for item in metric if isinstance(metric, list) else [metric]:
                definitions[item.get("alt_name", name)] = item
        # Every type's own (a metric may say "False" under a global rule), and
        # the global one under "" for a type metrics.yml lacks; nothing at all
        # when nothing would be skipped.
        found = {name: str(item.get("skip_datapoints_expression", default))
                 for name, item in definitions.items()}
        found[""] = default
        if all(expression.strip() == _KEEP_ALL for expression in found.values()):
            found = {}
        _skip_cache.clear()  # an older version of the file
        _skip_cache[(path, stamp, default)] = found
    return found


def split_skipped(frame: Any, expressions: dict[str, str]) -> tuple[Any, list[tuple[str, Any]]]:
    """(the frame CloudKitty will store, the (type, point) pairs it will skip).

    Each expression is evaluated as CloudKitty does (``eval`` of the operator's
    own configuration, in its orchestrator module's globals, with
    ``datapoint`` the point as a mutable dict and ``usage_data_metric_name``
    its type), on the price before credit. One that fails here (it reads the
    Worker, ``self``, which a rating module has not) keeps the point: a
    warning, rather than every period of the scope left unrated.
    """
    if not expressions:
        return frame, []
    from cloudkitty import orchestrator  # loaded already inside CloudKitty

    namespace = dict(vars(orchestrator))  # a copy: an expression cannot change the module
    kept = dataframe.DataFrame(start=frame.start, end=frame.end)
    skipped: list[tuple[str, Any]] = []
    for metric_type, points in frame.itertypes():
        expression = expressions.get(metric_type, expressions.get(""))
        if expression is None or expression.strip() == _KEEP_ALL:
            kept.add_points(list(points), metric_type)
            continue
        stored = []
        for point in points:
            scope = {"datapoint": point.as_dict(mutable=True),
                     "usage_data_metric_name": metric_type}
            try:
                skip = eval(expression, namespace, scope)  # noqa: S307 - as CloudKitty runs it
            except Exception as error:
                _warn_once(expression, error)
                skip = False
            if skip:
                skipped.append((metric_type, point))
            else:
                stored.append(point)
        if stored:
            kept.add_points(stored, metric_type)
    return kept, skipped


_warned: set[str] = set()


def _warn_once(expression: str, error: Exception) -> None:
    if expression not in _warned:
        _warned.add(expression)
        LOG.warning("skip_datapoints_expression %r cannot be evaluated before credit (%s: "
                    "%s): such points get credit, and CloudKitty may still skip them",
                    expression, type(error).__name__, error)


# -- the REST API ----------------------------------------------------------------------


def api_controller() -> Any:
    """The REST API's root controller, which CloudKitty's API serves at
    ``/v1/rating/module_config/cloud_credit``.

    CloudKitty's API process builds the controller of every installed
    processor when it starts, enabled or not: this imports and builds, and
    opens nothing; the ledger is opened by the first request that needs it.
    CloudKitty builds it once per process (its controllers are class
    attributes): the service is looked up per request, in the processors'
    cache of services per ledger URL.
    Requests reach it through CloudKitty's own middleware (keystonemiddleware
    or noauth, request id) and request context; policy is ours, on
    CloudKitty's configuration (its ``[oslo_policy] policy_file``).
    """
    from ovh_credit_plugin.api.controllers import CreditRootController, Runtime

    register_opts(cfg.CONF)
    return CreditRootController(Runtime(cfg.CONF, lambda: _service_for(cfg.CONF), cache=False))


# -- the processor -------------------------------------------------------------------


class CloudCreditProcessor(rating.RatingProcessorBase):  # type: ignore[misc]
    """Applies prepaid cloud credit and vouchers to rated usage, after pricing."""

    module_name = MODULE_NAME
    description = (
        "Prepaid cloud credit and vouchers: pays rated usage before any other payment "
        "method. Must run after every pricing module (lowest priority)."
    )
    hot_config = False
    # CloudKitty calls it (on an instance) to build the module's API controller.
    config_controller = staticmethod(api_controller)
    # Read by cloudkitty-dbsync on the class (never instantiated there).
    db_api = cloudkitty_db.CloudCreditDbApi(cfg.CONF)

    def __init__(self, tenant_id: str | None = None) -> None:
        # CloudKitty instantiates every installed processor, enabled or not,
        # for every scope and for quotes (tenant None): no I/O here. A failure
        # here would make stevedore drop the module and CloudKitty rate
        # without credit, so only register options (idempotent, in memory).
        super().__init__(tenant_id)
        register_opts(cfg.CONF)
        self._conf = cfg.CONF
        self._service: CreditService | None = None

    @property
    def service(self) -> CreditService:
        # Looked up on first use, then kept. The service (engine, pool,
        # settings) is shared per ledger URL for the life of the process, and
        # CloudKitty reads its config files at start: a changed [cloud_credit]
        # or [voucher_catalog] option applies when cloudkitty-processor restarts.
        if self._service is None:
            self._service = _service_for(self._conf)
        return self._service

    def reload_config(self, start: dt.datetime | None = None) -> None:
        # Credit balances are read in the settlement transaction itself;
        # nothing to preload per period.
        return None

    def quote(self, data: Any) -> Any:
        """List price: a quote never reads nor writes the ledger."""
        return data

    def process(self, data: Any) -> Any:
        """Settle the period's priced points with the scope's credit; lower their prices."""
        if _order_check.due():
            self._warn_on_run_order()
        scope = self._tenant_id
        if not scope:
            # No project to charge (not a Worker call): nothing credit can pay.
            return data
        key, invoice_id = period_key(str(scope), data.start, data.end)
        service = self.service
        # One read; a period recorded before is settled again even without
        # credit left (reprocessing reverses what it debited).
        state = service.charge_state(
            key, scope, latest_between=_neighbourhood(str(scope), data.end)
        )
        recorded, funded, currency = state.recorded, state.funded, state.currency
        if not recorded:
            # Before the fast path: a window across periods credit paid, rated
            # at list price once the credit is used up, would bill that usage
            # a second time.
            _refuse_overlaps(str(scope), key, state.others, data.start, data.end)
        # Fast path, no write transaction: most projects hold no credit.
        if not recorded and not funded:
            return data
        # Lines, settlement and the lowered frame: thousands of objects per
        # period and no cycles among them; see collector.py.
        with collector.paused(), money.exact():
            stored, skipped = split_skipped(data, skip_expressions(self._conf))
            lowered = self._settle(stored, service, key, invoice_id, recorded=recorded,
                                   currency=currency)
            if not skipped:
                return lowered
            # Unchanged: CloudKitty drops them after the last module.
            output = dataframe.DataFrame(start=data.start, end=data.end)
            for metric_type, points in lowered.itertypes():
                output.add_points(list(points), metric_type)
            for metric_type, point in skipped:
                output.add_point(point, metric_type)
            return output

    def _settle(self, data: Any, service: CreditService, key: str, invoice_id: str, *,
                recorded: bool, currency: str | None) -> Any:
        scope = str(self._tenant_id)
        floors: dict[str, Decimal] = {}  # each distinct price floored once per frame
        lines = frame_lines(data, floors)
        if not recorded and not lines:
            return data
        currency = currency or service.settings.default_currency
        if not recorded:
            try:
                money.check_currency(currency)
            except exceptions.InvalidCurrency as error:
                # The project's credit is in a currency ISO 4217 has since
                # withdrawn (BGN): no charge is taken in it any more, and a
                # refusal would leave every period of the scope unrated for
                # good. Rated at list price, as for a currency mismatch.
                LOG.warning("scope %s, period %s: no credit applied, rated at list price: the "
                            "project's credit is in %s, which cannot be charged (%s)",
                            scope, invoice_id, currency, error)
                return data
        charge = Charge.of(key=key, project_id=scope, invoice_id=invoice_id, currency=currency,
                           at=contracts.utc(data.start), lines=lines)
        # "replace": a re-rated period with new prices reverses and re-applies.
        settlement = service.settle([charge], on_change="replace", record_unpaid=False)[0]
        if settlement.note is not None:
            # The project's currency changed between the read above and the
            # settlement (its credit is in another one): rated at list price.
            LOG.warning("scope %s, period %s: no credit applied (%s)", scope, invoice_id,
                        settlement.note)
        # A period rated again with new prices gave its earlier debits back:
        # said even when no credit pays the new ones, or the log would show the
        # period's first debit and nothing of its reversal.
        rerated = recorded and not settlement.replayed
        if settlement.credit_applied > ZERO or rerated:
            LOG.info(
                "scope %s, period %s: %s %s of credit applied (%s)",
                scope, invoice_id, settlement.credit_applied, currency,
                "replayed" if settlement.replayed
                else "re-rated: its earlier debits reversed" if rerated else "settled",
            )
        return apply_settlement(data, settlement.allocations, currency, floors)

    def _warn_on_run_order(self) -> None:
        try:
            late = modules_not_before(self.module_name)
        except Exception as error:  # the check only warns: never let it block rating
            # Not an ERROR with a traceback every 5 minutes: rating goes on.
            LOG.warning("could not check the run order of the rating modules (%s: %s); "
                        "rating goes on, the check runs again in %d minutes",
                        type(error).__name__, error, _ORDER_CHECK_INTERVAL // 60,
                        exc_info=LOG.isEnabledFor(logging.DEBUG))
            return
        if late:
            names = ", ".join(f"{name} (priority {priority})" for name, priority in late)
            LOG.warning(
                "cloud_credit must run after every pricing module, but these enabled "
                "modules have a priority lower than or equal to cloud_credit's and may "
                "run after it, so their prices get no credit: %s. Give cloud_credit "
                "priority 1 and every pricing module a priority of 2 or more "
                "(cloudkitty module set priority <module> <n>).",
                names,
            )
