"""The real ``openstack`` program with the plugin's commands against ``ovh-credit-api``.

The standalone server (``auth_strategy = noauth``) runs as its own process on
a loopback port; ``openstack rating credit ...`` runs as a subprocess through
python-cloudkittyclient's ``rating`` client with the ``ovh-credit-noauth``
auth plugin (the caller's project and roles as headers) and
``--os-cloud-credit-api standalone``. The customer's three actions (buy credit,
activate a voucher, list credits), then the payment system's and the admin's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import api_stack
from tests.support.process import ServerProcess

_reason = api_stack.api_skip_reason() or api_stack.client_skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

PROJECT = uuid.uuid4().hex
OTHER = uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = api_stack.start_standalone(tmp_path_factory.mktemp("standalone"),
                                        auth_strategy="noauth")
    try:
        yield server
    finally:
        server.stop()


def osc(server: ServerProcess, *args: str, project: str = PROJECT, roles: str = "member,reader"
        ) -> tuple[int, Any, str]:
    """``openstack ... -f json``: exit status, parsed output, stderr."""
    result = api_stack.openstack(
        "--os-auth-type", "ovh-credit-noauth", "--os-endpoint", server.url,
        "--os-project-id", project, "--os-roles", roles,
        "--os-cloud-credit-api", "standalone", *args, "-f", "json")
    output = json.loads(result.stdout) if result.returncode == 0 and result.stdout else None
    return result.returncode, output, result.stderr.strip()


def test_customer_buys_credit_activates_a_voucher_and_lists_credits(
        server: ServerProcess) -> None:
    code, order, err = osc(server, "rating", "credit", "order", "create", "25.50")
    assert code == 0, err
    assert (order["amount"], order["currency"], order["status"]) == ("25.50", "EUR", "pending")
    assert order["project_id"] == PROJECT
    assert order["payment_url"].endswith(order["id"])

    code, credit, err = osc(server, "rating", "credit", "voucher", "activate", "welcome-2026")
    assert code == 0, err
    assert (credit["kind"], credit["total"], credit["available"]) == ("voucher", "50.00",
                                                                      "50.00")

    code, credits, err = osc(server, "rating", "credit", "list")
    assert code == 0, err
    # The order is not paid: no purchased credit yet, only the voucher.
    assert [(c["id"], c["kind"], c["available"]) for c in credits] == [
        (credit["id"], "voucher", "50.00")]

    code, orders, err = osc(server, "rating", "credit", "order", "list", "--status", "pending")
    assert code == 0, err
    assert [o["id"] for o in orders] == [order["id"]]


def test_payment_system_confirms_and_admin_voids(server: ServerProcess) -> None:
    project = uuid.uuid4().hex
    code, order, err = osc(server, "rating", "credit", "order", "create", "12.30",
                           project=project)
    assert code == 0, err

    # A customer cannot confirm its own payment.
    code, _, err = osc(server, "rating", "credit", "order", "pay", order["id"], "--amount",
                       "12.30", "--currency", "EUR", project=project)
    assert code == 1 and "HTTP 403" in err and len(err.splitlines()) == 1

    for _ in range(2):  # a webhook delivered twice: one credit
        code, paid, err = osc(server, "rating", "credit", "order", "pay", order["id"],
                              "--amount", "12.30", "--currency", "EUR",
                              project=uuid.uuid4().hex, roles="service")
        assert code == 0, err
        assert paid["status"] == "paid" and paid["credit_id"] is not None

    code, credits, err = osc(server, "rating", "credit", "list", "--long", "--project", project,
                             project=uuid.uuid4().hex, roles="admin")
    assert code == 0, err
    assert [(c["kind"], c["total"], c["project_id"]) for c in credits] == [
        ("purchased", "12.30", project)]

    code, voided, err = osc(server, "rating", "credit", "void", str(paid["credit_id"]),
                            "--reason", "charge-back",
                            project=uuid.uuid4().hex, roles="admin")
    assert code == 0, err
    assert (voided["status"], voided["voided"], voided["available"]) == (
        "voided", "12.30", "0.00")

    code, shown, err = osc(server, "rating", "credit", "show", str(paid["credit_id"]),
                           project=project)
    assert code == 0, err
    assert [e["type"] for e in shown["entries"]] == ["grant", "void"]


def test_another_projects_credit_is_a_404_on_one_line(server: ServerProcess) -> None:
    code, credit, err = osc(server, "rating", "credit", "voucher", "activate", "SPRING-10")
    assert code == 0, err
    code, _, err = osc(server, "rating", "credit", "show", str(credit["id"]), project=OTHER)
    assert code == 1
    assert len(err.splitlines()) == 1
    assert "HTTP 404" in err and "cloud_credit.not_found" in err


def test_order_cancel_and_a_refused_amount(server: ServerProcess) -> None:
    code, order, err = osc(server, "rating", "credit", "order", "create", "7")
    assert code == 0, err
    code, cancelled, err = osc(server, "rating", "credit", "order", "cancel", order["id"])
    assert code == 0 and cancelled["status"] == "cancelled", err
    code, _, err = osc(server, "rating", "credit", "order", "create", "7.001")
    assert code == 1 and "HTTP 400" in err and "cloud_credit.invalid_amount" in err
    code, _, err = osc(server, "rating", "credit", "order", "create", "seven")
    assert code == 2 and "invalid amount 'seven'" in err


def test_the_forecast_of_a_project_without_history(server: ServerProcess) -> None:
    project = uuid.uuid4().hex
    code, credit, err = osc(server, "rating", "credit", "voucher", "activate", "SPRING-10",
                            project=project)
    assert code == 0, err
    code, forecast, err = osc(server, "rating", "credit", "forecast", project=project,
                              roles="reader")
    assert code == 0, err
    # Nothing settled yet: nothing burns, and all of it (valid 30 days) is at risk.
    assert forecast == {
        "currency": "EUR", "available": "10.00", "burn_rate_per_day": "0.00",
        "window_days": 30, "runs_out_at": None, "amount_at_risk": "10.00",
        "credits": [{"credit_id": credit["id"], "kind": "voucher",
                     "valid_until": credit["valid_until"], "available": "10.00",
                     "expires_unused": "10.00"}],
        "warnings": [{"credit_id": credit["id"], "days_left": 30, "amount": "10.00"}]}
    code, _, err = osc(server, "rating", "credit", "forecast", "--project", project,
                       project=OTHER)
    assert code == 1 and "HTTP 403" in err and len(err.splitlines()) == 1
