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
import builtins
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages import pofile
from babel.messages.extract import extract_from_dir

from ovh_credit_plugin import i18n

PACKAGE = Path(i18n.__file__).parent
FRENCH_PO = PACKAGE / "locale" / "fr" / "LC_MESSAGES" / "ovh_credit_plugin.po"
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]")


def marked_messages() -> set[str | tuple[str, str]]:
    """The messages marked in the code; one with a count (``ngettext``) as its
    (singular, plural) pair, as the catalog keys it."""
    found = extract_from_dir(str(PACKAGE), method_map=[("**.py", "python")],
                             keywords={"_": None, "deferred": None, "ngettext": (1, 2)},
                             directory_filter=lambda path: Path(path).name != "dashboard")
    return {message for _file, _line, message, _comments, _context in found}


def french_catalog() -> dict[Any, tuple[Any, bool]]:
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
    missing = sorted(str(m) for m in marked_messages()
                     if not all(_forms(catalog.get(m, ("", False))[0])) or catalog[m][1])
    assert missing == [], "no French translation (run tools/update_catalogs.py): " + \
        "; ".join(missing)


def test_messages_with_a_count_are_found() -> None:
    # Guards the tests around it for plural messages: an extraction that missed
    # ngettext would pass them.
    assert any(isinstance(m, tuple) for m in marked_messages())


def test_french_texts_keep_the_placeholders() -> None:
    for message, (french, _fuzzy) in french_catalog().items():
        for source in _forms(message):
            for form in _forms(french):
                if form:
                    assert sorted(PLACEHOLDER.findall(form)) == \
                        sorted(PLACEHOLDER.findall(source)), message


def _forms(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """A message's text, or each form of a message with a count."""
    return (text,) if isinstance(text, str) else tuple(text)


# Errors for the plugin's own programmers, never shown to a customer or an
# operator as the answer to something they did: left in English. (AttributeError:
# a module's __getattr__ asked for a name it does not have, Python's protocol.)
PROGRAMMING_ERRORS = {"TypeError", "AssertionError", "NotImplementedError", "AttributeError"}
# Checks of values the plugin itself builds (a ledger column's Python value,
# an API error code, a money document): a failure there is a bug, not input.
INTERNAL_MODULES = {"ledger/types.py", "api/errors.py", "api/ovh.py"}
# The calls that mark a message; what they are given is translated.
MARKERS = {"_", "deferred"}
# Messages the check finds that stay as they are, by module and the start of
# the call: each with its reason. An entry the check no longer finds fails
# (test_every_message_left_unmarked_is_still_there): remove it.
LEFT_UNMARKED = {
    # An exit status: _usage_error writes the usage error, in English like
    # argparse's own ("error: ...; see 'ovh-credit --help'").
    ("cli/app.py", "SystemExit(self._usage_error("),
    # urllib3's own words for a name that resolves to no address, in the
    # connection loop that replaces urllib3's: an OS-level error, shown as the
    # system's errors beside it are (untranslated), inside a catalog message.
    ("catalog/http/transport.py", "OSError('getaddrinfo returns an empty list')"),
    # Never shown: the transport turns it into urllib3's connect timeout,
    # told as "connection timed out" (translated).
    ("catalog/http/resolver.py", "ResolutionTimeout(f'"),
}


def _name(node: ast.expr) -> str:
    return ast.unparse(node).rsplit(".", 1)[-1]


def exception_classes(sources: list[str]) -> set[str]:
    """The names of the exception classes: Python's, and the classes the sources
    derive from them (``class VoucherNotFound(CatalogError, LookupError)``), by name."""
    found = {name for name, value in vars(builtins).items()
             if isinstance(value, type) and issubclass(value, BaseException)}
    classes = [node for source in sources for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.ClassDef)]
    while True:
        more = {node.name for node in classes if node.name not in found
                and any(_name(base) in found for base in node.bases)}
        if not more:
            return found - PROGRAMMING_ERRORS
        found |= more


def carries_unmarked_text(message: ast.expr) -> bool:
    """Whether a message is built from literal words not marked with ``_()``.

    Literal text with a letter in it: a string, an f-string, either of them
    ``%``-formatted, ``+``-joined, ``.format()``-ed, chosen by ``... if ... else``,
    or passed through a function (``redaction.scrub(f"...")``). A value
    (``str(error)``, a name) is not literal text; nor are ``f"{a}: {b}"``'s colon
    and blank, nothing there to translate.
    """
    if isinstance(message, ast.Constant):
        return isinstance(message.value, str) and any(c.isalpha() for c in message.value)
    if isinstance(message, ast.JoinedStr):
        return any(carries_unmarked_text(part) for part in message.values
                   if isinstance(part, ast.Constant))
    if isinstance(message, ast.BinOp):  # "..." % values, "..." + "..."
        return carries_unmarked_text(message.left) or (
            isinstance(message.op, ast.Add) and carries_unmarked_text(message.right))
    if isinstance(message, ast.IfExp):
        return carries_unmarked_text(message.body) or carries_unmarked_text(message.orelse)
    if isinstance(message, ast.Call):
        if _name(message.func) in MARKERS:
            return False
        if isinstance(message.func, ast.Attribute) and message.func.attr == "format":
            return carries_unmarked_text(message.func.value)
        return bool(message.args) and carries_unmarked_text(message.args[0])
    return False


def unmarked_messages(source: str, exceptions: set[str]) -> list[tuple[int, str]]:
    """Exceptions built with a message a person reads, not marked for translation.

    Every call of one of ``exceptions``, wherever it is: raised, returned,
    kept in a variable (a helper that builds an error for its caller to raise
    is where such a message hides).
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and _name(node.func) in exceptions):
            continue
        name = _name(node.func)
        # An API error's first argument is its code (never translated), the detail next.
        position = 1 if name == "ApiError" else 0
        messages = [*node.args[position:position + 1],
                    *(keyword.value for keyword in node.keywords
                      if keyword.arg in ("message", "detail"))]
        if any(carries_unmarked_text(message) for message in messages):
            found.append((node.lineno, ast.unparse(node)[:80]))
    return sorted(found)


GUARDED = """\
class Refused(base.CatalogError): ...
raise InvalidInput(f"bad {x}")
raise exceptions.ConfigError("no")
raise ValueError("a %s" % x)
raise InvalidInput(_("marked"))
raise InvalidInput(_("marked %(x)s") % {"x": x})
raise TypeError("for programmers")
raise errors.ApiError("not_found", f"no {x}")
raise errors.ApiError("not_found", _("no %(x)s") % {"x": x})
def unavailable(where):
    return base.CatalogUnavailable(f"catalog at {where} unavailable")
error = Refused("used up", status=409)
raise base.CatalogProtocolError(redaction.scrub(f"the {what} is wrong", code=code))
raise InvalidInput(_("marked") if x else "not marked")
raise InvalidInput((_("a %(x)s") if y else _("b %(x)s")) % {"x": x})
raise CatalogError(message=f"the catalog said {x}")
raise CreditError(f"{error.strerror}: {error.filename}")
raise CreditError(str(error))
raise CatalogUnavailable(_(_NOT_JSON[what]) % {"code": masked})
raise NotAnError("whatever")
"""


def test_the_message_check_finds_unmarked_messages() -> None:
    # Guards the test below: a check that finds nothing would pass it.
    exceptions = exception_classes([*(path.read_text() for path in PACKAGE.rglob("*.py")),
                                    GUARDED])
    assert {"CatalogProtocolError", "VoucherNotFound", "ApiError", "Refused"} <= exceptions
    assert "TypeError" not in exceptions
    assert [line for line, _text in unmarked_messages(GUARDED, exceptions)] == [
        2, 3, 4, 8, 11, 12, 13, 14, 16]


def _unmarked_in_package() -> list[tuple[str, int, str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    exceptions = exception_classes([path.read_text() for path in paths])
    return [
        (str(path.relative_to(PACKAGE)), line, text)
        for path in paths
        if "migrations" not in path.parts
        and str(path.relative_to(PACKAGE)) not in INTERNAL_MODULES
        for line, text in unmarked_messages(path.read_text(), exceptions)
    ]


def _left_unmarked(module: str, text: str) -> bool:
    return any(module == where and text.startswith(start) for where, start in LEFT_UNMARKED)


def test_every_error_message_is_marked_for_translation() -> None:
    # A message built with literal text reaches a person (the API's detail,
    # the CLI's one line on stderr) in English whatever their language.
    unmarked = [f"{module}:{line}: {text}" for module, line, text in _unmarked_in_package()
                if not _left_unmarked(module, text)]
    assert unmarked == [], "mark with _() (docs/translations.md):\n" + "\n".join(unmarked)


def test_every_message_left_unmarked_is_still_there() -> None:
    found = _unmarked_in_package()
    stale = [(module, start) for module, start in LEFT_UNMARKED
             if not any(where == module and text.startswith(start)
                        for where, _line, text in found)]
    assert stale == [], "no longer found: remove from LEFT_UNMARKED"


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
