"""The add-credit form's words on purchased credit's validity: the months the operator
set (Horizon's ``CLOUD_CREDIT_PURCHASED_CREDIT_VALIDITY_MONTHS``, the plugin's
``purchased_credit_validity_months``), 13 by default, in English and French, rendered
by the form's own template.

Only Django is needed (the ``dashboard`` extra): skipped without it.
"""

from __future__ import annotations

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
