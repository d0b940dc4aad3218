"""The one-sentence form of an explained allocation (tables of both command lines)."""

from __future__ import annotations

import os
import subprocess
import sys

from ovh_credit_plugin import explained

KEY = {"kind": "voucher", "valid_until": None, "created_at": "2026-01-31T10:00:00Z",
       "credit_id": 2}


def allocation(explanation: object) -> dict[str, object]:
    return {"line_id": "c", "credit_id": 2, "kind": "voucher", "amount": "5.00",
            "explanation": explanation}


def test_needed_elsewhere_names_the_products_the_payer_does_not_cover() -> None:
    text = explained.sentence(allocation({
        "place": 2, "order_key": KEY, "reason": "scope",
        "skipped": [{"credit_id": 1, "cause": "needed_elsewhere",
                     "products": ["gpu", "storage"]}]}), "EUR")
    assert text == ("line c: 5.00\u00a0EUR from credit 2 (voucher), place 2 in the consumption "
                    "order (no end date, created 2026-01-31T10:00:00Z); credit 1 comes first "
                    "but paid gpu, storage, which credit 2 does not cover")


def test_a_settlement_recorded_before_explanations() -> None:
    assert explained.sentence(allocation(None), "JPY") == (
        "line c: 5.00\u00a0JPY from credit 2 (voucher); recorded without an explanation")


def test_in_french_with_a_french_locale() -> None:
    # The command lines translate when a message is made, in the process's
    # language: a process of its own with LANGUAGE=fr.
    program = (
        "from ovh_credit_plugin import explained\n"
        "print(explained.sentence({'line_id': 'c', 'credit_id': 8, 'kind': 'purchased',\n"
        "    'amount': '30.00', 'explanation': {'place': 2, 'reason': 'scope',\n"
        "    'order_key': {'kind': 'purchased', 'valid_until': None,\n"
        "                  'created_at': '2026-01-31T10:00:00Z', 'credit_id': 8},\n"
        "    'skipped': [{'credit_id': 7, 'cause': 'not_covered', 'products': []}]}}, 'EUR'))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True, env={**os.environ, "LANGUAGE": "fr"}, timeout=60)
    assert done.stdout.strip() == (
        "ligne c\u00a0: 30,00\u00a0EUR du crédit 8 (crédit acheté), rang 2 dans l'ordre de "
        "consommation (sans date de fin, créé le 2026-01-31T10:00:00Z)\u00a0; le crédit 7 "
        "passe avant mais ne couvre pas le produit de cette ligne")
