"""The ``ovh-credit`` commands: translate arguments into service calls, and results into rows.

JSON output carries the contract's field names and decimal strings; table
output shows money for humans (``1 234.50 EUR``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import math
import os
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from cliff import columns
from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne
from oslo_config import cfg
from stevedore import driver as stevedore_driver
from stevedore import named as stevedore_named

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.i18n import _, count, ngettext

if TYPE_CHECKING:
    import pydantic
    from sqlalchemy import exc as sqlalchemy_exc

    from ovh_credit_plugin import conf, contracts, descriptions, explained, ledger, models, money
    from ovh_credit_plugin.catalog import base as catalog_base
    from ovh_credit_plugin.cli import settle_input
    from ovh_credit_plugin.hosts import invoice
    from ovh_credit_plugin.ledger import engine as ledger_engine
    from ovh_credit_plugin.ledger import migration
    from ovh_credit_plugin.service import facade, inputs
else:
    # Each command imports what it uses, when it uses it: --help none of
    # these, credit list no voucher catalog, settlement host or alembic
    # (issue 15, decision 3; tests/functional/test_cli_startup.py).
    from ovh_credit_plugin import lazy

    pydantic = lazy.module("pydantic")
    sqlalchemy_exc = lazy.module("sqlalchemy.exc")
    conf = lazy.module("ovh_credit_plugin.conf")
    contracts = lazy.module("ovh_credit_plugin.contracts")
    descriptions = lazy.module("ovh_credit_plugin.descriptions")
    explained = lazy.module("ovh_credit_plugin.explained")
    ledger = lazy.module("ovh_credit_plugin.ledger")
    models = lazy.module("ovh_credit_plugin.models")
    money = lazy.module("ovh_credit_plugin.money")
    catalog_base = lazy.module("ovh_credit_plugin.catalog.base")
    settle_input = lazy.module("ovh_credit_plugin.cli.settle_input")
    invoice = lazy.module("ovh_credit_plugin.hosts.invoice")
    ledger_engine = lazy.module("ovh_credit_plugin.ledger.engine")
    migration = lazy.module("ovh_credit_plugin.ledger.migration")
    facade = lazy.module("ovh_credit_plugin.service.facade")
    inputs = lazy.module("ovh_credit_plugin.service.inputs")

ORDER_FIELDS = (
    "id", "project_id", "amount", "currency", "status", "created_at", "expires_at",
    "paid_at", "payment_url", "credit_id",
)
CREDIT_FIELDS = (
    "id", "project_id", "kind", "description", "source", "currency", "total", "used",
    "expired", "voided", "available", "valid_from", "valid_until", "status", "products",
)
SETTLEMENT_FIELDS = (
    "invoice_id", "project_id", "currency", "total", "credit_applied", "amount_due",
    "allocations", "replayed",
)
FORECAST_FIELDS = (
    "currency", "available", "burn_rate_per_day", "window_days", "runs_out_at",
    "amount_at_risk", "credits", "warnings",
)
SETTLEMENT_RECORD_FIELDS = (
    "key", "invoice_id", "project_id", "currency", "total", "credit_applied", "amount_due",
    "allocations", "note", "settled_at", "revision",
)
_MONEY = {"amount", "total", "used", "expired", "voided", "available", "credit_applied",
          "amount_due", "burn_rate_per_day", "amount_at_risk"}


class Money(columns.FormattableColumn[Any]):
    """A decimal string in JSON, ``1 234.50 EUR`` in tables."""

    def human_readable(self) -> str:
        amount, currency = self._value
        return money.to_human(money.parse_amount(amount, allow_zero=True), currency)

    def machine_readable(self) -> str:
        return str(self._value[0])


class Listing(columns.FormattableColumn[Any]):
    """A JSON array in JSON, one item per line in tables."""

    def human_readable(self) -> str:
        return "\n".join(
            ", ".join(f"{k}={v}" for k, v in item.items()) if isinstance(item, dict) else str(item)
            for item in self._value
        )

    def machine_readable(self) -> list[Any]:
        return list(self._value)


def _row(data: dict[str, Any], fields: Sequence[str]) -> tuple[Any, ...]:
    currency = data.get("currency", "")
    row: list[Any] = []
    for name in fields:
        value = data.get(name)
        if name in _MONEY and isinstance(value, str):
            row.append(Money((value, currency)))
        elif isinstance(value, list):
            row.append(Listing(value))
        else:
            row.append(value)
    return tuple(row)


#: The earliest ``--at`` and ``--now``: the service counts windows back from them
#: (the forecast's days, the voucher throttle's seconds), which year 1 cannot take.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def parse_time(text: str) -> dt.datetime:
    """``--at`` values: ISO 8601; a time without zone is UTC. Checked here, so that
    argparse's error line names the option."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("invalid time %(text)r: use ISO 8601, e.g. 2026-11-27T12:00:00Z")
            % {"text": text}
        ) from None
    try:
        found = contracts.utc(value)
    except ValueError as error:  # 0001-01-01T00:00+01:00: before year 1 in UTC
        raise argparse.ArgumentTypeError(
            _("invalid time: %(error)s") % {"error": error}) from None
    if found < EARLIEST:
        raise argparse.ArgumentTypeError(
            _("invalid time %(time)s: before %(earliest)s")
            % {"time": contracts.isoformat(found), "earliest": contracts.isoformat(EARLIEST)})
    if found >= inputs.LATEST:  # the service's own bound, named with the option here
        raise argparse.ArgumentTypeError(
            _("invalid time %(time)s: at or after %(latest)s")
            % {"time": contracts.isoformat(found), "latest": contracts.isoformat(inputs.LATEST)})
    return found


#: The longest ``--lock-timeout`` of ``db upgrade``: a day (the lock's MariaDB
#: connection keeps a wait_timeout of a day; PostgreSQL's lock_timeout ends at ~24 days).
MAX_LOCK_TIMEOUT = 86400


def parse_lock_timeout(text: str) -> float:
    """``--lock-timeout`` values: a positive number of seconds, a day at most."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_LOCK_TIMEOUT:  # NaN is neither
        raise argparse.ArgumentTypeError(
            _("invalid number of seconds %(text)r: use a positive number, at most "
              "%(most)s (a day)")
            # The most as the option is written (a grouped 86,400 would be refused).
            % {"text": text, "most": MAX_LOCK_TIMEOUT}
        )
    return seconds


def parse_batch_size(text: str) -> int:
    """``--batch-size`` values: a whole number, 1 or more."""
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise argparse.ArgumentTypeError(
            _("invalid batch size %(text)r: use a whole number, at least 1") % {"text": text})
    return size


def reason_of(refusal: str) -> Callable[[str], str]:
    """``--reason`` values: some text; an empty or blank one is refused with ``refusal``."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(refusal)
        return text

    return parse


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Base:
    """Shared by every command: one-line errors, the service, ``--at``."""

    app: Any
    takes_at = False
    # The columns the command prints, for checking ``-c`` before anything is written.
    FIELDS: tuple[str, ...] = ()

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)  # type: ignore[misc]
        parser.__class__ = _OneLineParser
        if self.takes_at:
            parser.add_argument(
                "--at",
                type=parse_time,
                default=None,
                metavar="TIME",
                help="Time of the operation (ISO 8601, UTC); default: now. For back-dated "
                "operations and reproducible runs; a command that changes the ledger "
                "refuses a time later than now (plus [cloud_credit] clock_skew_allowance).",
            )
        return parser  # type: ignore[no-any-return]

    def run(self, parsed_args: argparse.Namespace) -> int:
        # cliff selects the columns after take_action: a typo in -c would fail
        # once the order, the activation or the settlement is committed.
        _check_columns(getattr(parsed_args, "columns", None), self.FIELDS)
        try:
            return int(super().run(parsed_args))  # type: ignore[misc]
        except exceptions.DatabaseNotReady as error:
            if not self.app.uses_fallback_ledger:
                raise
            raise exceptions.DatabaseNotReady(
                _("%(error)s (the default ledger: no configuration file names a "
                  "[cloud_credit] connection)")
                % {"error": error}) from error
        except exceptions.PurchaseNotOffered as error:
            # The service's words are the customer's; the operator is also told
            # which options sell credit in that currency.
            raise exceptions.PurchaseNotOffered(
                _("%(refusal)s; %(hint)s") % {"refusal": error, "hint": error.operator_hint},
                currency=error.currency, operator_hint=error.operator_hint) from error
        except exceptions.CreditError:
            raise
        except pydantic.ValidationError as error:
            raise exceptions.InvalidInput(str(models.first_error(error))) from error
        except sqlalchemy_exc.SQLAlchemyError as error:
            if self.app.options.debug:
                raise
            raise exceptions.CreditError(
                ledger_engine.describe_error(self.app.ledger_url, error)) from error
        except cfg.Error as error:
            raise exceptions.ConfigError(conf.error_message(error)) from error
        except BrokenPipeError:
            # The reader went away (``| head -1``): cliff ends quietly, status 141.
            raise
        except OSError as error:
            if self.app.options.debug:
                raise
            raise exceptions.CreditError(f"{error.strerror or error}: "
                                         f"{error.filename or ''}".rstrip(": ")) from error

    def produce_output(self, parsed_args: argparse.Namespace, column_names: Any,
                       data: Any) -> int:
        if parsed_args.formatter in _TEXT_FORMATTERS:
            # A Lister's data is rows (streamed), a ShowOne's is one row.
            many = isinstance(self, Lister)
            data = (_as_text(row) for row in data) if many else _as_text(data)
        return int(super().produce_output(parsed_args, column_names, data))  # type: ignore[misc]

    @property
    def service(self) -> Any:
        return self.app.service

    def get_epilog(self) -> str:
        # cliff's own adds "This command is provided by the X plugin" when the
        # command's distribution is not the app's. Ours never are, and finding
        # them reads every installed distribution's metadata: ~0.3 s of every run.
        parts = [self._epilog or ""]  # type: ignore[attr-defined]
        parts.extend(epilog for hook in self._hooks  # type: ignore[attr-defined]
                     if hook.obj is not None and (epilog := hook.obj.get_epilog()) is not None)
        return "\n\n".join(parts)

    def _load_formatter_plugins(self) -> Any:
        # The formatters cliff ships, by name: loading every plugin of the
        # namespace imports other packages' formatters too (cloudkittyclient's
        # "df-to-csv", for pandas frames, costs ~65 ms of every run), and
        # none of them can print our rows.
        names = _FORMATTERS[self.formatter_namespace]  # type: ignore[attr-defined]
        return stevedore_named.NamedExtensionManager(
            self.formatter_namespace, names=names, invoke_on_load=True,  # type: ignore[attr-defined]
            name_order=True)


# cliff's own formatters, in its order (sorted choices of -f are cliff's doing).
_FORMATTERS = {
    "cliff.formatter.list": ["csv", "json", "table", "value", "yaml"],
    "cliff.formatter.show": ["json", "shell", "table", "value", "yaml"],
}


# Formatters that print a column's value with str(): a list or a dict would come
# out as a Python repr, which no other program reads.
_TEXT_FORMATTERS = frozenset({"csv", "value", "shell"})


class _JsonText(columns.FormattableColumn[Any]):
    def human_readable(self) -> str:
        return json.dumps(self._value)

    def machine_readable(self) -> str:
        return json.dumps(self._value)


def _as_text(row: Sequence[Any]) -> tuple[Any, ...]:
    """The row with its lists and dicts as JSON text (JSON and YAML keep the objects)."""
    out: list[Any] = []
    for cell in row:
        value = cell.machine_readable() if isinstance(cell, columns.FormattableColumn) else cell
        out.append(_JsonText(value) if isinstance(value, list | tuple | dict) else cell)
    return tuple(out)


def _normalize_column(name: str) -> str:
    # cliff's own normalization of -c names (display._normalize_column_name).
    return name.lower().strip().replace(" ", "_")


def _check_columns(requested: Sequence[str] | None, fields: Sequence[str]) -> None:
    unknown = [c for c in requested or () if _normalize_column(c) not in fields]
    if unknown:
        raise exceptions.InvalidInput(
            _("unknown column %(unknown)r for -c: choose from %(fields)s")
            % {"unknown": unknown[0], "fields": ', '.join(fields)}
        )


# -- db ----------------------------------------------------------------------------


class DbUpgrade(_Base, Command):
    """Create or upgrade the ledger's tables (alembic)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "--lock-timeout", type=parse_lock_timeout, default=None, metavar="SECONDS",
            help="Seconds to wait for another upgrade holding the ledger's upgrade lock "
            f"before giving up with exit status 1 (at most {MAX_LOCK_TIMEOUT}); default "
            f"{migration.LOCK_TIMEOUT}, on SQLite [cloud_credit] sqlite_busy_timeout (the "
            "lock is the write lock there: a writer holding it is waited for too).",
        )
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        # Only the ledger: a schema upgrade must not wait on the other
        # options being right (a bad payment_url_template, a catalog).
        fallback = self.app.uses_fallback_ledger
        lock_timeout: float | None = parsed_args.lock_timeout
        if lock_timeout is not None:
            # SQLite's upgrade lock is the migration's write lock: its engine
            # waits its busy timeout for it (whole seconds, rounded up).
            self.app.conf.set_override("sqlite_busy_timeout", math.ceil(lock_timeout),
                                       group="cloud_credit")
        database = facade.ledger_database(self.app.conf, connection=self.app.ledger_url)
        url = database.engine.url
        missing = migration.missing_sqlite_file(database.engine)
        try:
            # Another upgrade running (deploy tooling runs one on every node at
            # once): this one waits for it, then finds the ledger at head.
            found = ledger.upgrade(database.engine, lock_timeout=lock_timeout)
            revision = ledger.current(database.engine)
        except exceptions.DatabaseNotReady as error:
            if (lock_timeout is None or url.get_backend_name() != "sqlite"
                    or not isinstance(error.__context__, sqlalchemy_exc.OperationalError)):
                raise
            # SQLite's "database is locked", which the ledger blames on
            # sqlite_busy_timeout: the wait was --lock-timeout's.
            raise exceptions.DatabaseNotReady(
                _("the ledger database %(url)s stayed locked by another process (another "
                  "'db upgrade', or a writer) for longer than %(seconds)s s "
                  "(--lock-timeout): run 'ovh-credit db upgrade' again once it is done")
                % {"url": ledger_engine.shown(url),
                   "seconds": count(math.ceil(lock_timeout), now=True)}
            ) from None
        finally:
            database.dispose()
        # Created by this upgrade, not by another one that ran at the same time.
        created = missing and found is None
        where = ledger_engine.shown(url)
        if created:
            where = f"{Path(str(url.database)).absolute()}, created"
        if fallback:
            # Said each time: a typo'd config is caught, but a missing one is not.
            where += ("; the default ledger: no configuration file names a [cloud_credit] "
                      "connection")
        self.app.stdout.write(f"ledger database at revision {revision} ({where})\n")
        return 0


# -- orders ------------------------------------------------------------------------


class OrderCreate(_Base, ShowOne):
    """Create a purchase order for cloud credit (excluding tax); prints the order."""

    FIELDS = ORDER_FIELDS

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("project", metavar="PROJECT", help="Project id.")
        parser.add_argument("amount", metavar="AMOUNT", help="Amount excluding tax, e.g. 50.00.")
        parser.add_argument("--currency", help="ISO 4217 code; default: the project's currency, "
                            "else [cloud_credit] default_currency.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        order = self.service.create_order_result(
            parsed_args.project, parsed_args.amount, currency=parsed_args.currency,
            at=parsed_args.at,
        )
        return self.FIELDS, _row(order.json_ready(), self.FIELDS)


class _OneOrder(_Base, ShowOne):
    """A command on one order, named by its id; prints the order."""

    FIELDS = ORDER_FIELDS

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("order_id", metavar="ORDER_ID")
        return parser

    def shown(self, order: models.Order) -> tuple[Any, Any]:
        return self.FIELDS, _row(order.json_ready(), self.FIELDS)


class OrderPay(_OneOrder):
    """Confirm payment of an order: its credit is created (once); prints the order."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--amount", help="Amount the payment system received; refused "
                            "when it differs from the order's.")
        parser.add_argument("--currency", help="Currency of the payment; refused when it "
                            "differs from the order's.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        return self.shown(self.service.pay_order(
            parsed_args.order_id, amount=parsed_args.amount, currency=parsed_args.currency,
            at=parsed_args.at,
        ))


class OrderCancel(_OneOrder):
    """Cancel a pending order; prints the order."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        return self.shown(self.service.cancel_order(parsed_args.order_id, at=parsed_args.at))


class OrderShow(_OneOrder):
    """Show one order (a pending order past its end shows expired)."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        return self.shown(self.service.show_order(parsed_args.order_id, at=parsed_args.at))


class OrderList(_Base, Lister):
    """List a project's purchase orders, oldest first."""

    FIELDS = ORDER_FIELDS

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("project", metavar="PROJECT")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        orders = self.service.list_orders(parsed_args.project, at=parsed_args.at)
        return self.FIELDS, [_row(o.json_ready(), self.FIELDS) for o in orders]


# -- vouchers ----------------------------------------------------------------------


class VoucherActivate(_Base, ShowOne):
    """Validate and redeem a voucher code for a project; prints the new credit."""

    FIELDS = CREDIT_FIELDS

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("project", metavar="PROJECT")
        parser.add_argument("code", metavar="CODE")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        credit = self.service.activate_voucher(parsed_args.project, parsed_args.code,
                                               at=parsed_args.at)
        return self.FIELDS, _row(_credit_data(credit), self.FIELDS)

    def run(self, parsed_args: argparse.Namespace) -> int:
        try:
            return super().run(parsed_args)
        except exceptions.VoucherRefused:
            raise  # the catalog's answer: nothing left to finish
        except exceptions.CurrencyMismatch:
            # Before the POST nothing was redeemed; after it, the service's words
            # say what was redeemed and that a rerun cannot finish it (the project
            # holds its currency): "may have redeemed ... again finishes it" is false.
            raise
        except exceptions.CreditError as error:
            # A failure once the redemption was asked for (a timeout, a 500 on the
            # POST) leaves the activation pending: the service logs it, and the
            # operator reads it here, with what finishes it.
            code = self._left_pending(parsed_args.project, parsed_args.code)
            if code is None:
                raise
            pending = _("the activation is left pending (the catalog may have redeemed "
                        "%(code)s): running 'ovh-credit voucher activate %(project)s CODE' "
                        "again with the same code finishes it ('ovh-credit voucher pending' "
                        "lists it)") % {"code": catalog_base.mask_code(code),
                                        "project": shlex.quote(parsed_args.project)}
            raise exceptions.CreditError(f"{error}; {pending}") from error

    def _left_pending(self, project: str, code: str) -> str | None:
        """The code, when the ledger holds a pending activation of it for the project."""
        try:
            wanted = (project.strip(), catalog_base.normalize_code(code))
            rows = self.service.pending_activations()
        except Exception:  # the ledger cannot tell (it failed too): the error as it is
            return None
        return next((row["code"] for row in rows
                     if (row["project_id"], row["code"]) == wanted), None)


class VoucherCheck(_Base, ShowOne):
    """Show what a voucher code would grant, without redeeming it.

    With ``--project``, checked as that project's try: refused while the
    project is throttled, and a code it cannot activate counts as a failed try.
    """

    takes_at = True
    FIELDS = ("code", "amount", "currency", "status", "valid_from", "valid_until",
              "validity_days", "products", "max_redemptions", "redemptions", "description",
              "redeemable", "reason")

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("code", metavar="CODE")
        parser.add_argument("--project", metavar="PROJECT",
                            help="Check on behalf of this project, throttled and counted "
                            "like its activations.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        preview = self.service.check_voucher(parsed_args.code, project_id=parsed_args.project,
                                             at=parsed_args.at)
        data = preview.voucher.model_dump(mode="json")
        data["code"] = catalog_base.normalize_code(parsed_args.code)
        data["amount"] = money.to_str(preview.voucher.amount, preview.voucher.currency)
        data["redeemable"] = preview.redeemable
        data["reason"] = preview.reason
        return self.FIELDS, _row(data, self.FIELDS)


class VoucherPending(_Base, Lister):
    """List activations recorded but not granted (a crash, or one running now).

    Finish one by running ``voucher activate`` again with the same project and code
    (harmless for one still running: both answer the same credit).
    Codes are masked unless ``--show-codes`` is given.
    """

    FIELDS = ("project_id", "code", "created_at")

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--show-codes", action="store_true",
                            help="Print full codes (needed to finish an activation).")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        rows = self.service.pending_activations()
        show = (lambda code: code) if parsed_args.show_codes else catalog_base.mask_code
        return self.FIELDS, [
            (r["project_id"], show(r["code"]), contracts.isoformat(r["created_at"])) for r in rows
        ]


UNBLOCK_FIELDS = ("project_id", "unblocked", "counted", "limit", "cleared", "id", "operator",
                  "reason", "created_at")


def _operator() -> str:
    """Who runs the command: the login name, recorded with what they did."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container)
        return f"uid {os.getuid()}"


class VoucherUnblock(_Base, ShowOne):
    """End a project's voucher throttle window now, recorded with a reason.

    The failed attempts counted against the project stop counting; the limit
    applies again to the attempts made after. A project that is not blocked is
    left as it is (said on stderr, exit status 0).
    """

    FIELDS = UNBLOCK_FIELDS

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("project", metavar="PROJECT")
        parser.add_argument("--reason", required=True,
                            type=reason_of(_("unblocking a project needs a reason")),
                            help="Why (recorded with the operator's login name).")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        done = self.service.unblock_vouchers(parsed_args.project, reason=parsed_args.reason,
                                             operator=_operator(), at=parsed_args.at)
        if not done.unblocked:
            nothing = ngettext(
                "project %(project)s is not blocked (%(counted)s failed or running voucher "
                "attempt counted, limit %(limit)s): nothing done",
                "project %(project)s is not blocked (%(counted)s failed or running voucher "
                "attempts counted, limit %(limit)s): nothing done", done.counted) % {
                "project": done.project_id, "counted": count(done.counted, now=True),
                "limit": count(done.limit, now=True)}
            self.app.stderr.write(f"ovh-credit: {nothing}\n")
        created = contracts.isoformat(done.created_at) if done.created_at else None
        return self.FIELDS, (done.project_id, done.unblocked, done.counted, done.limit,
                             done.cleared, done.id, done.operator, done.reason, created)


class VoucherAttempts(_Base, Lister):
    """List a project's voucher attempts (activations, checks) and unblocks, oldest first.

    ``counted``: the try counts against the project's limit now. By default
    the throttle window ending at ``--at``; ``--all`` for every one.
    """

    FIELDS = ("created_at", "event", "counted", "reason", "operator", "unblock_id", "cleared")

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("project", metavar="PROJECT")
        parser.add_argument("--all", action="store_true", dest="everything",
                            help="Every try and unblock, not only the window's.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        rows = self.service.voucher_attempts(parsed_args.project,
                                             everything=parsed_args.everything,
                                             at=parsed_args.at)
        return self.FIELDS, [
            tuple(contracts.isoformat(row[name]) if name == "created_at" else row[name]
                  for name in self.FIELDS)
            for row in rows
        ]


# -- credits -----------------------------------------------------------------------


SUMMARY_FIELDS = ("currency", "credits", "total", "used", "expired", "voided", "available")
# What an operator reads in the default table, in 120 columns: the other fields
# (description, source, used/expired/voided...) are in --long, -c, and the
# machine formats (JSON, YAML, CSV, value), which always carry every field.
CREDIT_COMPACT = ("id", "kind", "available", "total", "valid_until", "status")


class Day(columns.FormattableColumn[Any]):
    """A time shown as its UTC day in tables (the whole time in machine formats)."""

    def human_readable(self) -> str:
        return str(self._value)[:10] if self._value else ""

    def machine_readable(self) -> Any:
        return self._value


class CreditList(_Base, Lister):
    """List every credit of a project (active, exhausted, expired, voided) in consumption order."""

    FIELDS: tuple[str, ...] = CREDIT_FIELDS

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("project", metavar="PROJECT")
        parser.add_argument("--summary", action="store_true",
                            help="One line per currency: how many credits, and their total, "
                            "used, expired, voided and available (total = the other four).")
        parser.add_argument("--long", action="store_true",
                            help="Every field in the table too (the default table shows "
                            f"{', '.join(CREDIT_COMPACT)}; other formats show every field).")
        return parser

    def run(self, parsed_args: argparse.Namespace) -> int:
        if parsed_args.summary and parsed_args.long:
            raise exceptions.InvalidInput(_("--summary and --long do not go together: the "
                                            "summary has columns of its own"))
        if parsed_args.summary:
            self.FIELDS = SUMMARY_FIELDS  # -c is checked against what is printed
        return super().run(parsed_args)

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        credits = self.service.list_credit_results(parsed_args.project, at=parsed_args.at)
        if not parsed_args.summary:
            if (parsed_args.formatter == "table" and not parsed_args.long
                    and not parsed_args.columns):
                return CREDIT_COMPACT, [_compact_row(_credit_data(c)) for c in credits]
            return self.FIELDS, [_row(_credit_data(c), self.FIELDS) for c in credits]
        sums: dict[str, dict[str, Any]] = {}
        for credit in credits:
            line = sums.setdefault(credit.currency, {"currency": credit.currency, "credits": 0})
            line["credits"] += 1
            for name in SUMMARY_FIELDS[2:]:
                line[name] = money.add(line.get(name, money.ZERO), getattr(credit, name))
        rows = [
            _row({**line, **{n: money.to_str(line[n], code) for n in SUMMARY_FIELDS[2:]}},
                 SUMMARY_FIELDS)
            for code, line in sorted(sums.items())
        ]
        return SUMMARY_FIELDS, rows


def _credit_data(credit: models.Credit | contracts.CreditResult) -> dict[str, Any]:
    """A credit's fields as printed: the plugin's own description in the locale's language."""
    return descriptions.localized(credit).json_ready()


def _compact_row(data: dict[str, Any]) -> tuple[Any, ...]:
    row = _row(data, CREDIT_COMPACT)
    day = CREDIT_COMPACT.index("valid_until")
    return (*row[:day], Day(row[day]), *row[day + 1:])


class CreditShow(_Base, ShowOne):
    """Show one credit with its ledger entries."""

    FIELDS = (*CREDIT_FIELDS, "entries")

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("credit_id", metavar="CREDIT_ID")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        credit, entries = self.service.show_credit(parsed_args.credit_id, at=parsed_args.at)
        data = _credit_data(credit)
        data["entries"] = [
            {**e.model_dump(mode="json"), "amount": money.to_str(e.amount, credit.currency)}
            for e in entries
        ]
        return self.FIELDS, _row(data, self.FIELDS)


class CreditForecast(_Base, ShowOne):
    """Forecast when a project's credit runs out at its burn rate, and what expires unused.

    The burn rate is the credit applied per day over the last
    [cloud_credit] forecast_window_days days before --at; credits are spent at
    that rate in consumption order, day by day. A project with no history burns
    nothing: all of its credit that ends is at risk.
    """

    FIELDS = FORECAST_FIELDS

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("project", metavar="PROJECT")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        found = self.service.forecast(parsed_args.project, at=parsed_args.at)
        return self.FIELDS, _row(found.model_dump(mode="json"), self.FIELDS)


class CreditVoid(_Base, ShowOne):
    """Void a credit's balance (fraud, charge-back); recorded with its reason."""

    FIELDS = CREDIT_FIELDS

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("credit_id", metavar="CREDIT_ID")
        parser.add_argument("--reason", required=True,
                            type=reason_of(_("voiding a credit needs a reason")),
                            help="Why (kept in the ledger).")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        credit = self.service.void_credit(parsed_args.credit_id, reason=parsed_args.reason,
                                          at=parsed_args.at)
        return self.FIELDS, _row(_credit_data(credit), self.FIELDS)


# -- settlement ------------------------------------------------------------------------


class Settle(_Base, Lister):
    """Apply credit to invoices (an object, an array or JSON lines; '-' for stdin).

    Prints one result per invoice, in input order: its settlement, or, for a
    refused invoice (malformed, or settled before with other content), an
    object with its error; the run goes on. Invoices are settled in batches,
    one transaction each, and a re-run settles nothing twice. Exit status 3
    when some were refused.
    """

    # A table has a row per invoice: "note" and "error" are empty when unset.
    FIELDS = (*SETTLEMENT_FIELDS, "note", "error")

    takes_at = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("file", metavar="FILE", help="Invoice file, or '-' for stdin.")
        parser.add_argument("--batch-size", type=parse_batch_size, default=1000,
                            help="Invoices per transaction (default 1000).")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        processor = cast(invoice.InvoiceProcessor, stevedore_driver.DriverManager(
            namespace=invoice.NAMESPACE,
            name="cloud_credit",
            invoke_on_load=True,
            invoke_kwds={"conf": self.app.conf, "service": self.service},
        ).driver)
        source = settle_input.open_source(parsed_args.file, self.app.stdin)
        with source:
            self._total = source.count()
            if not self._total:
                name = _("standard input") if parsed_args.file == "-" else parsed_args.file
                raise exceptions.InvalidInput(_("no invoice in %(name)s: nothing to settle")
                                              % {"name": name})
            progress = settle_input.progress_bar(self._total, self.app.stderr)
            results = self._counted(processor.process_many(
                source.documents(), batch_size=parsed_args.batch_size, at=parsed_args.at
            ))
            if parsed_args.formatter == "json":
                wanted = _selected_columns(parsed_args.columns, (*SETTLEMENT_FIELDS, "note"))
                _stream_json(
                    (r if invoice.is_refusal(r)
                     else {name: r[name] for name in wanted if name in r} for r in results),
                    self.app.stdout, progress, indent=None if parsed_args.noindent else 2,
                )
                return (), ()
            rows: list[tuple[Any, ...]] = []
            try:
                rows.extend(_settle_row(r) for r in _ticking(results, progress))
            except BaseException:
                # The batches settled before the error (or Ctrl-C) are committed:
                # the table says which, above the error line.
                if rows:
                    super().produce_output(parsed_args, self.FIELDS, rows)
                raise
        return self.FIELDS, rows

    def _counted(self, results: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for result in results:
            if invoice.is_refusal(result):
                self._refused += 1
            yield result

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._refused, self._total = 0, 0
        result = super().run(parsed_args)
        if result == 0 and self._refused:
            counts = {"refused": count(self._refused, now=True),
                      "total": count(self._total, now=True)}
            if self._refused >= self._total:
                refused = ngettext(
                    "%(total)s invoice refused, none settled (its error is in the output)",
                    "all %(total)s invoices refused, none settled (each refusal's error is "
                    "in the output)", self._total) % counts
            else:
                refused = ngettext(
                    "%(refused)s of %(total)s invoices refused, the rest settled (its error "
                    "is in the output)",
                    "%(refused)s of %(total)s invoices refused, the rest settled (each "
                    "refusal's error is in the output)", self._refused) % counts
            self.app.stderr.write(f"ovh-credit: {refused}\n")
            return SOME_REFUSED
        return result

    def produce_output(self, parsed_args: argparse.Namespace, column_names: Any,
                       data: Any) -> int:
        if not column_names:  # already streamed
            return 0
        return int(super().produce_output(parsed_args, column_names, data))


#: ``settle``'s exit status when the run went through but refused some invoices.
SOME_REFUSED = 3


def _settle_row(result: dict[str, Any]) -> tuple[Any, ...]:
    """A settlement's row, or a refusal's under the settlement's names; a field that
    does not apply is an empty cell."""
    if invoice.is_refusal(result):
        result = {"invoice_id": result["invoice"], "project_id": result["project_id"],
                  "error": result["error"]}
    return tuple("" if cell is None else cell for cell in _row(result, Settle.FIELDS))


def _ticking(items: Iterable[dict[str, Any]], progress: Any) -> Iterator[dict[str, Any]]:
    try:
        for item in items:
            progress.update(1)
            yield item
    finally:
        progress.close()


def _selected_columns(requested: Sequence[str] | None, fields: Sequence[str]) -> list[str]:
    """The columns ``-c`` keeps, in the command's order (as cliff selects them)."""
    if not requested:
        return list(fields)
    wanted = {_normalize_column(c) for c in requested}
    return [name for name in fields if name in wanted]


def _stream_json(items: Iterable[dict[str, Any]], out: IO[str], progress: Any,
                 *, indent: int | None) -> None:
    """A JSON array written as settlements commit: memory stays flat on huge runs."""
    first = True
    try:
        for item in _ticking(items, progress):
            # The bracket waits for the first settlement: a run refused in its
            # first batch prints nothing on stdout.
            out.write("[\n" if first else ",\n")
            first = False
            text = json.dumps(item, indent=indent)
            out.write(text if indent is None else "  " + text.replace("\n", "\n  "))
    except BaseException:
        # A batch refused mid-run: the batches printed so far are committed,
        # so stdout stays a valid array of them; the error goes to stderr.
        if not first:
            out.write("\n]\n")
        raise
    out.write("[]\n" if first else "\n]\n")


class SettlementShow(_Base, ShowOne):
    """Show a recorded settlement: which credit paid how much of each line, and why.

    KEY is the settlement's key, as a credit's ledger entries show it
    (``settlement_key``: ``invoice/PROJECT/INVOICE``, a CloudKitty period's);
    with --project, KEY is the id of that project's invoice.
    """

    FIELDS = SETTLEMENT_RECORD_FIELDS

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("key", metavar="KEY")
        parser.add_argument("--project", metavar="PROJECT", default=None,
                            help="Read KEY as the id of this project's invoice.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        if parsed_args.project is None:
            record = self.service.show_settlement(parsed_args.key)
        else:
            record = self.service.show_invoice_settlement(parsed_args.project, parsed_args.key)
        data = record.model_dump(mode="json")
        # "note" only when set, as in the settlement contract.
        names = tuple(name for name in self.FIELDS if name in data)
        row = list(_row(data, names))
        row[names.index("allocations")] = _Explained((data["allocations"], record.currency))
        return names, tuple(row)


class _Explained(columns.FormattableColumn[Any]):
    """A settlement's allocations: the JSON objects, or one sentence per allocation."""

    def human_readable(self) -> str:
        allocations, currency = self._value
        return "\n".join(explained.sentence(a, currency) for a in allocations)

    def machine_readable(self) -> list[Any]:
        return list(self._value[0])


class Expire(_Base, ShowOne):
    """Lapse unpaid orders and record the balance lost by credits past their end."""

    FIELDS = ("at", "orders_lapsed", "credits_expired", "amount_expired")

    takes_at = True

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        progress = settle_input.progress_bar(None, self.app.stderr, unit="credit")
        try:
            summary = self.service.expire(at=parsed_args.at, progress=progress.update)
        finally:
            progress.close()
        amounts = {
            currency: money.to_str(amount, currency)
            for currency, amount in sorted(summary.amount_expired.items())
        }
        return self.FIELDS, (contracts.isoformat(summary.at), summary.orders_lapsed,
                             summary.credits_expired, _Amounts(amounts))


class NotifyExpiring(_Base, ShowOne):
    """Send cloud_credit.credit.expiring for the forecast's warnings (credits that will
    still hold money at their end, within [cloud_credit] forecast_warning_days), once per
    credit and threshold. Exit status 1 when the notification transport failed to send
    some (they are not recorded as sent: the next run sends them)."""

    FIELDS = ("at", "forecast_warning_days", "projects_forecast", "credits_notified",
              "by_threshold")

    takes_at = True

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        summary = self.service.notify_expiring(at=parsed_args.at)
        self._failure = summary.send_failure
        self._unsent = summary.credits_unsent
        counts = {str(days): summary.by_threshold.get(days, 0) for days in summary.thresholds}
        return self.FIELDS, (contracts.isoformat(summary.at), Listing(summary.thresholds),
                             summary.projects_forecast, summary.credits_notified,
                             _Checked(counts))

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._unsent, self._failure = 0, ""
        result = super().run(parsed_args)
        if result == 0 and self._unsent:
            # The run stopped at the first batch it could not send: the count is
            # that batch's, and projects after it were not looked at. What failed
            # is said here: without --log-file or -v, no log has it.
            failure = (_("the notification transport failed: %(error)s")
                       % {"error": self._failure} if self._failure
                       else _("the notification transport failed"))
            unsent = ngettext(
                "%(unsent)s expiry warning could not be sent (%(failure)s); it is not "
                "recorded as sent, and the run stopped there: the next run sends it and "
                "the rest",
                "%(unsent)s expiry warnings could not be sent (%(failure)s); they are not "
                "recorded as sent, and the run stopped there: the next run sends them and "
                "the rest", self._unsent) % {"unsent": count(self._unsent, now=True),
                                             "failure": failure}
            self.app.stderr.write(f"ovh-credit: {unsent}\n")
            return 1
        return result


class _Amounts(columns.FormattableColumn[dict[str, str]]):
    def human_readable(self) -> str:
        return "\n".join(f"{money.to_human(money.parse_amount(v, allow_zero=True), c)}"
                         for c, v in self._value.items()) or "-"

    def machine_readable(self) -> dict[str, str]:
        return self._value


class Audit(_Base, ShowOne):
    """Check every ledger invariant; exits 1 when one is violated."""

    FIELDS = ("ok", "checked", "violations")

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        report = self.service.audit()
        self._ok = report.ok
        return self.FIELDS, (report.ok, _Checked(report.checked), Listing(report.violations))

    def run(self, parsed_args: argparse.Namespace) -> int:
        result = super().run(parsed_args)
        if result == 0 and not self._ok:
            # English, as the audit's lines are (docs/translations.md).
            self.app.stderr.write("ovh-credit: audit found ledger violations\n")
            return 1
        return result


class _Checked(columns.FormattableColumn[dict[str, int]]):
    def human_readable(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self._value.items())

    def machine_readable(self) -> dict[str, int]:
        return self._value


COMMANDS: dict[str, type[Command]] = {
    "db upgrade": DbUpgrade,
    "order create": OrderCreate,
    "order pay": OrderPay,
    "order cancel": OrderCancel,
    "order list": OrderList,
    "order show": OrderShow,
    "voucher activate": VoucherActivate,
    "voucher check": VoucherCheck,
    "voucher pending": VoucherPending,
    "voucher unblock": VoucherUnblock,
    "voucher attempts": VoucherAttempts,
    "credit list": CreditList,
    "credit show": CreditShow,
    "credit forecast": CreditForecast,
    "credit void": CreditVoid,
    "settle": Settle,
    "settlement show": SettlementShow,
    "expire": Expire,
    "notify-expiring": NotifyExpiring,
    "audit": Audit,
}
