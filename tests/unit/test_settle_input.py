"""Reading invoice input for ``ovh-credit settle``, and the progress bar's switch."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.cli import settle_input

DOC = {
    "id": "I",
    "project_id": "p",
    "currency": "EUR",
    "issued_at": "2026-01-01T00:00:00Z",
    "lines": [],
}


def documents(tmp_path: Path, text: str) -> list[object]:
    path = tmp_path / "in.json"
    path.write_text(text)
    with settle_input.open_source(str(path), io.StringIO()) as source:
        return list(source.documents())


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(DOC),
        json.dumps(DOC, indent=2),
        "\n\n  " + json.dumps([DOC]),
        json.dumps(DOC) + "\n",
    ],
    ids=["object", "pretty object", "array", "one json line"],
)
def test_single_invoice_in_every_shape(tmp_path: Path, text: str) -> None:
    assert documents(tmp_path, text) == [DOC]


def test_json_lines_skip_blank_lines_and_keep_order(tmp_path: Path) -> None:
    docs = [{**DOC, "id": str(n)} for n in range(4)]
    text = (
        "\n".join(json.dumps(d) for d in docs[:2])
        + "\n\n"
        + "\n".join(json.dumps(d) for d in docs[2:])
    )
    assert documents(tmp_path, text) == docs


def test_empty_input_has_no_invoices(tmp_path: Path) -> None:
    assert documents(tmp_path, "  \n") == []


def test_bad_json_line_is_named(tmp_path: Path) -> None:
    with pytest.raises(exceptions.InvalidInput, match="line 2 is not valid JSON"):
        documents(tmp_path, json.dumps(DOC) + "\n{oops\n")


def test_stdin_is_spooled_and_removed_afterwards() -> None:
    stdin = io.StringIO(json.dumps(DOC))
    with settle_input.open_source("-", stdin) as source:
        assert list(source.documents()) == [DOC]
        assert list(source.documents()) == [DOC]  # read twice: validate, then settle
        spooled = source.path
        assert spooled.exists()
    assert not spooled.exists()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    quiet = settle_input.progress_bar(10, io.StringIO())
    assert type(quiet).__name__ == "_NoProgress"
    terminal = _Tty()
    bar = settle_input.progress_bar(10, terminal)
    bar.update(10)
    bar.close()
    assert type(bar).__name__ == "tqdm"
    assert "invoice/s" in terminal.getvalue()  # drawn on the terminal, not on stdout
