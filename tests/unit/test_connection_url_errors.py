"""Database plumbing an operator sees: what errors about the ledger's URL show."""

from __future__ import annotations

import pytest

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.ledger import engine

SECRET = "S3cretPW"


@pytest.mark.parametrize("url", [
    f"mysql+pymysql//ledger:{SECRET}@db.example/ledger",  # ':' forgotten after the scheme
    f"mysql+pymysql://ledger:{SECRET}@db.example:33o6/ledger",  # a typo in the port
    f"postgresql+psycopg://ledger:{SECRET}@db.example:5432x/ledger",
])
def test_a_bad_connection_url_is_a_config_error_that_hides_the_password(url: str) -> None:
    with pytest.raises(exceptions.ConfigError) as raised:
        engine.create_engine(url)
    message = str(raised.value)
    assert SECRET not in message
    assert "[cloud_credit] connection" in message
    assert "ledger" in message  # still names what was written, but the password


def test_shown_and_describe_error_never_fail_on_a_bad_url() -> None:
    url = f"mysql+pymysql://ledger:{SECRET}@db.example:33o6/ledger"
    assert SECRET not in engine.shown(url)
    assert SECRET not in engine.describe_error(url, RuntimeError("boom"))
