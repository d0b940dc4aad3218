"""Reading invoices for ``ovh-credit settle``: an object, an array, or JSON lines.

JSON lines are streamed, so a file of a million invoices is read in flat
memory; the input is read twice (counted, then settled), so standard input
is spooled to a temporary file first. An invoice that cannot be read is
refused in its place (an :class:`~ovh_credit_plugin.models.InvoiceRefusal`);
only an input that is no invoice input at all stops the run before it starts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ovh_credit_plugin import exceptions, json_syntax, models
from ovh_credit_plugin.i18n import _


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
        """Each invoice document of the input, in order.

        A document that cannot be read (a JSON line that is not JSON, an
        object with a key twice) is an :class:`~models.InvoiceRefusal` in its
        place: it is refused, and the run goes on. An input that is no
        invoice input at all (not UTF-8, not JSON) raises.
        """
        try:
            yield from self._documents()
        except UnicodeDecodeError:
            raise exceptions.InvalidInput(
                _("the input is not UTF-8 (line %(line)d)")
                % {"line": _first_undecodable_line(self.path)}
            ) from None

    def count(self) -> int:
        """How many invoices the input holds; raises, before anything is written, on an
        input that is no invoice input at all.

        JSON lines are counted, not parsed: a bad line is refused in its place
        when the run reaches it.
        """
        try:
            with self.path.open(encoding=_ENCODING) as stream:
                first = _first_char(stream)
                if first != "{":
                    return sum(1 for _ in self._documents())
                head = stream.readline()
                try:
                    json.loads(head)
                except ValueError:
                    return sum(1 for _ in self._documents())  # one pretty-printed object
                return 1 + sum(1 for line in stream if line.strip())
        except UnicodeDecodeError:
            raise exceptions.InvalidInput(
                _("the input is not UTF-8 (line %(line)d)")
                % {"line": _first_undecodable_line(self.path)}
            ) from None

    def _documents(self) -> Iterator[Any]:
        with self.path.open(encoding=_ENCODING) as stream:
            first = _first_char(stream)
            if first == "":
                return
            if first == "[":
                duplicates: list[str] = []
                documents = _load(stream.read(), _("the input"), duplicates)
                if not isinstance(documents, list):  # pragma: no cover - '[' starts a list
                    raise exceptions.InvalidInput(_("the input is not a JSON array"))
                if not duplicates:
                    yield from documents
                    return
                for number, document in enumerate(documents, start=1):
                    yield _refused_if_duplicated(
                        document, _("invoice #%(number)d") % {"number": number})
                return
            if first != "{":
                raise exceptions.InvalidInput(
                    _("the input must be an invoice object, an array of them, or JSON lines")
                )
            head = stream.readline()
            duplicates = []
            try:
                document = json.loads(head, object_pairs_hook=_Pairs(duplicates))
            except ValueError:
                # Not one object per line: a single (pretty-printed) object.
                duplicates = []
                document = _load(head + stream.read(), _("the input"), duplicates)
                yield (_refused_if_duplicated(document, _("the invoice")) if duplicates
                       else document)
                return
            yield (_refused_if_duplicated(document, _("line %(number)d") % {"number": 1})
                   if duplicates else document)
            for number, line in enumerate(stream, start=2):
                if line.strip():
                    yield _line(line, number)


def _line(text: str, number: int) -> Any:
    """One JSON line's invoice, or its refusal: one bad line never stops a run."""
    duplicates: list[str] = []
    where = _("line %(number)d") % {"number": number}
    try:
        # Without its end of line, a line cut short is told at its last column.
        document = _load(text.rstrip("\r\n"), where, duplicates, first_line=number)
    except exceptions.InvalidInput as error:
        return models.InvoiceRefusal(None, None, str(error), error)
    return _refused_if_duplicated(document, where) if duplicates else document


class _Duplicated(dict[str, Any]):
    """A JSON object that had a key twice (json keeps the last one silently)."""

    duplicate = ""


class _Pairs:
    """``object_pairs_hook`` that marks objects holding a key twice, and notes that
    one was found (so that a document is searched for them only then)."""

    def __init__(self, found: list[str]) -> None:
        self.found = found

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        made = dict(pairs)
        if len(made) == len(pairs):
            return made
        marked = _Duplicated(made)
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                marked.duplicate = key
                break
            seen.add(key)
        self.found.append(marked.duplicate)
        return marked


def _first_duplicate(value: Any) -> str | None:
    if isinstance(value, _Duplicated):
        return value.duplicate
    children = value.values() if isinstance(value, dict) else value if isinstance(
        value, list) else ()
    for child in children:
        found = _first_duplicate(child)
        if found is not None:
            return found
    return None


def _refused_if_duplicated(document: Any, where: str) -> Any:
    """``document``, or its refusal when one of its objects has a key twice: which of
    the two values was meant is unknown, and json would keep the last one silently."""
    duplicate = _first_duplicate(document)
    if duplicate is None:
        return document
    error = exceptions.InvalidInput(
        _("%(where)s: key %(key)r appears twice in one object")
        % {"where": where, "key": duplicate})
    return models.InvoiceRefusal.of_document(document, error)


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


def _load(text: str, where: str, duplicates: list[str], *, first_line: int = 1) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_Pairs(duplicates))
    except RecursionError:  # arrays or objects nested deeper than the decoder goes
        raise exceptions.InvalidInput(
            _("%(where)s is not valid JSON: nested too deeply") % {"where": where}
        ) from None
    except json.JSONDecodeError as error:
        raise exceptions.InvalidInput(
            _("%(where)s is not valid JSON: %(error)s")
            % {"where": where,
               "error": json_syntax.syntax_error(error, first_line=first_line)}
        ) from None
    except ValueError:
        # Python's limit on the digits of an int (4300 by default), not a JSONDecodeError.
        raise exceptions.InvalidInput(
            _("%(where)s is not valid JSON: a number has too many digits") % {"where": where}
        ) from None


#: UTF-8, with the byte order mark some Windows tools write first skipped if there.
_ENCODING = "utf-8-sig"


def open_source(name: str, stdin: IO[str]) -> Source:
    if name == "-":
        return _spooled(lambda spool: _copy_bytes(stdin, spool))
    path = Path(name)
    if not name or not path.exists():  # "": an unset shell variable (Path("") is ".")
        raise exceptions.InvalidInput(
            _("no such invoice file: %(name)s") % {"name": name or "''"})
    if path.is_dir():
        # Opened for the system's own words: "Is a directory: PATH".
        path.open("rb").close()
    if not path.is_file():
        # A pipe named on the command line (bash's <(zcat invoices.gz), a FIFO):
        # read once, like standard input.
        with path.open("rb") as pipe:
            return _spooled(lambda spool: shutil.copyfileobj(pipe, spool))
    return Source(path)


def _spooled(fill: Callable[[IO[bytes]], None]) -> Source:
    """A temporary copy of an input that can be read only once."""
    spool = tempfile.NamedTemporaryFile(  # noqa: SIM115 - removed by Source.__exit__
        "wb", suffix=".jsonl", delete=False
    )
    try:
        with spool:
            fill(spool)
    except BaseException as error:
        # Source.__exit__ never runs for a spool that failed to fill.
        Path(spool.name).unlink(missing_ok=True)
        if isinstance(error, UnicodeEncodeError):
            raise exceptions.InvalidInput(_("the input is not UTF-8")) from None
        raise
    return Source(Path(spool.name), temporary=True)


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
