"""French typography for the French tables (fr_messages.py, fr_dashboard_messages.py).

French puts a no-break space (U+00A0) before ``:``, ``;``, ``?`` and ``!`` and
inside guillemets (``«\u00a0…\u00a0»``), so that a line never breaks between a
word and its punctuation. The tables are written with ordinary spaces (an
invisible character is easy to lose in an edit); :func:`french` puts the
no-break spaces in, and the catalogs get the result. tests/unit/test_french_journey.py
checks that no French text in the catalogs has an ordinary space there.
"""

from __future__ import annotations

import re

NBSP = "\u00a0"
# An ordinary space (or none) before a high punctuation mark that follows a word,
# a placeholder or a closing bracket; "postgresql+psycopg://", "EUR:5" and
# "cloud_credit:credit:list" have no space there and are left alone.
_BEFORE = re.compile(r" ([:;?!])(?=\s|$|[»)\"'])")
_AFTER_OPENING = re.compile(r"« ")
_BEFORE_CLOSING = re.compile(r" »")


def french(text: str) -> str:
    """``text`` with no-break spaces where French typography wants them."""
    text = _BEFORE.sub(NBSP + r"\1", text)
    text = _AFTER_OPENING.sub("«" + NBSP, text)
    return _BEFORE_CLOSING.sub(NBSP + "»", text)


def french_table(table: dict[str, str | tuple[str, ...]]) -> dict[str, str | tuple[str, ...]]:
    """Every text of ``table`` through :func:`french`; a plural message's forms each."""
    return {source: french(text) if isinstance(text, str) else tuple(map(french, text))
            for source, text in table.items()}
