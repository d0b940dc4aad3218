"""Every message the plugin marks for translation has a French translation that ships.

The dashboard panel (ovh_credit_plugin/dashboard/, a Django application) has its
own catalog in Django's domain: its messages are left out of the plugin's and
checked against ``dashboard/locale/fr/LC_MESSAGES/django.po`` below.

The messages are extracted from the code as ``pybabel extract`` does (the
keywords ``_`` and ``deferred``), so a new message without a French text in
``ovh_credit_plugin/locale/fr/LC_MESSAGES/ovh_credit_plugin.po`` fails here
(``python tools/update_catalogs.py`` adds it to the catalog).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages import pofile
from babel.messages.extract import extract_from_dir

from ovh_credit_plugin import i18n

PACKAGE = Path(i18n.__file__).parent
FRENCH_PO = PACKAGE / "locale" / "fr" / "LC_MESSAGES" / "ovh_credit_plugin.po"
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]")


def marked_messages() -> set[str]:
    found = extract_from_dir(str(PACKAGE), method_map=[("**.py", "python")],
                             keywords={"_": None, "deferred": None},
                             directory_filter=lambda path: Path(path).name != "dashboard")
    return {message for _file, _line, message, _comments, _context in found}


def french_catalog() -> dict[str, tuple[str, bool]]:
    with FRENCH_PO.open("rb") as handle:
        catalog = pofile.read_po(handle, locale="fr")
    return {m.id: (m.string, m.fuzzy) for m in catalog if m.id}


def test_the_code_marks_messages_for_translation() -> None:
    # Guards the test below: an extraction that finds nothing would pass it.
    marked = marked_messages()
    assert "this voucher code cannot be activated" in marked
    assert "Voucher catalog unavailable" in marked  # a deferred API title
    assert len(marked) > 50


def test_every_marked_message_has_a_french_translation() -> None:
    catalog = french_catalog()
    missing = sorted(m for m in marked_messages()
                     if not catalog.get(m, ("", False))[0] or catalog[m][1])
    assert missing == [], "no French translation (run tools/update_catalogs.py): " + \
        "; ".join(missing)


def test_french_texts_keep_the_placeholders() -> None:
    for message, (french, _fuzzy) in french_catalog().items():
        if french:
            assert sorted(PLACEHOLDER.findall(french)) == sorted(PLACEHOLDER.findall(message)), \
                message


# Errors for the plugin's own programmers, never shown to a customer or an
# operator as the answer to something they did: left in English. (AttributeError:
# a module's __getattr__ asked for a name it does not have, Python's protocol.)
PROGRAMMING_ERRORS = {"TypeError", "AssertionError", "NotImplementedError", "AttributeError"}
# Checks of values the plugin itself builds (a ledger column's Python value,
# an API error code, a money document): a failure there is a bug, not input.
INTERNAL_MODULES = {"ledger/types.py", "api/errors.py", "api/ovh.py"}


def unmarked_raises(source: str) -> list[tuple[int, str]]:
    """``raise X("text")`` or ``raise X(f"...")``: a message a person reads, not marked."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                and node.exc.args):
            continue
        name = ast.unparse(node.exc.func).rsplit(".", 1)[-1]
        if name in PROGRAMMING_ERRORS:
            continue
        # An API error's first argument is its code (never translated), the detail next.
        message = node.exc.args[1 if name == "ApiError" and len(node.exc.args) > 1 else 0]
        while isinstance(message, ast.BinOp):  # "..." % values, "..." + "..."
            message = message.left
        if isinstance(message, ast.JoinedStr) or (
                isinstance(message, ast.Constant) and isinstance(message.value, str)):
            found.append((node.lineno, ast.unparse(node.exc)[:80]))
    return found


def test_the_raise_check_finds_unmarked_messages() -> None:
    # Guards the test below: a check that finds nothing would pass it.
    assert [line for line, _text in unmarked_raises(
        'raise InvalidInput(f"bad {x}")\n'
        'raise exceptions.ConfigError("no")\n'
        'raise ValueError("a %s" % x)\n'
        'raise InvalidInput(_("marked"))\n'
        'raise InvalidInput(_("marked %(x)s") % {"x": x})\n'
        'raise TypeError("for programmers")\n'
        'raise errors.ApiError("not_found", f"no {x}")\n'
        'raise errors.ApiError("not_found", _("no %(x)s") % {"x": x})\n'
    )] == [1, 2, 3, 7]


def test_every_raised_message_is_marked_for_translation() -> None:
    # A message raised with literal text reaches a person (the API's detail,
    # the CLI's one line on stderr) in English whatever their language.
    unmarked = [
        f"{path.relative_to(PACKAGE)}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
        and str(path.relative_to(PACKAGE)) not in INTERNAL_MODULES
        for line, text in unmarked_raises(path.read_text())
    ]
    assert unmarked == [], "mark with _() (docs/translations.md):\n" + "\n".join(unmarked)


def test_the_compiled_catalog_ships_and_translates() -> None:
    assert "fr" in i18n.available_languages()
    assert i18n.translate("Forbidden", "fr") == "Accès refusé"
    assert i18n.translate("Forbidden", "en") == "Forbidden"
    # Text that is not a message (a value, a pydantic message) is left alone.
    assert i18n.translate("amount: Field required", "fr") == "amount: Field required"


@pytest.mark.parametrize(("header", "language"), [
    ("fr", "fr"), ("fr-CH, en;q=0.5", "fr"), ("fr-FR", "fr"), ("en, fr;q=0.5", "en"),
    ("de", "en"), ("de, fr;q=0.3", "fr"), ("*", "en"), ("", "en"), ("fr;q=0", "en"),
])
def test_the_request_language_follows_accept_language(header: str, language: str) -> None:
    import webob

    request = webob.Request.blank("/", headers={"Accept-Language": header} if header else {})
    assert i18n.best_language(request.accept_language) == language


DASHBOARD_PO = PACKAGE / "dashboard" / "locale" / "fr" / "LC_MESSAGES" / "django.po"


def _dashboard_messages() -> list[str]:
    import sys

    sys.path.insert(0, str(PACKAGE.parent / "tools"))
    try:
        from update_dashboard_catalog import messages
    finally:
        sys.path.pop(0)
    return list(messages())


def test_the_dashboard_panel_has_every_text_in_french() -> None:
    marked = _dashboard_messages()
    # Python files and templates alike (a guard: an extraction finding nothing passes).
    assert "Credits & Vouchers" in marked and "Pay before" in marked
    assert not set(marked) & marked_messages(), "the panel's texts are Django's domain"
    with DASHBOARD_PO.open("rb") as handle:
        catalog = {m.id: m.string for m in pofile.read_po(handle, locale="fr") if m.id}
    missing = sorted(m for m in marked if not catalog.get(m))
    assert missing == [], ("no French text (tools/fr_dashboard_messages.py, then "
                           "tools/update_dashboard_catalog.py): " + "; ".join(missing))
    for message in marked:
        assert sorted(PLACEHOLDER.findall(catalog[message])) == \
            sorted(PLACEHOLDER.findall(message)), message
