"""A wrong Horizon setting whose value Python cannot write out never stops a page.

An int of more than 4300 digits (Python >= 3.11's int_max_str_digits) raises in
``repr``. The panel remembers the wrong values it logged by their text
(dashboard/wrong_settings.py): computed outside logging's own error handling, that
repr failed the page, where docs/dashboard.md promises the default for "anything
else". The value is named by its type instead, and the ERROR line is written (not
logging's "--- Logging error ---").

Each case runs in a fresh interpreter with plain logging, as a Horizon worker
(pytest's log capture re-raises logging's formatting errors, which production does
not).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_huge_api_timeout_setting_falls_back_to_the_default_instead_of_failing_the_page(
        ) -> None:
    done = run("""
        import logging
        logging.basicConfig()
        from ovh_credit_plugin.dashboard import api
        print(api._timeout(10**5000))
    """)
    assert (done.returncode, done.stdout) == (0, "30\n"), done.stderr[-800:]
    assert "CLOUD_CREDIT_API_TIMEOUT = <int that cannot be written out> is wrong" \
        in done.stderr
    assert "Logging error" not in done.stderr


def test_a_huge_validity_months_setting_leaves_the_months_out_instead_of_failing_the_form(
        ) -> None:
    pytest.importorskip("django")
    done = run("""
        import logging
        logging.basicConfig()
        from django.conf import settings
        settings.configure(USE_I18N=True, USE_TZ=True, TIME_ZONE="UTC", LANGUAGE_CODE="en",
                           INSTALLED_APPS=["ovh_credit_plugin.dashboard"],
                           CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS=10**5000)
        import django
        django.setup()
        from ovh_credit_plugin.dashboard.content.credits import common
        print(common.purchase_terms())
    """)
    assert (done.returncode, done.stdout) == (
        0, "Vouchers are used before purchased credit.\n"), done.stderr[-800:]
    assert "_VALIDITY_MONTHS = <int that cannot be written out> is wrong" in done.stderr
    assert "Logging error" not in done.stderr
