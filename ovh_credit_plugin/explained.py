"""One sentence per explained allocation, for tables (``ovh-credit settlement show``,
``openstack rating credit settlement show``).

Reads the JSON of an allocation with its ``explanation`` (models.Explanation),
so that the operator's CLI and the client commands, which only have the API's
JSON, word it the same way. A leaf: imports nothing of the plugin.
"""

from __future__ import annotations

from typing import Any


def sentence(allocation: dict[str, Any], currency: str) -> str:
    """``line c: 30.00 EUR from credit 8 (purchased), 2nd in the consumption order (...)``."""
    text = (f"line {allocation['line_id']}: {allocation['amount']} {currency} from credit "
            f"{allocation['credit_id']} ({allocation['kind']})")
    why = allocation.get("explanation")
    if why is None:
        return f"{text}; recorded without an explanation"
    key = why["order_key"]
    ends = f"valid until {key['valid_until']}" if key["valid_until"] else "no end date"
    text += (f", {ordinal(why['place'])} in the consumption order "
             f"({ends}, created {key['created_at']})")
    for skipped in why["skipped"]:
        if skipped["cause"] == "not_covered":
            text += (f"; credit {skipped['credit_id']} comes first but does not cover "
                     "this line's product")
        else:
            text += (f"; credit {skipped['credit_id']} comes first but paid "
                     f"{', '.join(skipped['products'])}, which credit "
                     f"{allocation['credit_id']} does not cover")
    return text


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(
        number % 10, "th")
    return f"{number}{suffix}"
