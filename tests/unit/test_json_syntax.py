"""A JSON syntax error is told in our words, with its line and column, in every language."""

from __future__ import annotations

import json

import pytest

from ovh_credit_plugin import json_syntax


def told(text: str) -> str:
    with pytest.raises(json.JSONDecodeError) as error:
        json.loads(text)
    return str(json_syntax.syntax_error(error.value))


@pytest.mark.parametrize(("text", "expected"), [
    ('{"amount": }', "a value is expected (line 1, column 12)"),
    ("{amount: 1}", "a property name in double quotes is expected (line 1, column 2)"),
    ('{"amount" 1}', "':' is expected (line 1, column 11)"),
    ("[1 2]", "',' is expected (line 1, column 4)"),
    ('{\n  "amount": "12', "a string is not closed (line 2, column 13)"),
    ('"a\x01b"', "a control character is not allowed in a string (line 1, column 3)"),
    ('"\\x"', "an escape sequence is not valid (line 1, column 2)"),
    ('"\\u12"', "an escape sequence is not valid (line 1, column 3)"),
    ("{} {}", "something follows the JSON value (line 1, column 4)"),
])
def test_each_problem_of_the_decoder_has_our_wording(text: str, expected: str) -> None:
    assert told(text) == expected


def test_a_problem_the_table_does_not_know_keeps_the_decoders_words() -> None:
    unknown = json.JSONDecodeError("Something new", "[1]", 1)
    assert str(json_syntax.syntax_error(unknown)) == "Something new (line 1, column 2)"


def test_a_json_line_is_told_at_its_line_of_the_input() -> None:
    with pytest.raises(json.JSONDecodeError) as error:
        json.loads('{"id": ')
    assert str(json_syntax.syntax_error(error.value, first_line=7)) == (
        "a value is expected (line 7, column 8)")
