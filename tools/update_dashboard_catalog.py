"""Write the dashboard panel's French catalog (Django's domain) from fr_dashboard_messages.py.

    .venv/bin/python tools/update_dashboard_catalog.py

The panel (ovh_credit_plugin/dashboard/) is a Django application: Django finds
its catalog in ``ovh_credit_plugin/dashboard/locale/fr/LC_MESSAGES/django.po``
(compiled to ``django.mo`` when the package is built, setup.py). Its messages
are those marked with ``_`` (Django's ``gettext_lazy``) in its Python files and
``{% trans %}`` / ``{% blocktrans trimmed %}`` in its templates; this script
extracts them (:func:`messages`, also used by tests/unit/test_translations.py)
and writes every one with its French text. A message with none stays empty in
the catalog, and the test fails until it gets one.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

from babel.messages import pofile
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "ovh_credit_plugin" / "dashboard"
PO = DASHBOARD / "locale" / "fr" / "LC_MESSAGES" / "django.po"

STAMP = dt.datetime(2026, 12, 3, tzinfo=dt.timezone.utc)
HEADER = """\
# French translations of the ovh-credit-plugin dashboard panel (Django's domain).
# Written by tools/update_dashboard_catalog.py from tools/fr_dashboard_messages.py.
#"""
_TRANS = re.compile(r"""{%\s*trans\s+"([^"]+)"\s*%}""")
_BLOCKTRANS = re.compile(r"{%\s*blocktrans trimmed\s*%}(.*?){%\s*endblocktrans\s*%}", re.S)


def messages() -> list[str]:
    """Every message the panel marks for translation, in a stable order."""
    found: list[str] = []
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(DASHBOARD), method_map=[("**.py", "python")], keywords={"_": None}):
        found.append(message)
    for template in sorted(DASHBOARD.glob("templates/**/*.html")):
        text = template.read_text()
        found.extend(_TRANS.findall(text))
        found.extend(" ".join(block.split()) for block in _BLOCKTRANS.findall(text))
    return list(dict.fromkeys(found))


def main() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from fr_dashboard_messages import FR

    # Fixed dates: the catalog changes only when a message does.
    catalog = Catalog(locale="fr", domain="django", project="ovh-credit-plugin", version="0.1.0",
                      copyright_holder="ovh-credit-plugin developers", charset="utf-8",
                      creation_date=STAMP, revision_date=STAMP, fuzzy=False,
                      last_translator="ovh-credit-plugin developers",
                      header_comment=HEADER)
    for message in messages():
        catalog.add(message, FR.get(message, ""))
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as handle:
        pofile.write_po(handle, catalog, sort_output=True, width=99, omit_header=False)
    missing = [m for m in messages() if not FR.get(m)]
    if missing:
        print("no French text yet for:", *missing, sep="\n  ")


if __name__ == "__main__":
    main()
