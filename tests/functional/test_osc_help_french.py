"""The real ``openstack`` program's help for the plugin's commands, under a French locale.

No server: ``--help`` and ``help`` answer before any request. The customer's
shell has ``LANG=fr_FR.UTF-8``: the plugin's descriptions and help texts come
out in French (argparse's and cliff's own words stay theirs).
"""

from __future__ import annotations

import re

import pytest

from tests.support import api_stack

_reason = api_stack.client_skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

NBSP = "\u00a0"


def _french_env() -> dict[str, str]:
    env = {k: v for k, v in api_stack.osc_env().items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    env["LANG"] = "fr_FR.UTF-8"
    return env


def _one_line(text: str) -> str:
    # argparse wraps at the terminal's width: its line breaks and indents are joined
    # back; the no-break spaces stay (str.split() would take them for blanks).
    return re.sub(r"[ \n]+", " ", text)


def test_credit_list_help_is_in_french() -> None:
    result = api_stack.openstack("rating", "credit", "list", "--help", env=_french_env())
    assert result.returncode == 0, result.stderr
    text = _one_line(result.stdout)
    assert ("Lister les crédits d'un projet (vouchers et crédit acheté) dans l'ordre de "
            "consommation.") in text
    assert "Uniquement ceux qui ont ce statut" in text
    assert "Au plus ce nombre (par défaut\u00a0: tous, page par page)" in text
    assert "Only those in this status" not in text


def test_the_command_list_gives_the_french_one_liners() -> None:
    result = api_stack.openstack("help", env=_french_env())
    assert result.returncode == 0, result.stderr
    lines = {line.strip().split("  ")[0]: line for line in result.stdout.splitlines()
             if line.strip().startswith("rating credit ")}
    assert len(lines) == 12
    assert "Annuler un bon de commande en attente" in lines["rating credit order cancel"]
    assert f"Acheter du crédit cloud{NBSP}: un bon de commande" in \
        lines["rating credit order create"]


def test_in_english_the_help_is_as_written() -> None:
    env = {k: v for k, v in api_stack.osc_env().items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    result = api_stack.openstack("rating", "credit", "list", "--help", env=env)
    assert result.returncode == 0, result.stderr
    assert "Only those in this status" in _one_line(result.stdout)
