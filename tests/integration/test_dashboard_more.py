"""The "Credits & Vouchers" panel in a real browser, at more of its edges: an admin
looking at a customer's project (``?project_id=``) stays on it through an order.

The same stack as tests/integration/test_dashboard.py (its ``stack`` fixture: Keystone,
``ovh-credit-api`` as the catalog's ``rating`` service, Horizon, chromium), started
again for this module.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.test_dashboard import Stack, pytestmark, stack

__all__ = ["pytestmark", "stack"]


def _project_box(stack: Stack) -> str:
    from selenium.webdriver.common.by import By

    stack.wait_for("#cloud-credit-project-id")
    return str(stack.driver.find_element(By.ID, "cloud-credit-project-id")
               .get_attribute("value"))


@pytest.mark.timeout(900)
def test_admin_on_a_customers_project_stays_there_through_an_order(stack: Stack) -> None:
    from selenium.webdriver.common.by import By

    customer = stack.keystone.personas["member"].project_id
    stack.login("admin")
    assert _project_box(stack) != customer
    stack.get(f"/project/cloud_credit/?project_id={customer}")
    stack.wait_for("#credits")
    assert _project_box(stack) == customer

    # Add credit for the customer: the order is the customer's, its page keeps the project.
    stack.driver.find_element(By.ID, "credits__action_add_credit").click()
    stack.wait_for("#id_amount")
    stack.fill("id_amount", "25.00")
    stack.submit()
    stack.wait_for(".cloud-credit-pending")
    order_id = stack.driver.find_element(By.CSS_SELECTOR, ".cloud-credit-order-id").text
    orders = stack.api_call("member", "GET", "/orders").json()["orders"]
    assert order_id in [o["id"] for o in orders]
    assert parse_qs(urlsplit(stack.driver.current_url).query) == {"project_id": [customer]}

    # "Back" returns to the customer's project, not the admin's own.
    stack.driver.find_element(By.LINK_TEXT, "Back to Credits & Vouchers").click()
    stack.wait_for("#orders")
    assert _project_box(stack) == customer
    assert any(order_id[:8] in row[0] for row in stack.rows("orders")), stack.rows("orders")

    # The order's link in the list keeps it too, and so does its page's "Back".
    stack.driver.find_element(By.LINK_TEXT, order_id[:8]).click()
    stack.wait_for(".cloud-credit-order-id")
    stack.driver.find_element(By.LINK_TEXT, "Back to Credits & Vouchers").click()
    stack.wait_for("#orders")
    assert _project_box(stack) == customer
    stack.shot("more-01-admin-back-on-customer")
