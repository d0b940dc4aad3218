"""One sentence per explained allocation, for tables (``ovh-credit settlement show``,
``openstack rating credit settlement show``).

Reads the JSON of an allocation with its ``explanation`` (models.Explanation),
so that the operator's CLI and the client commands, which only have the API's
JSON, word it the same way, in the language of the locale. Imports nothing of
the plugin but its messages (``i18n``, a leaf).
"""

from __future__ import annotations

from typing import Any

from ovh_credit_plugin import i18n
from ovh_credit_plugin.i18n import _, deferred

#: A credit's kind as a customer reads it: the words of the guide and of the
#: dashboard's « Type » column (« Voucher », « Crédit acheté »). A kind this
#: table does not know (a newer server's) is shown as the API gives it.
KINDS = {"voucher": deferred("voucher"), "purchased": deferred("purchased")}


def sentence(allocation: dict[str, Any], currency: str) -> str:
    """``line c: 30.00 EUR from credit 8 (purchased), place 2 in the consumption order (...)``
    (French: ``ligne c : 1 234,50 EUR du crédit 8 ...``).

    Each part is translated on its own, the kind too; they are joined with the
    language's ``; `` (French puts a no-break space before the semicolon).
    """
    kind = allocation["kind"]
    # The amount as the API gives it (its places kept), in the reader's numbers;
    # written now, as the sentence is (str() below), in the locale's language.
    paid = {"line": allocation["line_id"],
            "amount": i18n.amount(str(allocation["amount"]), currency, now=True),
            "credit": allocation["credit_id"],
            "kind": _(KINDS[kind]) if kind in KINDS else kind}
    # The separator between two parts of the sentence, as the language writes it.
    separator = str(_("; "))
    why = allocation.get("explanation")
    if why is None:
        return separator.join([
            str(_("line %(line)s: %(amount)s from credit %(credit)s (%(kind)s)")
                % paid),
            str(_("recorded without an explanation")),
        ])
    key = why["order_key"]
    place = {**paid, "place": why["place"], "created": key["created_at"],
             "valid_until": key["valid_until"]}
    parts = [
        _("line %(line)s: %(amount)s from credit %(credit)s (%(kind)s), place "
          "%(place)d in the consumption order (valid until %(valid_until)s, created "
          "%(created)s)") % place
        if key["valid_until"] else
        _("line %(line)s: %(amount)s from credit %(credit)s (%(kind)s), place "
          "%(place)d in the consumption order (no end date, created %(created)s)") % place
    ]
    for skipped in why["skipped"]:
        if skipped["cause"] == "not_covered":
            parts.append(_("credit %(skipped)s comes first but does not cover this line's "
                           "product") % {"skipped": skipped["credit_id"]})
        else:
            parts.append(_("credit %(skipped)s comes first but paid %(products)s, which credit "
                           "%(credit)s does not cover")
                         % {"skipped": skipped["credit_id"],
                            "products": ", ".join(skipped["products"]),
                            "credit": allocation["credit_id"]})
    return separator.join(str(part) for part in parts)
