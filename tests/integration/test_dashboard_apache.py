"""The "Credits & Vouchers" panel as operators deploy Horizon: Apache httpd + mod_wsgi.

tests/support/apache.py serves Horizon as Debian, devstack and kolla do: mod_wsgi
daemon mode (several processes of ten threads, running as ``www-data``), under the
``/dashboard`` prefix (``WEBROOT = '/dashboard/'``), the static files collected and
compressed offline (``COMPRESS_OFFLINE = True``) and served by Apache. Virtual
hosts of one Apache, each with the panel enabled:

- ``compressed_before`` (3 processes): ``collectstatic`` and ``compress`` ran before
  the panel was enabled (an operator who copies the enabled files and restarts);
- ``compressed_after`` (2 processes): they ran again after; its local settings have
  a wrong ``CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS`` (the error log's test);
- ``stale_manifest`` (1 process, when cloudkitty-dashboard is installed): the
  control, compressed for Horizon alone, then cloudkitty-dashboard enabled too.

Keystone, ``ovh-credit-api`` and the browser are those of
tests/integration/test_dashboard.py. A customer's form is submitted to another
process than the one that showed it: the access log names the process that
answered (the test's WSGI script adds its pid to each answer) and the test ends
that process before the customer submits, as ``maximum-requests`` or a restart
does. The tests run in order, as one story: they share the ledger.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.test_dashboard import Stack, _set_rating_service
from tests.support import apache, api_stack, horizon
from tests.support.keystone import Keystone

_reason = (api_stack.api_skip_reason() or horizon.skip_reason() or apache.skip_reason())
pytestmark = [pytest.mark.skipif(_reason is not None, reason=_reason or ""),
              pytest.mark.timeout(600)]

PREFIX = "/dashboard"
WRONG_MONTHS = "24"
WRONG_MONTHS_LINE = ("Horizon's setting CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS = '24' "
                     "is wrong")


@dataclass
class ApacheStack(Stack):
    """test_dashboard.py's Stack, on a site of the Apache (its paths under the prefix)."""

    httpd: apache.Apache
    site: apache.Site
    webroot = PREFIX

    def get(self, path: str) -> None:
        self.driver.get(self.site.url + path)

    def on(self, name: str) -> None:
        self.site = self.httpd.sites[name]

    def served(self, method: str, path: str, *, after: int = 0) -> apache.Request:
        """The access log's last answer to ``method path`` (from line ``after`` on);
        Apache writes it once the answer is sent, so it is waited for."""
        deadline = time.monotonic() + 10
        while True:
            found = [r for r in self.httpd.requests(self.site.name)[after:]
                     if r.method == method and r.path.split("?")[0] == f"{PREFIX}{path}"]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {method} {path} in the access log of "
                                     f"{self.site.name}")
            time.sleep(0.05)

    def log_length(self) -> int:
        return len(self.httpd.requests(self.site.name))

    def recycle_the_process_of(self, request: apache.Request) -> None:
        assert request.pid is not None, request
        self.httpd.recycle(request.pid)

    def http(self) -> requests.Session:
        """A requests session with the browser's cookies (its login)."""
        session = requests.Session()
        for cookie in self.driver.get_cookies():
            session.cookies.set(cookie["name"], cookie["value"])
        return session

    def links_outside_the_prefix(self) -> list[str]:
        """The page's links and form targets that leave ``/dashboard`` on this server."""
        from selenium.webdriver.common.by import By

        targets = [e.get_attribute("href") for e in self.driver.find_elements(
            By.CSS_SELECTOR, "a[href]")]
        targets += [e.get_attribute("action") for e in self.driver.find_elements(
            By.CSS_SELECTOR, "form[action]")]
        ours = [urlsplit(t) for t in targets if t]
        return [t.geturl() for t in ours
                if t.netloc == f"127.0.0.1:{self.site.port}"
                and not (t.path + "/").startswith(f"{PREFIX}/")]


@pytest.fixture(scope="module")
def stack(keystone: Keystone, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheStack]:
    unreadable = apache.unreadable_by_apache()
    if unreadable:
        if horizon.REQUIRE_BROWSER:
            raise RuntimeError(f"OVH_CREDIT_REQUIRE_BROWSER=1 but {unreadable}")
        pytest.skip(unreadable)
    root = tmp_path_factory.mktemp("dashboard-apache")
    ledger = root / "ledger"
    ledger.mkdir()
    (ledger / "vouchers.json").write_text(json.dumps(api_stack.VOUCHERS))
    artifacts = Path(os.environ.get("OVH_CREDIT_BROWSER_ARTIFACTS") or root / "screenshots")
    artifacts.mkdir(parents=True, exist_ok=True)
    # What the operator had enabled before adding the panel: cloudkitty-dashboard's
    # files when it is installed (the Rating group), else Horizon alone.
    before = horizon.cloudkitty_dashboard_enabled_files()
    enabled = [*before, *sorted(horizon.ENABLED.glob("_*.py"))]
    sites = [
        apache.Site("compressed_before", enabled,
                    apache.compressed_static_root(before, webroot=f"{PREFIX}/"),
                    webroot=f"{PREFIX}/", processes=3, threads=10),
        apache.Site("compressed_after", enabled,
                    apache.compressed_static_root(enabled, webroot=f"{PREFIX}/"),
                    webroot=f"{PREFIX}/", processes=2, threads=10,
                    settings={"CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS": WRONG_MONTHS}),
    ]
    if before:
        # The control: cloudkitty-dashboard (scripts of its own) enabled after a
        # compress that ran on Horizon alone.
        sites.append(apache.Site("stale_manifest", enabled,
                                 apache.compressed_static_root([], webroot=f"{PREFIX}/"),
                                 webroot=f"{PREFIX}/", processes=1, threads=10))
    # Horizon loads in Apache's daemons while the API starts.
    server = apache.start_apache(sites, keystone_url=keystone.auth_url,
                                 api_mode="standalone", wait=False)
    started: list[Any] = [server]
    try:
        api = api_stack.start_standalone(ledger, auth_strategy="keystone",
                                         authtoken=keystone.authtoken_conf())
        started.append(api)
        _set_rating_service(keystone, api.url)
        server.wait_until_serving()
        driver = horizon.browser()
        try:
            yield ApacheStack(keystone, api, cast(Any, server), driver, artifacts, None,
                              ledger, server, server.sites["compressed_before"])
        finally:
            driver.quit()
            print(f"\nscreenshots of the Apache tier: {artifacts}")
    finally:
        _set_rating_service(keystone, None)
        for process in reversed(started):
            process.stop()


def _compressed_assets(stack: ApacheStack) -> list[str]:
    """The page's stylesheets and scripts that django-compressor's manifest names."""
    from selenium.webdriver.common.by import By

    urls = [e.get_attribute("href") for e in stack.driver.find_elements(
        By.CSS_SELECTOR, "link[rel=stylesheet]")]
    urls += [e.get_attribute("src") for e in stack.driver.find_elements(
        By.CSS_SELECTOR, "script[src]")]
    return [u for u in urls if u and re.search(r"/static/dashboard/(css|js)/[\w.]+\.(css|js)$", u)]


def test_panel_shows_where_compress_ran_before_it_was_enabled(stack: ApacheStack) -> None:
    stack.on("compressed_before")
    stack.login("member")
    assert stack.driver.current_url == f"{stack.site.url}/project/cloud_credit/"
    assert "Credits & Vouchers" in stack.driver.title
    assert stack.rows("credits") == []
    # The compressed files of the manifest built without the panel, served by Apache
    # itself (no daemon process answered them).
    assets = _compressed_assets(stack)
    assert len(assets) >= 4, assets
    for url in assets:
        assert urlsplit(url).path.startswith(f"{PREFIX}/static/dashboard/"), url
        assert requests.get(url, timeout=30).status_code == 200, url
        assert stack.served("GET", urlsplit(url).path[len(PREFIX):]).pid is None, url
    assert "OfflineGenerationError" not in stack.httpd.errors(stack.site.name)
    stack.shot("apache-01-compressed-before")


def test_panel_shows_where_compress_ran_again_after_it_was_enabled(stack: ApacheStack) -> None:
    stack.on("compressed_after")
    # The same host: the browser's session (a signed cookie) is good on this site too.
    stack.get("/project/cloud_credit/")
    stack.wait_for("#credits")
    assert stack.rows("credits") == []
    assert all(requests.get(u, timeout=30).status_code == 200
               for u in _compressed_assets(stack))
    assert "OfflineGenerationError" not in stack.httpd.errors(stack.site.name)


def test_a_plugin_with_scripts_enabled_after_compress_breaks_every_page(
        stack: ApacheStack) -> None:
    """The control of the two tests above: offline compression is enforced here, and a
    plugin whose enabled files add scripts (cloudkitty-dashboard's) needs collectstatic
    and compress again, which ours does not."""
    if "stale_manifest" not in stack.httpd.sites:
        pytest.skip("cloudkitty-dashboard is not installed")
    site = stack.httpd.sites["stale_manifest"]
    assert requests.get(f"{site.url}/auth/login/", timeout=60).status_code == 500
    deadline = time.monotonic() + 10
    while "OfflineGenerationError" not in stack.httpd.errors(site.name):
        assert time.monotonic() < deadline, stack.httpd.tail()
        time.sleep(0.1)


def test_member_orders_credit_through_several_processes_under_the_prefix(
        stack: ApacheStack) -> None:
    from selenium.webdriver.common.by import By

    stack.on("compressed_before")
    stack.get("/project/cloud_credit/")
    stack.wait_for("#credits")
    assert stack.links_outside_the_prefix() == []
    start = stack.log_length()
    stack.driver.find_element(By.ID, "credits__action_add_credit").click()
    stack.wait_for("#id_amount")
    assert "Purchased credit is valid 13 months." in stack.body()
    assert stack.links_outside_the_prefix() == []
    shown = stack.served("GET", "/project/cloud_credit/add_credit/", after=start)
    # The process that showed the form is gone when the customer submits it.
    stack.recycle_the_process_of(shown)
    stack.fill("id_amount", "40.00")
    stack.submit()
    stack.wait_for(".cloud-credit-pending")
    posted = stack.served("POST", "/project/cloud_credit/add_credit/", after=start)
    assert posted.status < 400 and posted.pid not in (None, shown.pid), (shown, posted)
    assert stack.driver.current_url.startswith(f"{stack.site.url}/project/cloud_credit/orders/")
    order_id = stack.driver.find_element(By.CSS_SELECTOR, ".cloud-credit-order-id").text
    assert stack.links_outside_the_prefix() == []

    response = stack.api_call("service", "POST", f"/orders/{order_id}/payment",
                              {"amount": "40.00", "currency": "EUR"})
    assert response.status_code == 200, response.text
    stack.driver.find_element(By.LINK_TEXT, "Back to Credits & Vouchers").click()
    stack.wait_for("#credits")
    assert stack.driver.current_url == f"{stack.site.url}/project/cloud_credit/"
    [credit] = stack.rows("credits")
    assert credit[0] == "Purchased credit" and credit[2:5] == ["40.00 EUR", "0.00 EUR",
                                                              "40.00 EUR"]
    stack.shot("apache-02-order-paid")


def test_member_activates_a_voucher_through_several_processes(stack: ApacheStack) -> None:
    from selenium.webdriver.common.by import By

    stack.on("compressed_before")
    start = stack.log_length()
    stack.driver.find_element(By.ID, "credits__action_add_voucher").click()
    stack.wait_for("#id_code")
    shown = stack.served("GET", "/project/cloud_credit/add_voucher/", after=start)
    stack.recycle_the_process_of(shown)
    stack.fill("id_code", "WELCOME-2026")
    stack.submit()
    stack.wait_for("#credits")
    # The message the POST's process left (a cookie), shown by the page after it.
    assert "Voucher activated: 50.00 EUR of credit." in stack.body()
    posted = stack.served("POST", "/project/cloud_credit/add_voucher/", after=start)
    assert posted.pid not in (None, shown.pid), (shown, posted)
    assert stack.driver.current_url == f"{stack.site.url}/project/cloud_credit/"
    assert [r[:2] for r in stack.rows("credits")][:1] == [["Voucher", "Welcome voucher"]]
    stack.shot("apache-03-voucher")


def test_admin_voids_a_credit_and_stays_under_the_prefix(stack: ApacheStack) -> None:
    from selenium.webdriver.common.by import By

    alpha = stack.keystone.personas["member"].project_id
    stack.on("compressed_before")
    stack.login("admin")
    stack.get(f"/project/cloud_credit/?project_id={alpha}")
    stack.wait_for("#credits")
    assert stack.links_outside_the_prefix() == []
    [void] = stack.driver.find_elements(By.CSS_SELECTOR,
                                        "#credits tbody tr a[id$='__action_void']")[:1]
    void_path = urlsplit(void.get_attribute("href")).path
    assert void_path.startswith(f"{PREFIX}/project/cloud_credit/credits/"), void_path
    void.click()
    stack.wait_for("#id_reason")
    stack.fill("id_reason", "charge-back")
    stack.submit()
    stack.wait_for("#ended_credits")
    [ended] = stack.rows("ended_credits")
    assert ended[1] == "Welcome voucher" and "Voided" in ended
    assert stack.driver.current_url == f"{stack.site.url}/project/cloud_credit/?project_id={alpha}"
    stack.shot("apache-04-admin-void")


def test_french_from_the_daemon_processes(stack: ApacheStack) -> None:
    # The admin of the previous test, on the customer's project.
    alpha = stack.keystone.personas["member"].project_id
    stack.on("compressed_before")
    stack.language("fr")
    stack.get(f"/project/cloud_credit/?project_id={alpha}")
    stack.wait_for("#credits")
    body = stack.body()
    assert "Crédits & Vouchers" in body
    assert "Acheter du crédit cloud" in body and "Activer un voucher" in body
    assert [r[0] for r in stack.rows("credits")] == ["Crédit acheté"]
    assert [r[0] for r in stack.rows("ended_credits")] == ["Voucher"]
    stack.shot("apache-05-french")
    # Read by daemon processes of Apache's user: the panel's templates and catalog too.
    served = stack.served("GET", "/project/cloud_credit/")
    assert served.pid is not None
    uid = Path(f"/proc/{served.pid}/status").read_text().split("\nUid:\t")[1].split()[0]
    assert pwd.getpwuid(int(uid)).pw_name == apache.USER


def test_every_request_and_redirect_stayed_under_the_prefix(stack: ApacheStack) -> None:
    for name, site in stack.httpd.sites.items():
        requests_ = stack.httpd.requests(name)
        assert requests_, name
        # (Browsers ask for /favicon.ico on their own.)
        outside = [r for r in requests_ if not r.path.startswith(f"{PREFIX}/")
                   and r.path != "/favicon.ico"]
        assert outside == [], outside
        if name != "stale_manifest":
            assert [r for r in requests_ if r.status >= 500] == []
        for request in requests_:
            for target in (request.location, request.horizon_location):
                if target:
                    path = urlsplit(target).path
                    assert path.startswith(f"{PREFIX}/"), (site.name, request)


def test_a_wrong_setting_is_logged_once_per_daemon_process_in_apaches_error_log(
        stack: ApacheStack) -> None:
    stack.on("compressed_after")
    http = stack.http()
    url = f"{stack.site.url}/project/cloud_credit/add_credit/"

    def show_form() -> apache.Request:
        start = stack.log_length()
        answer = http.get(url, timeout=60)
        assert answer.status_code == 200 and "id_amount" in answer.text, answer.status_code
        # The form opens, without a month count the operator did not mean.
        assert "Purchased credit is valid" not in answer.text
        return stack.served("GET", "/project/cloud_credit/add_credit/", after=start)

    served = [show_form() for _ in range(3)]
    stack.recycle_the_process_of(served[-1])
    served += [show_form() for _ in range(3)]
    pids = {request.pid for request in served}

    def logged() -> list[str]:
        return [line for line in stack.httpd.errors(stack.site.name).splitlines()
                if WRONG_MONTHS_LINE in line]

    # The daemons' stderr reaches the error log a moment after their answer.
    deadline = time.monotonic() + 10
    while len(logged()) < len(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # and no more lines after that
    lines = logged()
    assert len(pids) >= 2
    # One line per process that showed the form, in Apache's error log (mod_wsgi's
    # "[wsgi:error] [pid N:...]" prefix), whatever the number of pages.
    by = {int(m.group(1)) for line in lines
          if (m := re.search(r"\[wsgi:error\] \[pid (\d+)", line))}
    assert len(lines) == len(pids) and by == pids, (lines, served)
