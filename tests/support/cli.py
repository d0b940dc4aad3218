"""The ``ovh-credit`` CLI run in-process on a test ledger."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

from ovh_credit_plugin.cli.app import main
from tests.support.clock import TEST_NOW
from tests.support.ledgers import Ledger


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    def __init__(
        self, ledger: Ledger, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self._ledger = ledger
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: str = "", json_output: bool = True) -> Result:
        self._capsys.readouterr()
        self._monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        argv = ["--config-file", str(self._ledger.config), "--now", TEST_NOW.isoformat(), *args]
        if json_output and "-f" not in args and args[:2] != ("db", "upgrade"):
            argv += ["-f", "json"]
        code = main(argv)
        out, err = self._capsys.readouterr()
        return Result(code, out, err)

    def ok(self, *args: str, stdin: str = "") -> Any:
        result = self(*args, stdin=stdin)
        assert result.code == 0, result.stderr
        assert result.stderr == ""
        return result.json()


