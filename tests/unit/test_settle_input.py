"""Reading invoice input for ``ovh-credit settle``, and the progress bar's switch."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from ovh_credit_plugin import exceptions, models
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


@pytest.mark.parametrize("text", [json.dumps(DOC), json.dumps([DOC]),
                                  json.dumps(DOC) + "\n" + json.dumps(DOC)],
                         ids=["object", "array", "json lines"])
def test_a_byte_order_mark_before_the_input_is_skipped(tmp_path: Path, text: str) -> None:
    # What Windows tools (PowerShell's Out-File, Notepad) write first in UTF-8.
    path = tmp_path / "in.json"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    with settle_input.open_source(str(path), io.StringIO()) as source:
        assert source.count() == len(list(source.documents())) >= 1
        assert all(document == DOC for document in source.documents())


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


def test_a_bad_json_line_is_refused_in_its_place_and_the_rest_is_read(tmp_path: Path) -> None:
    first, bad, last = documents(tmp_path, json.dumps(DOC) + "\n{oops\n" + json.dumps(DOC))
    assert first == last == DOC
    assert isinstance(bad, models.InvoiceRefusal)
    assert (bad.invoice, bad.project_id) == (None, None)
    assert bad.error.startswith("line 2 is not valid JSON")
    assert isinstance(bad.cause, exceptions.InvalidInput)


def count(tmp_path: Path, text: str) -> int:
    path = tmp_path / "in.json"
    path.write_text(text)
    with settle_input.open_source(str(path), io.StringIO()) as source:
        return source.count()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        (" \n\n", 0),
        ("[]", 0),
        (json.dumps(DOC), 1),
        (json.dumps(DOC, indent=2), 1),
        (json.dumps([DOC, DOC]), 2),
        (json.dumps(DOC) + "\n\n{oops\n" + json.dumps(DOC) + "\n", 3),
    ],
    ids=["empty", "blank", "empty array", "object", "pretty object", "array", "json lines"],
)
def test_count_says_how_many_invoices_without_settling(
    tmp_path: Path, text: str, expected: int
) -> None:
    assert count(tmp_path, text) == expected


def test_count_refuses_an_input_that_is_no_invoice_input(tmp_path: Path) -> None:
    with pytest.raises(exceptions.InvalidInput, match="the input is not valid JSON"):
        count(tmp_path, "[{oops")
    with pytest.raises(exceptions.InvalidInput, match="an invoice object, an array"):
        count(tmp_path, "42")


TWICE_AT_TOP = '{"id": "I", "id": "J", "project_id": "p", "lines": []}'
TWICE_IN_A_LINE = '{"id": "I", "project_id": "p", "lines": [{"amount": "1", "amount": "9"}]}'


@pytest.mark.parametrize(
    ("text", "where", "key"),
    [
        (json.dumps(DOC) + "\n" + TWICE_IN_A_LINE + "\n", "line 2", "amount"),
        (TWICE_AT_TOP + "\n" + json.dumps(DOC) + "\n", "line 1", "id"),
        ("[" + json.dumps(DOC) + ", " + TWICE_IN_A_LINE + "]", "invoice #2", "amount"),
        (TWICE_IN_A_LINE.replace(", ", ",\n  "), "the invoice", "amount"),
    ],
    ids=["json line", "first json line", "array", "pretty object"],
)
def test_a_key_twice_in_an_object_is_refused_not_last_wins(
    tmp_path: Path, text: str, where: str, key: str
) -> None:
    found = documents(tmp_path, text)
    [refused] = [d for d in found if isinstance(d, models.InvoiceRefusal)]
    assert refused.error == f"{where}: key {key!r} appears twice in one object"
    assert refused.project_id == "p"
    assert refused.invoice in ("I", "J")  # at the top: which one was meant is unknown
    assert [d for d in found if d is not refused] == [DOC] * (len(found) - 1)


def test_stdin_is_spooled_and_removed_afterwards() -> None:
    stdin = io.StringIO(json.dumps(DOC))
    with settle_input.open_source("-", stdin) as source:
        assert list(source.documents()) == [DOC]
        assert list(source.documents()) == [DOC]  # read twice: count, then settle
        spooled = source.path
        assert spooled.exists()
    assert not spooled.exists()


NOT_UTF8 = json.dumps(DOC).encode() + b'\n{"id": "INV-\xe9"}\n'


def test_a_file_not_in_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(NOT_UTF8)
    with settle_input.open_source(str(path), io.StringIO()) as source, pytest.raises(
        exceptions.InvalidInput, match=r"^the input is not UTF-8 \(line 2\)$"
    ):
        list(source.documents())


@pytest.mark.parametrize(
    "stdin",
    [
        # Standard input as Python opens it: bytes underneath.
        lambda: io.TextIOWrapper(io.BytesIO(NOT_UTF8), encoding="utf-8",
                                 errors="surrogateescape"),
        # A text stream of its own, holding the bytes a decoder escaped.
        lambda: io.StringIO(NOT_UTF8.decode("utf-8", "surrogateescape")),
    ],
    ids=["bytes underneath", "text only"],
)
def test_stdin_not_in_utf8_is_refused_and_leaves_no_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdin: Callable[[], IO[str]]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with (
        pytest.raises(exceptions.InvalidInput, match=r"^the input is not UTF-8 \(line 2\)$"),
        settle_input.open_source("-", stdin()) as source,
    ):
        list(source.documents())
    assert list(tmp_path.iterdir()) == []


def test_stdin_that_no_bytes_encode_is_refused_and_leaves_no_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(exceptions.InvalidInput, match=r"^the input is not UTF-8$"):
        settle_input.open_source("-", io.StringIO('{"id": "\ud800"}'))
    assert list(tmp_path.iterdir()) == []


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
