"""Reading invoices for ``ovh-credit settle``: an object, an array, or JSON lines.

JSON lines are streamed, so a file of a million invoices is read in flat
memory; the input is read twice (validation, then settlement), so standard
input is spooled to a temporary file first.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ovh_credit_plugin import exceptions
from ovh_credit_plugin.hosts.invoice import parse_invoice


class Source:
    """A re-readable invoice input."""

    def __init__(self, path: Path, *, temporary: bool = False) -> None:
        self.path = path
        self._temporary = temporary

    def __enter__(self) -> Source:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._temporary:
            self.path.unlink(missing_ok=True)

    def documents(self) -> Iterator[Any]:
        """Each invoice document of the input, in order."""
        try:
            yield from self._documents()
        except UnicodeDecodeError:
            raise exceptions.InvalidInput(
                f"the input is not UTF-8 (line {_first_undecodable_line(self.path)})"
            ) from None

    def _documents(self) -> Iterator[Any]:
        with self.path.open(encoding="utf-8") as stream:
            first = _first_char(stream)
            if first == "":
                return
            if first == "[":
                documents = _load(stream.read(), "the input")
                if not isinstance(documents, list):  # pragma: no cover - '[' starts a list
                    raise exceptions.InvalidInput("the input is not a JSON array")
                yield from documents
                return
            if first != "{":
                raise exceptions.InvalidInput(
                    "the input must be an invoice object, an array of them, or JSON lines"
                )
            head = stream.readline()
            try:
                document = json.loads(head)
            except ValueError:
                # Not one object per line: a single (pretty-printed) object.
                yield _load(head + stream.read(), "the input")
                return
            yield document
            for number, line in enumerate(stream, start=2):
                if line.strip():
                    yield _load(line, f"line {number}")


def _first_undecodable_line(path: Path) -> int:
    # The decoder's error has an offset in its read buffer, not a line: the
    # file is read again, line by line, on this error path only.
    with path.open("rb") as stream:
        number = 0
        for number, line in enumerate(stream, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return number  # pragma: no cover - the whole file decodes after all


def _first_char(stream: IO[str]) -> str:
    while True:
        position = stream.tell()
        char = stream.read(1)
        if char == "" or not char.isspace():
            stream.seek(position)
            return char


def _load(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise exceptions.InvalidInput(f"{where} is not valid JSON: {error}") from None


def open_source(name: str, stdin: IO[str]) -> Source:
    if name == "-":
        spool = tempfile.NamedTemporaryFile(  # noqa: SIM115 - removed by Source.__exit__
            "wb", suffix=".jsonl", delete=False
        )
        try:
            with spool:
                _copy_bytes(stdin, spool)
        except BaseException as error:
            # Source.__exit__ never runs for a spool that failed to fill.
            Path(spool.name).unlink(missing_ok=True)
            if isinstance(error, UnicodeEncodeError):
                raise exceptions.InvalidInput("the input is not UTF-8") from None
            raise
        return Source(Path(spool.name), temporary=True)
    path = Path(name)
    if not path.is_file():
        raise exceptions.InvalidInput(f"no such invoice file: {name}")
    return Source(path)


def _copy_bytes(stdin: IO[str], spool: IO[bytes]) -> None:
    """Stdin's bytes as they came: the spool is decoded (and checked) as UTF-8 when read."""
    buffer = getattr(stdin, "buffer", None)
    if buffer is not None:
        shutil.copyfileobj(buffer, spool)
        return
    while chunk := stdin.read(1 << 16):
        # A text stream without bytes underneath (tests, an embedding
        # program); surrogateescape gives back bytes a decoder escaped.
        spool.write(chunk.encode("utf-8", "surrogateescape"))


def validate(documents: Iterator[Any]) -> int:
    """Validate every invoice before anything is written; returns how many."""
    count = 0
    for count, document in enumerate(documents, start=1):
        parse_invoice(document, where=f"invoice #{count}")
    return count


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int | None, stream: IO[str], *, unit: str = "invoice") -> Any:
    """A progress bar on ``stream`` when it is a terminal, nothing otherwise."""
    if not stream.isatty():
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, file=stream, unit=unit, unit_scale=True, leave=False)
