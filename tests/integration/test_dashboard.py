"""The "Credits & Vouchers" panel in a real browser: Horizon, Keystone and the API, all real.

Keystone (tests/support/keystone.py) authenticates the personas; ``ovh-credit-api``
(``auth_strategy = keystone``) is the ``rating`` service of its catalog; Horizon
(tests/support/horizon.py) serves the panel from the plugin's enabled files on a
loopback port; Debian's chromium, driven by selenium, logs in as a customer would.
One browser for the whole module (a new login per persona), so the tier costs
about a minute once Horizon's stylesheets are cached.

Each step saves a screenshot in the run's artifact directory (printed at the end;
``OVH_CREDIT_BROWSER_ARTIFACTS`` chooses it). With ``OVH_CREDIT_DOCS_IMAGES=docs/images``
the pictures of docs/dashboard.md are written there too.

The tests run in order, as one customer's story: they share the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from tests.support import api_stack, horizon
from tests.support.keystone import PASSWORD, Keystone, v3_admin
from tests.support.process import ServerProcess

_reason = api_stack.api_skip_reason() or horizon.skip_reason()
pytestmark = [pytest.mark.skipif(_reason is not None, reason=_reason or ""),
              pytest.mark.timeout(900)]

WAIT = 60
T = TypeVar("T")
# Three failed voucher attempts per project and hour: the fourth is refused.
THROTTLE = "voucher_max_failed_attempts = 3"
# The forecast warns about a credit that ends within 30 days with money that will
# not be spent: a voucher ending in 20 days, on a project with no usage yet.
SOON = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=20)
VOUCHERS = {"vouchers": [
    *api_stack.VOUCHERS["vouchers"],
    {"code": "ENDING-SOON", "amount": "15.00", "currency": "EUR", "status": "active",
     "valid_from": None, "valid_until": SOON.strftime("%Y-%m-%dT%H:%M:%SZ"),
     "validity_days": None, "products": [], "max_redemptions": None, "redemptions": 0,
     "description": "Ending soon"},
    {"code": "OLD-2020", "amount": "5.00", "currency": "EUR", "status": "expired",
     "valid_from": None, "valid_until": "2021-01-01T00:00:00Z", "validity_days": None,
     "products": [], "max_redemptions": None, "redemptions": 0, "description": "Old"},
]}


@dataclass
class Stack:
    keystone: Keystone
    api: ServerProcess
    horizon: ServerProcess
    driver: Any
    artifacts: Path
    docs_images: Path | None
    ledger: Path

    #: Horizon's WEBROOT without its last slash ("" at the root).
    webroot = ""

    def get(self, path: str) -> None:
        self.driver.get(self.horizon.url + path)

    def shot(self, name: str, *, docs: str | None = None) -> None:
        self.driver.save_screenshot(str(self.artifacts / f"{name}.png"))
        if docs and self.docs_images is not None:
            self.docs_images.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.artifacts / f"{name}.png", self.docs_images / docs)

    def login(self, persona: str) -> None:
        from selenium.webdriver.common.by import By

        # Log out on the server (a POST in Horizon, with the CSRF token): the session
        # is gone there, so a late answer of the previous page (its /header/ request)
        # that sets the old session cookie again brings no one back. From a page with
        # no script of its own.
        self.get("/static/dashboard/img/logo.svg")
        csrf = self.driver.get_cookie("csrftoken")
        if csrf:
            self.driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fetch(arguments[1], {method: 'POST', credentials: 'same-origin',"
                " headers: {'X-CSRFToken': arguments[0]}})"
                ".then(r => done(r.status), e => done(String(e)));",
                csrf["value"], f"{self.webroot}/auth/logout/")
        self.driver.delete_all_cookies()
        self.get("/auth/login/")
        self.wait_for("#id_username")
        self.fill("id_username", persona)
        self.fill("id_password", PASSWORD)
        self.driver.find_element(By.ID, "loginBtn").click()
        self.wait_for("#credits")
        who = self.driver.find_element(By.CSS_SELECTOR, ".user-name").get_attribute(
            "textContent").strip()
        assert who == persona, f"logged in as {who!r}, not {persona!r}"

    def language(self, code: str) -> None:
        self.driver.add_cookie({"name": "horizon_language", "value": code, "path": "/"})

    def wait_for(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, WAIT).until(
                expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector)))
        except Exception:
            self.shot(f"failed-waiting-{selector.strip('#.').replace(' ', '_')}")
            raise AssertionError(f"no {selector!r} on {self.driver.current_url}:\n"
                                 f"{self.body()[:2000]}\n--- horizon log:\n"
                                 f"{self.horizon.tail(40)}") from None

    def body(self) -> str:
        from selenium.webdriver.common.by import By

        return _settled(lambda: str(self.driver.find_element(By.TAG_NAME, "body").text))

    def texts(self, selector: str) -> list[str]:
        from selenium.webdriver.common.by import By

        return _settled(lambda: [e.text for e in self.driver.find_elements(By.CSS_SELECTOR,
                                                                           selector)])

    def rows(self, table: str) -> list[list[str]]:
        """The data rows of a Horizon table, cell texts (an empty table: [])."""
        from selenium.webdriver.common.by import By

        def read() -> list[list[str]]:
            rows = []
            for row in self.driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr"):
                if "empty" in (row.get_attribute("class") or ""):
                    continue
                rows.append([cell.text for cell in row.find_elements(By.TAG_NAME, "td")])
            return rows

        return _settled(read)

    def fill(self, field: str, value: str) -> None:
        from selenium.webdriver.common.by import By

        self.settle()

        def type_in() -> None:
            element = self.driver.find_element(By.ID, field)
            element.clear()
            element.send_keys(value)

        _settled(type_in)

    def submit(self) -> None:
        """Submits the modal form, and returns once its answer has settled in: a new
        page, or the form again (with its errors) as the only modal on show."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.settle()
        # Not retried: a click that went through and failed late would order twice.
        button = self.driver.find_element(By.CSS_SELECTOR, ".modal-footer input[type=submit]")
        button.click()
        WebDriverWait(self.driver, WAIT).until(lambda _: _gone(button))
        self.settle()

    def settle(self) -> None:
        """Waits until Horizon has no request in flight and at most one modal, fully
        shown. Horizon answers a modal form by hiding it, showing a spinner and
        appending the answer as a new modal; the old one leaves the page only once
        its fade ends, so for a while a lookup can find a node on its way out."""
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            WebDriverWait(self.driver, WAIT).until(
                lambda driver: driver.execute_script(_SETTLED_PAGE))
        except Exception:
            self.shot("failed-settling")
            raise AssertionError(f"Horizon's modals never settled on "
                                 f"{self.driver.current_url}:\n{self.body()[:2000]}") from None

    def api_call(self, persona: str, method: str, path: str,
                 body: dict[str, Any] | None = None) -> requests.Response:
        return requests.request(method, f"{self.api.url}/v1{path}", json=body, timeout=60,
                                headers={"X-Auth-Token": self.keystone.token(persona)})


_SETTLED_PAGE = """
if (document.readyState !== 'complete') { return false; }
if (window.jQuery && window.jQuery.active !== 0) { return false; }
const modals = document.querySelectorAll('#modal_wrapper .modal');
if (modals.length === 0) { return true; }
const modal = modals[0];
return modals.length === 1 && modal.classList.contains('in')
    && !modal.classList.contains('loading') && getComputedStyle(modal).opacity === '1';
"""


def _settled(read: Callable[[], T]) -> T:
    """``read()`` again, from a new lookup, while Horizon's scripts are still replacing
    the nodes it found (a modal form's answer is swapped in after the old form left
    the page, so an element found in between can vanish under the call)."""
    for _ in range(20):
        try:
            return read()
        except Exception as error:
            if not _detached(error):
                raise
        time.sleep(0.1)
    return read()


def _gone(element: Any) -> bool:
    """Whether ``element`` has left the page (selenium's ``staleness_of``, which
    knows only the standard error)."""
    try:
        element.is_enabled()
    except Exception as error:
        if _detached(error):
            return True
        raise
    return False


def _detached(error: Exception) -> bool:
    """Whether a WebDriver error says the node has left the page. chromedriver says
    so with a standard "stale element reference", or, when the node leaves while it
    is being resolved, with an "unknown error" quoting the inspector's "does not
    belong to the document" (seen in CI on chromium 156, in ``staleness_of`` itself)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    return isinstance(error, StaleElementReferenceException) or (
        isinstance(error, WebDriverException)
        and "does not belong to the document" in str(error))


def _set_rating_service(keystone: Keystone, url: str | None) -> None:
    """The catalog's ``rating`` service at ``url`` only (None: none)."""
    from keystoneauth1 import session

    admin = session.Session(auth=v3_admin(keystone))
    base = keystone.auth_url
    for service in admin.get(f"{base}/services?type=rating").json()["services"]:
        admin.delete(f"{base}/services/{service['id']}")
    if url is None:
        return
    service = admin.post(f"{base}/services", json={"service": {
        "type": "rating", "name": "cloud-credit"}}).json()["service"]
    for interface in ("public", "internal", "admin"):
        admin.post(f"{base}/endpoints", json={"endpoint": {
            "service_id": service["id"], "interface": interface, "url": url,
            "region_id": "RegionOne"}})


@pytest.fixture(scope="module")
def stack(keystone: Keystone, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("dashboard")
    ledger = root / "ledger"
    ledger.mkdir()
    (ledger / "vouchers.json").write_text(json.dumps(VOUCHERS))
    artifacts = Path(os.environ.get("OVH_CREDIT_BROWSER_ARTIFACTS") or root / "screenshots")
    artifacts.mkdir(parents=True, exist_ok=True)
    docs = os.environ.get("OVH_CREDIT_DOCS_IMAGES")
    api = api_stack.start_standalone(ledger, auth_strategy="keystone",
                                     authtoken=keystone.authtoken_conf(),
                                     options=f"[cloud_credit]\n{THROTTLE}\n")
    started: list[Any] = [api]
    try:
        _set_rating_service(keystone, api.url)
        # Beside CloudKitty's own panels when cloudkitty-dashboard is installed (the
        # browser-tests extra has it), as on a cloud that runs both.
        server = horizon.start_horizon(root / "horizon", keystone_url=keystone.auth_url,
                                       api_mode="standalone",
                                       also_enable=horizon.cloudkitty_dashboard_enabled_files())
        started.append(server)
        driver = horizon.browser()
        try:
            yield Stack(keystone, api, server, driver, artifacts, Path(docs) if docs else None,
                        ledger)
        finally:
            driver.quit()
            print(f"\nscreenshots of the browser tier: {artifacts}")
    finally:
        # Other tests of this session's Keystone register their own rating service.
        _set_rating_service(keystone, None)
        for process in reversed(started):
            process.stop()


def test_member_buys_credit_and_sees_it_once_paid(stack: Stack) -> None:
    from selenium.webdriver.common.by import By

    stack.login("member")
    assert "Credits & Vouchers" in stack.driver.title
    assert stack.rows("credits") == []
    # Project > Rating: one group, CloudKitty's panels (when enabled) and ours.
    groups = stack.driver.find_elements(
        By.CSS_SELECTOR, "a[data-target='#sidebar-accordion-project-rating']")
    assert [g.get_attribute("textContent").strip() for g in groups] == ["Rating"]
    panels = [a.get_attribute("textContent").strip() for a in stack.driver.find_elements(
        By.CSS_SELECTOR, "#sidebar-accordion-project-rating a.openstack-panel")]
    expected = ["Rating", "Reporting"] if horizon.cloudkitty_dashboard_enabled_files() else []
    assert panels == [*expected, "Credits & Vouchers"], panels
    stack.shot("01-member-no-credit")

    stack.driver.find_element(By.ID, "credits__action_add_credit").click()
    stack.wait_for("#id_amount")
    # The view's words on validity reach the modal (Horizon's default: 13 months).
    assert ("Purchased credit is valid 13 months. Vouchers are used before purchased "
            "credit.") in stack.body()
    stack.fill("id_amount", "40.00")
    stack.shot("02-add-credit-form", docs="dashboard-add-credit.png")
    # Finer than the currency's cents: refused on the form, nothing ordered.
    stack.fill("id_amount", "12.345")
    stack.submit()
    stack.wait_for(".error, .alert-danger, .help-block")
    assert "EUR amounts have at most 2 decimals" in stack.body()
    # Beyond the API's purchase limit: the API's own refusal, shown on the form.
    stack.fill("id_amount", "99999999")
    stack.submit()
    stack.wait_for(".alert-danger")
    assert "amount" in stack.texts(".alert-danger")[0].lower()
    assert stack.api_call("member", "GET", "/orders").json()["orders"] == []
    stack.fill("id_amount", "40.00")
    stack.submit()

    stack.wait_for(".cloud-credit-pending")
    assert "The credit appears once paid" in stack.body()
    pay = stack.driver.find_element(By.CSS_SELECTOR, "a.cloud-credit-pay")
    assert pay.get_attribute("href").startswith("https://pay.example.invalid/orders/")
    order_id = stack.driver.find_element(By.CSS_SELECTOR, ".cloud-credit-order-id").text
    stack.shot("03-pending-order", docs="dashboard-pending-order.png")

    stack.get("/project/cloud_credit/")
    stack.wait_for("#orders")
    assert stack.rows("credits") == []
    [order_row] = stack.rows("orders")
    assert "Pending payment" in order_row and "Pay this order" in order_row

    # The payment system confirms the payment through the API (service role).
    response = stack.api_call("service", "POST", f"/orders/{order_id}/payment",
                              {"amount": "40.00", "currency": "EUR"})
    assert response.status_code == 200, response.text

    stack.get("/project/cloud_credit/")
    stack.wait_for("#credits")
    [credit] = stack.rows("credits")
    assert credit[0] == "Purchased credit"
    assert credit[2:5] == ["40.00 EUR", "0.00 EUR", "40.00 EUR"]
    assert credit[-2] == "Active" or "Active" in credit
    assert "Paid" in stack.rows("orders")[0]
    stack.shot("04-credit-appears")


def test_member_activates_vouchers_and_reads_the_refusals(stack: Stack) -> None:
    from selenium.webdriver.common.by import By

    stack.get("/project/cloud_credit/")
    stack.wait_for("#credits")
    stack.driver.find_element(By.ID, "credits__action_add_voucher").click()
    stack.wait_for("#id_code")
    refusals = {"NOPE-1234": "This voucher code is unknown",
                "OLD-2020": "This voucher cannot be used: it has expired"}
    for code, words in refusals.items():
        stack.fill("id_code", code)
        stack.submit()
        stack.wait_for(".alert-danger")
        assert words in stack.body(), code
    stack.shot("05-voucher-refused", docs="dashboard-voucher-refused.png")
    for code in ("WELCOME-2026", "ENDING-SOON"):
        stack.fill("id_code", code)
        if code == "WELCOME-2026":
            stack.shot("06-add-voucher-form", docs="dashboard-add-voucher.png")
        stack.submit()
        stack.wait_for("#credits")
        assert "Voucher activated" in stack.body()
        if code == "WELCOME-2026":
            stack.driver.find_element(By.ID, "credits__action_add_voucher").click()
            stack.wait_for("#id_code")


def _settle(stack: Stack, amount: str) -> None:
    """A charge of the project settled now, as an invoice host does (``ovh-credit settle``)."""
    invoice = stack.ledger / "invoice.json"
    invoice.write_text(json.dumps({
        "id": "INV-1", "project_id": stack.keystone.personas["member"].project_id,
        # To the microsecond: cut to the second, "now" could come before the
        # voucher the previous test activated in the same second, which then
        # was not yet valid and paid nothing.
        "currency": "EUR", "issued_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "lines": [{"id": "compute", "product": "compute", "amount": amount}]}))
    result = subprocess.run(
        [str(api_stack.BIN / "ovh-credit"), "--config-file",
         str(stack.ledger / "ovh-credit-api.conf"), "settle", str(invoice)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_table_in_consumption_order_with_the_forecast_warning(stack: Stack) -> None:
    # 6.00 of usage today: the voucher ending soonest pays it, and the forecast
    # burns 0.20 a day (6.00 over its 30 days).
    _settle(stack, "6.00")
    stack.get("/project/cloud_credit/")
    stack.wait_for("#credits")
    rows = stack.rows("credits")
    # Vouchers before purchased credit, the one ending soonest first: not the
    # order they were added in.
    assert [(r[0], r[1]) for r in rows] == [
        ("Voucher", "Ending soon"), ("Voucher", "Welcome voucher"),
        ("Purchased credit", rows[2][1])], rows
    assert [r[3:5] for r in rows] == [["6.00 EUR", "9.00 EUR"], ["0.00 EUR", "50.00 EUR"],
                                      ["0.00 EUR", "40.00 EUR"]]
    assert all("All products" in r for r in rows)
    [warning] = stack.texts(".cloud-credit-warning")
    # At 0.20 a day, its 20 days spend 4.00 of the 9.00 it holds: 5.00 will be lost.
    assert "5.00 EUR of your credit will expire unused on" in warning
    assert f" {SOON.day}, {SOON.year}" in warning, warning
    stack.shot("07-table-and-warning", docs="dashboard-credits.png")


def test_reader_sees_the_table_but_not_the_forms(stack: Stack) -> None:
    from selenium.webdriver.common.by import By

    stack.login("reader")
    assert len(stack.rows("credits")) == 3
    assert stack.driver.find_elements(By.ID, "credits__action_add_credit") == []
    assert stack.driver.find_elements(By.ID, "credits__action_add_voucher") == []
    assert "Actions" not in stack.texts("#credits thead th")
    stack.shot("08-reader")


def test_member_of_another_project_sees_none_of_it(stack: Stack) -> None:
    from selenium.webdriver.common.by import By

    stack.login("other")
    assert stack.rows("credits") == []
    assert stack.rows("orders") == []
    assert stack.texts(".cloud-credit-warning") == []
    stack.shot("09-other-project")

    # Guessing codes: after three wrong ones, the page says when to try again.
    stack.driver.find_element(By.ID, "credits__action_add_voucher").click()
    stack.wait_for("#id_code")
    for attempt in range(4):
        stack.fill("id_code", f"GUESS-{attempt}")
        stack.submit()
        stack.wait_for(".alert-danger")
    [refusal] = stack.texts(".alert-danger")
    assert refusal.startswith("Too many wrong voucher codes were tried on this project: you "
                              "can try again after "), refusal
    now = dt.datetime.now(dt.timezone.utc)
    assert str(now.year) in refusal
    stack.shot("10-voucher-throttled", docs="dashboard-voucher-throttled.png")


def test_admin_voids_a_credit_of_any_project(stack: Stack) -> None:
    from selenium.webdriver.common.by import By

    alpha = stack.keystone.personas["member"].project_id
    stack.login("admin")
    stack.get(f"/project/cloud_credit/?project_id={alpha}")
    stack.wait_for("#credits")
    rows = stack.rows("credits")
    assert [r[1] for r in rows][:2] == ["Ending soon", "Welcome voucher"]
    assert "Actions" in stack.texts("#credits thead th")
    stack.driver.find_elements(By.CSS_SELECTOR, "#credits tbody tr a[id$='__action_void']"
                               )[1].click()
    stack.wait_for("#id_reason")
    stack.fill("id_reason", "charge-back 2026-12")
    stack.shot("11-void-form", docs="dashboard-void.png")
    stack.submit()
    stack.wait_for("#ended_credits")
    assert [r[1] for r in stack.rows("credits")] == ["Ending soon", rows[2][1]]
    [ended] = stack.rows("ended_credits")
    assert ended[1] == "Welcome voucher" and "Voided" in ended
    stack.shot("12-admin-voided", docs="dashboard-admin.png")


def test_french_ui(stack: Stack) -> None:
    from selenium.webdriver.common.by import By

    stack.login("member")
    stack.language("fr")
    stack.get("/project/cloud_credit/")
    stack.wait_for("#credits")
    body = stack.body()
    # The customer guide's words: its list, its two buttons.
    assert "Crédits & Vouchers" in body
    assert "Acheter du crédit cloud" in body and "Activer un voucher" in body
    [warning] = stack.texts(".cloud-credit-warning")
    # (WebDriver reads a no-break space as a space.)
    assert "Votre crédit perdra 5,00 EUR à son expiration le" in warning
    kinds = [r[0] for r in stack.rows("credits")]
    assert kinds[0] == "Voucher" and kinds[-1] == "Crédit acheté", kinds
    assert f"{SOON.day} " in warning and str(SOON.year) in warning
    stack.shot("13-french", docs="dashboard-fr.png")
    stack.driver.find_element(By.ID, "credits__action_add_voucher").click()
    stack.wait_for("#id_code")
    stack.fill("id_code", "NOPE-9999")
    stack.submit()
    stack.wait_for(".alert-danger")
    assert "Ce code de voucher est inconnu" in stack.body()
    stack.shot("14-french-refusal")
