"""The declared text columns compare byte by byte: a binary NO PAD collation on MySQL and
MariaDB (each names its own), "C" on PostgreSQL (whose equality is exact already, but
whose order is the database's collation's), nothing added on SQLite (exact already)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateTable

from ovh_credit_plugin.ledger import schema

# A column's line in CREATE TABLE: its (quoted) name, a text type, the rest.
TEXT_TYPE = re.compile(r'^\t[`"]?(\w+)[`"]? (VARCHAR\(\d+\)|TEXT)(?![\w(])(.*)$', re.MULTILINE)


def server(*, mariadb: bool, version: tuple[int, ...]) -> Dialect:
    """The MySQL dialect as it is once connected to that server."""
    dialect = mysql.dialect()
    dialect.is_mariadb = mariadb
    dialect.server_version_info = version
    return dialect


def text_columns(dialect: Dialect) -> dict[tuple[str, str], str]:
    """(table, column) -> what follows the type in CREATE TABLE, for every text column."""
    return {(table.name, name): rest.strip()
            for table in schema.metadata.sorted_tables
            for name, _, rest in TEXT_TYPE.findall(str(CreateTable(table).compile(
                dialect=dialect)))}


def declared_text_columns() -> set[tuple[str, str]]:
    found = set()
    for table in schema.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, sa.String):
                assert isinstance(column.type, (schema.ExactString, schema.ExactText)), (
                    f"{table.name}.{column.name}: text columns are ExactString or ExactText")
                found.add((table.name, column.name))
    return found


@pytest.mark.parametrize(("mariadb", "version", "collation"), [
    (True, (10, 11, 19), "utf8mb4_nopad_bin"),
    (True, (11, 8, 3), "utf8mb4_nopad_bin"),
    (False, (8, 0, 36), "utf8mb4_0900_bin"),
    (False, (8, 4, 0), "utf8mb4_0900_bin"),
    (False, (5, 7, 44), "utf8mb4_bin"),  # the only binary one it has (PAD SPACE)
])
def test_every_text_column_is_binary_on_mysql_and_mariadb(
    mariadb: bool, version: tuple[int, ...], collation: str
) -> None:
    dialect = server(mariadb=mariadb, version=version)
    assert schema.mysql_binary_collation(dialect) == collation
    columns = text_columns(dialect)
    assert set(columns) == declared_text_columns()
    for place, rest in columns.items():
        assert rest.startswith(f"CHARACTER SET utf8mb4 COLLATE {collation}"), (place, rest)


def test_every_text_column_is_in_the_c_collation_on_postgresql() -> None:
    # A database created in a linguistic locale (en_US.UTF-8, ICU) orders text apart
    # from the code: tests/functional/test_postgresql_linguistic_collation.py.
    columns = text_columns(postgresql.dialect())
    assert set(columns) == declared_text_columns()
    for place, rest in columns.items():
        assert rest.startswith('COLLATE "C"'), (place, rest)


def test_nothing_is_added_on_sqlite() -> None:
    dialect = sqlite.dialect()
    ddl = "\n".join(str(CreateTable(table).compile(dialect=dialect))
                    for table in schema.metadata.sorted_tables)
    assert "COLLATE" not in ddl and "CHARACTER SET" not in ddl
    # Plain VARCHAR and TEXT (on SQLite, amounts are text too).
    assert declared_text_columns() <= set(text_columns(dialect))
