"""The add-credit form's words on purchased credit's validity: the months the operator
set (Horizon's ``CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS``, the plugin's
``purchased_credit_validity_months``), 13 by default, in English and French, rendered
by the form's own template.

Only Django is needed (the ``dashboard`` extra): skipped without it.
"""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("django")

from django.conf import settings

if not settings.configured:
    settings.configure(USE_I18N=True, USE_TZ=True, TIME_ZONE="UTC", LANGUAGE_CODE="en",
                       INSTALLED_APPS=["ovh_credit_plugin.dashboard"])
    import django

    django.setup()

from django.template import Context, Engine
from django.test import override_settings
from django.utils import translation

from ovh_credit_plugin.dashboard.content.credits import common

VOUCHERS_FIRST = {"en": "Vouchers are used before purchased credit.",
                  "fr": "Les vouchers sont utilisés avant le crédit acheté."}


@pytest.mark.parametrize(("months", "language", "said"), [
    (None, "en", "Purchased credit is valid 13 months."),
    (None, "fr", "Le crédit acheté est valable 13 mois."),
    (12, "en", "Purchased credit is valid 12 months."),
    (12, "fr", "Le crédit acheté est valable 12 mois."),
    (1, "en", "Purchased credit is valid 1 month."),
    (1, "fr", "Le crédit acheté est valable 1 mois."),
])
def test_the_form_says_the_validity_the_operator_set(
        months: int | None, language: str, said: str) -> None:
    overrides = {} if months is None else {"CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS": months}
    with override_settings(**overrides), translation.override(language):
        assert common.purchase_terms() == f"{said} {VOUCHERS_FIRST[language]}"


def test_the_form_template_shows_the_terms_it_is_given() -> None:
    # The modal's body, as Horizon renders it with the view's context (the page's
    # add_credit.html includes it).
    engine = Engine(dirs=[str(common.__file__).rsplit("/content/", 1)[0] + "/templates"],
                    libraries={"i18n": "django.templatetags.i18n"},
                    builtins=[])
    body = engine.get_template("cloud_credit/_add_credit.html").source.split(
        "{% block modal-body-right %}")[1].split("{% endblock %}")[0]
    with override_settings(CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS=24), \
            translation.override("en"):
        rendered = engine.from_string("{% load i18n %}" + body).render(
            Context({"purchase_terms": common.purchase_terms()}))
    assert "<p>Purchased credit is valid 24 months. Vouchers are used before purchased " \
           "credit.</p>" in rendered
    assert "13" not in rendered


# -- a setting that is not a number of months ----------------------------------------------
# Horizon's settings are Python, written by the operator. Horizon itself does not stop
# for a wrong value of its own settings: it logs an error naming it and goes on without
# it (HORIZON_CONFIG's extra_tabs and extra_steps, DEFAULT_THEME). The panel does the
# same: the form still opens, without a validity it cannot vouch for, and the web
# server's log says which setting is wrong and what it must be.

SETTING = "CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS"


@pytest.mark.parametrize("months", [
    "13",  # a string: Python settings take the number itself
    13.5, 13.0, 0, -1, 121,
    True,  # == 1 in Python, but not what an operator writing True meant
    None, "thirteen", [13],
])
@pytest.mark.parametrize("language", ["en", "fr"])
def test_a_wrong_setting_leaves_the_validity_out_and_tells_the_operator(
        months: object, language: str, caplog: pytest.LogCaptureFixture) -> None:
    with override_settings(**{SETTING: months}), translation.override(language), \
            caplog.at_level(logging.ERROR, logger=common.__name__):
        terms = common.purchase_terms()
    # No month count the operator did not mean: "valid 13 months" for a "24" that was
    # written between quotes would be a false term of sale.
    assert terms == VOUCHERS_FIRST[language]
    [record] = [r for r in caplog.records if r.name == common.__name__]
    assert record.levelno == logging.ERROR
    logged = record.getMessage()
    assert f"{SETTING} = {months!r}" in logged
    assert "a whole number of months from 1 to 120" in logged
    assert "purchased_credit_validity_months" in logged


@pytest.mark.parametrize(("months", "said"), [
    (120, "Purchased credit is valid 120 months."),  # the plugin's own maximum
    (1, "Purchased credit is valid 1 month."),
])
def test_the_bounds_of_the_plugins_setting_are_taken(
        months: int, said: str, caplog: pytest.LogCaptureFixture) -> None:
    with override_settings(**{SETTING: months}), translation.override("en"), \
            caplog.at_level(logging.ERROR, logger=common.__name__):
        assert common.purchase_terms() == f"{said} {VOUCHERS_FIRST['en']}"
    assert [r for r in caplog.records if r.name == common.__name__] == []


def test_a_wrong_setting_is_logged_once_per_process_not_on_every_page(
        caplog: pytest.LogCaptureFixture) -> None:
    """Every page view and form render reads the setting: one ERROR each buried the web
    server's log. Once per wrong value: a second wrong value (the settings edited, the
    workers not restarted) is logged too, and the form keeps leaving the months out."""
    with caplog.at_level(logging.ERROR, logger=common.__name__), translation.override("en"):
        with override_settings(**{SETTING: "24"}):
            for _ in range(5):
                assert common.purchase_terms() == VOUCHERS_FIRST["en"]
        with override_settings(**{SETTING: 24.0}):
            assert common.purchase_terms() == VOUCHERS_FIRST["en"]
            assert common.purchase_terms() == VOUCHERS_FIRST["en"]
        with override_settings(**{SETTING: 24}):
            assert common.purchase_terms().startswith("Purchased credit is valid 24 months.")
    logged = [r.getMessage() for r in caplog.records if r.name == common.__name__]
    assert len(logged) == 2, logged
    assert f"{SETTING} = '24' is wrong" in logged[0]
    assert f"{SETTING} = 24.0 is wrong" in logged[1]
