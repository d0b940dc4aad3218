"""What is wrong with a JSON text, in the reader's language (API bodies, ``settle``'s input).

Python's decoder words its errors in English ("Expecting ',' delimiter: line 1
column 9 (char 8)"); a French customer would read that tail inside a French
sentence. Its messages are a small fixed set, so each gets our own translated
wording, with the line and column kept.
"""

from __future__ import annotations

import json

from ovh_credit_plugin.i18n import _, deferred

# The decoder's messages (json.decoder and the C scanner, CPython 3.10-3.13) by
# their start: "Invalid \\escape: 'x'" carries the character after the colon.
_PROBLEMS = (
    ("Expecting value", deferred("a value is expected")),
    ("Expecting property name enclosed in double quotes",
     deferred("a property name in double quotes is expected")),
    ("Expecting ':' delimiter", deferred("':' is expected")),
    ("Expecting ',' delimiter", deferred("',' is expected")),
    ("Unterminated string starting at", deferred("a string is not closed")),
    ("Invalid control character at",
     deferred("a control character is not allowed in a string")),
    ("Invalid \\", deferred("an escape sequence is not valid")),
    ("Extra data", deferred("something follows the JSON value")),
    ("Illegal trailing comma", deferred("a trailing comma is not allowed")),
)


def syntax_error(error: json.JSONDecodeError, *, first_line: int = 1) -> str:
    """``error``'s problem and where it is, translatable (a lazy message in the REST API).

    ``first_line``: the line of the input the decoded text starts on (a JSON line's).
    """
    for start, problem in _PROBLEMS:
        if error.msg.startswith(start):
            found = _(problem)
            break
    else:  # a decoder newer than this table: its English beats no explanation
        found = error.msg
    return _("%(problem)s (line %(line)d, column %(column)d)") % {
        "problem": found, "line": error.lineno + first_line - 1, "column": error.colno}
