"""Extract the messages, update the catalogs and fill the French one from tools/fr_messages.py.

    .venv/bin/python tools/update_catalogs.py

A message with no French text stays untranslated in the catalog, and
tests/unit/test_translations.py fails until it gets one. A message with a count
(``i18n.ngettext``) is keyed by its singular, its French a tuple of the catalog's plural
forms.
"""

import subprocess
import sys
from pathlib import Path

from babel.messages import pofile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from fr_messages import FR  # noqa: E402

LOCALE = ROOT / "ovh_credit_plugin" / "locale"
POT = LOCALE / "ovh_credit_plugin.pot"
PYBABEL = str(Path(sys.executable).with_name("pybabel"))


def main() -> None:
    subprocess.run([PYBABEL, "extract", "-F", "babel.cfg", "-k", "_", "-k", "deferred",
                    "-k", "ngettext:1,2",
                    "--no-default-keywords", "--sort-by-file", "--no-location",
                    "-o", str(POT), "."], cwd=ROOT, check=True)
    subprocess.run([PYBABEL, "update", "--no-fuzzy-matching", "--ignore-obsolete", "-i", str(POT),
                    "-d", str(LOCALE), "-D", "ovh_credit_plugin"], cwd=ROOT, check=True)
    po_path = LOCALE / "fr" / "LC_MESSAGES" / "ovh_credit_plugin.po"
    with po_path.open("rb") as handle:
        catalog = pofile.read_po(handle, locale="fr")
    for message in catalog:
        # A message with a count (ngettext) is found by its singular; its French is
        # the tuple of the catalog's plural forms.
        source = message.id[0] if isinstance(message.id, tuple) else message.id
        if source and source in FR:
            message.string = FR[source]
            message.flags.discard("fuzzy")
    with po_path.open("wb") as handle:
        pofile.write_po(handle, catalog, sort_output=True, width=99)


if __name__ == "__main__":
    main()
