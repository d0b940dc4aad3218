"""What a log line calls a PostgreSQL server going away under a transaction.

A restart, a failover or ``pg_terminate_backend`` ends the connection with
57P01 (admin_shutdown), and the retry warning said only
``(OperationalError SQLSTATE 57P01)``: the on-call engineer had to look the code
up. These are the codes a server going away answers with; each has its words,
like the deadlocks and read-only refusals beside them.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import exc

from ovh_credit_plugin.ledger.database import describe_failure

WORDS = {
    "57P01": "server shut down the connection (a restart, a failover, or an operator)",
    "57P02": "server crashed",
    "57P03": "server not accepting connections yet (starting up or shutting down)",
    "08006": "connection failure",
    "08003": "connection does not exist",
}


@pytest.mark.parametrize("sqlstate", WORDS)
def test_a_server_going_away_is_named_in_words(sqlstate: str) -> None:
    error = exc.DBAPIError.instance(
        "SELECT 1", (), psycopg.errors.lookup(sqlstate)("terminating connection"),
        psycopg.Error)
    assert describe_failure(error) == f"OperationalError SQLSTATE {sqlstate}: {WORDS[sqlstate]}"
