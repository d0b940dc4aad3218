"""Ledger tables.

Every name starts with ``cloud_credit_`` so the ledger can live in a host's
own database (CloudKitty's) without clashing. Ledger entries are
append-only; the balance columns of a credit are a cache of its entries,
updated in the same transaction (``ovh-credit audit`` proves it).
Amounts are :class:`~ovh_credit_plugin.ledger.types.Money`, never floats.
Text is :class:`ExactString` or :class:`ExactText`: compared and ordered byte by
byte on every backend (ids that differ only by case are two ids; keys sort as the
code sorts them), whatever the database's default collation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.ext.compiler import compiles

from ovh_credit_plugin.ledger.types import AmountsAddUp, Money, UTCDateTime, non_negative

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.compiler import TypeCompiler

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def mysql_binary_collation(dialect: Dialect) -> str:
    """The utf8mb4 collation that compares text byte by byte on this MySQL or MariaDB server.

    Their default collations (utf8mb4_general_ci, ..._0900_ai_ci, ...) ignore
    case and accents: "acme" would find project "ACME"'s rows, "inv-a" be taken
    for invoice "INV-a". SQLite compares text byte by byte, and so does the
    Python code; PostgreSQL too for equality (its order is that of
    :data:`POSTGRESQL_COLLATION`). Binary, and NO PAD too: utf8mb4_bin, the one
    name both servers know, pads with spaces ('k' = 'k '), which would make two
    Idempotency-Keys one. MariaDB (10.2 on) calls it utf8mb4_nopad_bin, MySQL
    (8.0.17 on) utf8mb4_0900_bin; an older MySQL only has utf8mb4_bin.
    Migration 0007_binary_collation converts the tables to it.
    """
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    if (getattr(dialect, "server_version_info", None) or ()) >= (8, 0, 17):
        return "utf8mb4_0900_bin"
    return "utf8mb4_bin"


#: The collation of the ledger's text on PostgreSQL: byte order, which is code-point
#: order in UTF-8 (Python's). The database's default may be linguistic (Debian's
#: cluster takes the system locale, en_US.UTF-8; ICU locales): "acme" sorted next to
#: "ACME", punctuation weighed apart, and a range of settlement keys (CloudKitty's
#: overlap check) held other scopes' keys. Migration 0009_postgresql_c_collation
#: converts the tables to it; the indexes are then in this order too.
POSTGRESQL_COLLATION = "C"


class ExactString(String):
    """A ``VARCHAR`` compared and ordered byte by byte: utf8mb4 with
    :func:`mysql_binary_collation` on MySQL and MariaDB, :data:`POSTGRESQL_COLLATION`
    on PostgreSQL, plain ``VARCHAR`` on SQLite (already exact there)."""


class ExactText(Text):
    """A ``TEXT`` compared and ordered byte by byte, as :class:`ExactString`."""


@compiles(ExactString, "mysql")
@compiles(ExactString, "mariadb")
def _exact_string(type_: ExactString, compiler: TypeCompiler, **kw: Any) -> str:
    from sqlalchemy.dialects import mysql  # loaded already there; not on every start

    exact = mysql.VARCHAR(type_.length, charset="utf8mb4",
                          collation=mysql_binary_collation(compiler.dialect))
    return compiler.process(exact, **kw)


@compiles(ExactText, "mysql")
@compiles(ExactText, "mariadb")
def _exact_text(type_: ExactText, compiler: TypeCompiler, **kw: Any) -> str:
    from sqlalchemy.dialects import mysql

    exact = mysql.TEXT(charset="utf8mb4", collation=mysql_binary_collation(compiler.dialect))
    return compiler.process(exact, **kw)


@compiles(ExactString, "postgresql")
def _exact_string_postgresql(type_: ExactString, compiler: TypeCompiler, **kw: Any) -> str:
    return compiler.process(String(type_.length, collation=POSTGRESQL_COLLATION), **kw)


@compiles(ExactText, "postgresql")
def _exact_text_postgresql(type_: ExactText, compiler: TypeCompiler, **kw: Any) -> str:
    return compiler.process(Text(collation=POSTGRESQL_COLLATION), **kw)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 255  # identifiers from hosts: project ids, invoice ids, line ids

projects = Table(
    "cloud_credit_projects",
    metadata,
    Column("id", ExactString(ID), primary_key=True),
    Column("currency", ExactString(3), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

credits = Table(
    "cloud_credit_credits",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("project_id", ExactString(ID), ForeignKey(projects.c.id), nullable=False),
    Column("kind", ExactString(16), nullable=False),
    Column("description", ExactText(), nullable=False),
    # The order id of purchased credit, the voucher code of a voucher.
    Column("source", ExactString(ID), nullable=False),
    Column("currency", ExactString(3), nullable=False),
    # JSON list of product names; empty: every product.
    Column("products", ExactText(), nullable=False),
    Column("total", Money(), nullable=False),
    Column("used", Money(), nullable=False),
    Column("expired", Money(), nullable=False),
    Column("voided", Money(), nullable=False),
    Column("available", Money(), nullable=False),
    Column("valid_from", UTCDateTime(), nullable=False),
    Column("valid_until", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("voided_at", UTCDateTime(), nullable=True),
    Column("void_reason", ExactText(), nullable=True),
    CheckConstraint("kind IN ('voucher', 'purchased')", name="kind"),
    # The ledger invariant, kept by CreditRow before every write, also
    # refused by the database: a bug or a hand-made UPDATE cannot store it.
    CheckConstraint(AmountsAddUp(("used", "expired", "voided", "available"), "total"),
                    name="balances"),
    UniqueConstraint("project_id", "kind", "source"),
    # Settlement reads a project's credits that still hold a balance.
    Index(None, "project_id", "available"),
    # The expiry job scans credits past their end that still hold a balance.
    Index(None, "valid_until"),
)

ledger_entries = Table(
    "cloud_credit_ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("credit_id", BigId, ForeignKey(credits.c.id), nullable=False),
    Column("type", ExactString(16), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("settlement_key", ExactString(600), nullable=True),
    Column("line_id", ExactString(ID), nullable=True),
    Column("note", ExactText(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint(
        "type IN ('grant', 'debit', 'reversal', 'expiry', 'void')", name="type"
    ),
    # The entry's type gives the direction: amounts are never negative.
    CheckConstraint(non_negative("amount"), name="amount"),
    Index(None, "credit_id"),
    Index(None, "settlement_key"),
)

orders = Table(
    "cloud_credit_orders",
    metadata,
    Column("id", ExactString(36), primary_key=True),
    Column("project_id", ExactString(ID), ForeignKey(projects.c.id), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("currency", ExactString(3), nullable=False),
    Column("status", ExactString(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("paid_at", UTCDateTime(), nullable=True),
    Column("cancelled_at", UTCDateTime(), nullable=True),
    Column("payment_url", ExactText(), nullable=False),
    # One credit per paid order, whatever the code does.
    Column("credit_id", BigId, ForeignKey(credits.c.id), nullable=True, unique=True),
    CheckConstraint(
        "status IN ('pending', 'paid', 'cancelled', 'expired')", name="status"
    ),
    CheckConstraint(non_negative("amount"), name="amount"),
    Index(None, "project_id", "created_at"),
    Index(None, "status", "expires_at"),
)

# Order creation under a client's Idempotency-Key (the REST API): the same
# key and request return the order made the first time.
order_keys = Table(
    "cloud_credit_order_keys",
    metadata,
    Column("project_id", ExactString(ID), primary_key=True),
    Column("idempotency_key", ExactString(ID), primary_key=True),
    # SHA-256 of the request (amount, currency): the same key with another
    # request is a conflict, never a second order.
    Column("fingerprint", ExactString(64), nullable=False),
    Column("order_id", ExactString(36), ForeignKey(orders.c.id), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

settlements = Table(
    "cloud_credit_settlements",
    metadata,
    # "invoice/<project>/<invoice id>" (service.invoice_key) or
    # "cloudkitty/<scope>/<start>/<end>".
    Column("key", ExactString(600), primary_key=True),
    Column("project_id", ExactString(ID), nullable=False),
    Column("invoice_id", ExactString(ID), nullable=False),
    Column("currency", ExactString(3), nullable=False),
    Column("total", Money(), nullable=False),
    Column("credit_applied", Money(), nullable=False),
    Column("amount_due", Money(), nullable=False),
    # SHA-256 of the settled content: a replay must match it.
    Column("fingerprint", ExactString(64), nullable=False),
    # JSON [[line_id, credit_id, kind, amount, place, skipped?], ...] of the current
    # revision (place and skipped: why the credit paid, ledger/settlements.py);
    # the debit and reversal entries carrying this key are the truth.
    Column("allocations", ExactText(), nullable=False),
    Column("revision", Integer(), nullable=False),
    Column("settled_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Why credit could not pay the charge ("currency_mismatch"); NULL otherwise.
    Column("note", ExactString(32), nullable=True),
    CheckConstraint(AmountsAddUp(("credit_applied", "amount_due"), "total"), name="amounts"),
    Index(None, "project_id"),
)

voucher_activations = Table(
    "cloud_credit_voucher_activations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("project_id", ExactString(ID), nullable=False),
    Column("code", ExactString(64), nullable=False),
    # Deterministic per (project, code): a retry after a crash recovers the
    # redemption the catalog recorded but the ledger did not.
    Column("idempotency_key", ExactString(64), nullable=False, unique=True),
    Column("status", ExactString(16), nullable=False),
    Column("redemption_id", ExactString(ID), nullable=True),
    Column("credit_id", BigId, ForeignKey(credits.c.id), nullable=True, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("status IN ('pending', 'granted')", name="status"),
    UniqueConstraint("project_id", "code"),
)

# An operator's `voucher unblock`: who ended a project's throttle window,
# when and why. Its id is drawn before the transaction (a retry after a lost
# COMMIT finds it); the tries it cleared point to it.
voucher_unblocks = Table(
    "cloud_credit_voucher_unblocks",
    metadata,
    Column("id", ExactString(36), primary_key=True),
    Column("project_id", ExactString(ID), nullable=False),
    Column("reason", ExactText(), nullable=False),
    Column("operator", ExactString(ID), nullable=False),
    # How many counted tries it cleared.
    Column("cleared", Integer(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "project_id", "created_at"),
)

voucher_attempts = Table(
    "cloud_credit_voucher_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("project_id", ExactString(ID), nullable=False),
    Column("succeeded", Boolean(), nullable=False),
    Column("reason", ExactText(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # Drawn by the client once per try, before its transaction: a retry after
    # a lost COMMIT finds the row its first attempt wrote instead of adding
    # one (which would count the try twice).
    Column("attempt_key", ExactString(36), nullable=False, unique=True),
    # Set when an operator's unblock cleared this try: it no longer counts.
    Column("unblock_id", ExactString(36),
           # Named: the convention's name is longer than MariaDB's 64 characters.
           ForeignKey(voucher_unblocks.c.id, name="fk_cloud_credit_voucher_attempts_unblock_id"),
           nullable=True),
    Index(None, "project_id", "created_at"),
)

# Redemptions made by the 'file' voucher catalog driver: the catalog's side
# of the ledger when the catalog is a local file.
catalog_redemptions = Table(
    "cloud_credit_catalog_redemptions",
    metadata,
    Column("id", ExactString(36), primary_key=True),
    Column("code", ExactString(64), nullable=False),
    Column("project_id", ExactString(ID), nullable=False),
    Column("idempotency_key", ExactString(64), nullable=False, unique=True),
    Column("document", ExactText(), nullable=False),
    Column("redeemed_at", UTCDateTime(), nullable=False),
    Index(None, "code"),
)

# The file catalog's redemptions per code: the row its max_redemptions
# decision updates (conditionally), in the redemption's transaction. A count
# of catalog_redemptions rows before an insert would need SERIALIZABLE, which
# Galera does not certify across nodes (two nodes insert two different rows,
# both commit); two updates of this one row conflict on every backend.
catalog_voucher_counts = Table(
    "cloud_credit_catalog_voucher_counts",
    metadata,
    Column("code", ExactString(64), primary_key=True),
    Column("redemptions", Integer(), nullable=False),
    CheckConstraint("redemptions >= 0", name="non_negative"),
)

# The expiry warnings sent (``ovh-credit notify-expiring``): one row per credit
# and threshold, so that each is sent once however often the job runs. Its
# primary key is what two concurrent jobs conflict on.
expiry_notices = Table(
    "cloud_credit_expiry_notices",
    metadata,
    Column("credit_id", BigId, ForeignKey(credits.c.id), primary_key=True,
           autoincrement=False),
    Column("threshold_days", Integer(), primary_key=True, autoincrement=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # Set (the wall clock) while the warning is being sent; cleared once the transport
    # has taken it. Still set after expiry_warning_send_timeout: its run died.
    Column("sending_since", UTCDateTime(), nullable=True),
)
