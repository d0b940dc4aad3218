"""Translation of customer-visible text (oslo.i18n, gettext domain ``ovh_credit_plugin``).

Messages are marked with :func:`_` where they are written. A command-line
process translates them at once into the language of its locale (``LANGUAGE``,
``LC_ALL``, ``LC_MESSAGES``, ``LANG``). The REST API enables oslo.i18n's lazy
mode: a message stays a :class:`oslo_i18n.Message` until the answer is written,
then :func:`translate` renders it in the language the request's
``Accept-Language`` picked (:func:`best_language`).

An amount inside a message (:func:`amount`), and a count (:func:`count`), is
written as the message's language writes numbers (CLDR, through Babel):
rendered at once in the locale's language, or, in lazy mode, when the message
is translated.

Catalogs: ``locale/<lang>/LC_MESSAGES/ovh_credit_plugin.po`` in the package
are the source; the ``.mo`` files are compiled from them when the package is
built (``setup.py``) and shipped in the wheel.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import functools
import gettext
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import oslo_i18n
from oslo_i18n import _lazy, _message

if TYPE_CHECKING:
    from babel import Locale
    from babel.numbers import NumberPattern

DOMAIN = "ovh_credit_plugin"

#: The catalogs shipped in the package; ``OVH_CREDIT_PLUGIN_LOCALEDIR`` (the
#: variable oslo.i18n reads for this domain) points elsewhere when set.
PACKAGE_LOCALEDIR = str(Path(__file__).parent / "locale")
_LOCALEDIR_VARIABLE = "OVH_CREDIT_PLUGIN_LOCALEDIR"
# oslo.i18n's lazy messages find their catalog through this variable only, so
# it must name our catalogs before the first message is translated.
os.environ.setdefault(_LOCALEDIR_VARIABLE, PACKAGE_LOCALEDIR)

#: The language of the messages as written in the code.
SOURCE_LANGUAGE = "en"

_translators = oslo_i18n.TranslatorFactory(domain=DOMAIN,
                                           localedir=os.environ[_LOCALEDIR_VARIABLE])

#: Marks a message for translation: translated now (command line) or kept as a
#: lazy message (REST API).
_ = _translators.primary


def _locale_language() -> str:
    # The catalog gettext picks for the process locale, as oslo.i18n did for
    # ``_`` just above (once, at import): the first of LANGUAGE, LC_ALL,
    # LC_MESSAGES, LANG that is set, its first language with a catalog; none
    # gives the source language. Numbers are then written as the words are.
    found = gettext.find(DOMAIN, localedir=os.environ[_LOCALEDIR_VARIABLE])
    return Path(found).parent.parent.name if found else SOURCE_LANGUAGE


_PROCESS_LANGUAGE = _locale_language()


def process_language() -> str:
    """The language a command line's messages are translated into (its locale's)."""
    return _PROCESS_LANGUAGE


def deferred(message: str) -> str:
    """Marks a constant for the catalog without translating it yet.

    For text defined at import time (a table of titles), before the API turns
    lazy mode on; :func:`translate` translates it when it is used.
    """
    return message


def available_languages() -> tuple[str, ...]:
    """The languages a message can be answered in: the source's and each catalog's."""
    return _languages_in(os.environ[_LOCALEDIR_VARIABLE])


@functools.lru_cache(maxsize=8)
def _languages_in(localedir: str) -> tuple[str, ...]:
    # Once per directory: the REST API asks on every answer, and listing the
    # catalogs (a glob) cost ~5% of a GET credits. gettext, which oslo.i18n
    # translates with, caches the catalogs it opens for the process as well,
    # so a catalog added while a server runs was never used before a restart.
    found = sorted(path.parent.parent.name
                   for path in Path(localedir).glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return (SOURCE_LANGUAGE, *(lang for lang in found if lang != SOURCE_LANGUAGE))


def best_language(accept_language: object) -> str:
    """The language for an ``Accept-Language`` header (a webob ``request.accept_language``).

    RFC 4647 lookup: ``fr-CH`` falls back to ``fr``; no match gives English.
    """
    lookup = getattr(accept_language, "lookup", None)
    if lookup is None:
        return SOURCE_LANGUAGE
    return str(lookup(language_tags=list(available_languages()), default=SOURCE_LANGUAGE))


def accept_language(environ: Mapping[str, str] | None = None) -> str | None:
    """The ``Accept-Language`` of the process locale, for a client of the REST API.

    gettext's order (``LANGUAGE``, a ``:`` list; then ``LC_ALL``,
    ``LC_MESSAGES``, ``LANG``); ``fr_FR.UTF-8`` is sent as ``fr-FR``. None for
    the C/POSIX locale or none set: the server answers in English.
    """
    environ = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        if environ.get(name):
            found = environ[name].split(":")
            break
    else:
        return None
    tags = []
    for item in found:
        tag = item.split(".", 1)[0].split("@", 1)[0].replace("_", "-")
        if tag and tag not in ("C", "POSIX") and tag not in tags:
            tags.append(tag)
    if not tags:
        return None
    # Each one less wanted than the one before: q=1, 0.9, 0.8... down to 0.1.
    return ", ".join(tag if i == 0 else f"{tag};q={max(10 - i, 1) / 10}"
                     for i, tag in enumerate(tags))


@functools.lru_cache(maxsize=16)
def _catalog(language: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, localedir=os.environ[_LOCALEDIR_VARIABLE],
                               languages=[language], fallback=True)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form the process's language takes for ``count`` (French: 0 and 1 singular),
    then ``%`` its parameters: a message with a count, for the command lines.

    Translated at once in the process's language, in lazy mode too: oslo.i18n's
    lazy plural message raises ValueError when it is made (a process that
    enabled lazy mode, a test run with the REST API in it, would fail there).
    tools/update_catalogs.py extracts it (``-k ngettext:1,2``).
    """
    return _catalog(_PROCESS_LANGUAGE).ngettext(singular, plural, count)


def translate(text: object, language: str) -> str:
    """``text`` in ``language``: a lazy message, or a constant marked with :func:`deferred`.

    Text that is neither (a value, a pydantic message) comes back unchanged.
    """
    if type(text) is str:
        return _catalog(language).gettext(text)
    # A lazy message (oslo.i18n's Message, a str subclass) translates itself
    # and its parameters; anything else becomes its str().
    return str(oslo_i18n.translate(text, language))


def enable_lazy() -> None:
    """Keep messages untranslated until the answer knows its language (the REST API)."""
    oslo_i18n.enable_lazy()


# -- amounts inside messages -------------------------------------------------------------

NBSP = "\u00a0"
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def amount(value: Decimal | str, currency: str | None = None, *, now: bool = False) -> str:
    """``value`` (and ``currency`` after it) for a message's placeholder, as the
    reader's language writes numbers: ``1 234,50 EUR`` in French, ``1,234.50 EUR``
    in English.

    Exactly the places of ``value`` (a decimal string's, or a Decimal's own
    exponent): :func:`ovh_credit_plugin.money.in_sentence` passes a ledger amount
    with its currency's. Written at once in the locale's language (a command
    line), or, in lazy mode (the REST API), when the message is translated:
    ``str()`` of it is then the machine form (``1234.50 EUR``), which log lines
    quote. ``now`` writes it at once even in lazy mode (text a command line
    prints itself).
    """
    text = value if isinstance(value, str) else format(value, "f")
    if _lazy.USE_LAZY and not now:
        return _Amount(text, currency)
    return written(text, currency, _PROCESS_LANGUAGE)


def count(value: int | str, *, now: bool = False) -> str:
    """A count (of invoices, attempts, seconds, bytes...) for a message's placeholder,
    grouped as the reader's language writes numbers: ``1 000 000`` in French (U+00A0),
    ``1,000,000`` in English. The placeholder is ``%(name)s``.

    :func:`amount` without places or currency: written when and in the language
    the message is (``str()`` of it in lazy mode, which log lines quote, is the
    plain digits), or at once with ``now`` (a line a command line prints itself:
    :func:`ngettext`'s text is made at once, in the process's language). A
    message with a count still takes its form from the integer:
    ``ngettext(singular, plural, n) % {"n": count(n, now=True)}``. Text that is
    no plain number (a Retry-After that is a date) is shown as given.
    """
    return amount(str(value), now=now)


def written(value: Decimal | str, currency: str | None, language: str) -> str:
    """``value`` and ``currency`` as ``language`` writes them (see :func:`amount`).

    The group separator CLDR gives French (U+202F) is written U+00A0, and the
    currency follows the number after a U+00A0: the dashboard panel writes
    amounts so (Django's formats), and one page shows both. Text that is not
    a plain decimal (no sign, no exponent) is shown as given.
    """
    text = value if isinstance(value, str) else format(value, "f")
    number = _number(text, language) if _PLAIN_DECIMAL.fullmatch(text) else text
    return f"{number}{NBSP}{currency}" if currency else number


def _number(text: str, language: str) -> str:
    locale, pattern = _pattern(language, len(text.partition(".")[2]))
    # Babel normalizes and quantizes in the thread's context, which a host may
    # have lowered: a context of our own, precise enough for every digit of
    # the text, so that nothing is ever rounded.
    exact = decimal.Context(prec=len(text) + 2, rounding=decimal.ROUND_HALF_EVEN,
                            traps=[decimal.Inexact, decimal.InvalidOperation])
    with decimal.localcontext(exact):
        number = pattern.apply(Decimal(text), locale)
    return str(number).replace("\u202f", NBSP)


# What a person types for an amount: ASCII digits, the two marks, the spaces French
# groups with. Babel alone would also read "1e3", "1_000" and other scripts' digits.
_TYPED = re.compile("[0-9][0-9.,\u0020\u00a0\u202f]*", re.ASCII)
_SPACES = re.compile("[\u0020\u00a0\u202f]")


def typed_amount(text: str, language: str) -> Decimal | None:
    """An amount a person typed, as ``language`` writes numbers (``1 000,50`` in
    French, ``1,000.50`` in English), or in the machine form (``1000.50``) in any;
    None when it is neither, or ambiguous for that language (``10,5`` in English).

    A mark is never read as a decimal one where the language groups with it:
    "1,000" in English is a thousand, not 1.000; "1.000" in German, a thousand to
    its writer and 1.000 in the machine form, is None (a currency of three
    decimals would take either). A point that cannot group ("50.00") is read in
    the machine form in every language.
    """
    text = text.strip()
    machine = Decimal(text) if _PLAIN_DECIMAL.fullmatch(text) else None
    if machine is not None and "." not in text:
        return machine
    if not _TYPED.fullmatch(text):
        return None
    from babel.numbers import NumberFormatError, get_group_symbol, parse_decimal

    locale = _pattern(language, 0)[0]
    group = get_group_symbol(locale)
    if _SPACES.fullmatch(group):  # typed as a space, a no-break or a narrow one
        text = _SPACES.sub(group, text)
    try:
        found = parse_decimal(text, locale=locale, strict=True)
    except NumberFormatError:
        return machine  # "50.00" in German: a point that cannot group
    if machine is not None and found != machine:
        return None  # "1.000" in German: a thousand to its writer, ambiguous here
    return found if found.is_finite() else None


@functools.lru_cache(maxsize=64)
def _pattern(language: str, places: int) -> tuple[Locale, NumberPattern]:
    # Imported on the first amount written: Babel's tables take ~40 ms to load,
    # which a command that writes none does not pay.
    from babel import Locale, UnknownLocaleError

    try:
        locale = Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        locale = Locale.parse(SOURCE_LANGUAGE)
    # The language's own pattern (its grouping), with exactly ``places`` decimals.
    pattern = copy.copy(locale.decimal_formats[None])
    pattern.frac_prec = (places, places)
    return locale, pattern


def moment(value: dt.datetime, *, now: bool = False) -> str:
    """``value`` for a message's placeholder, as the reader's language writes a moment,
    in UTC: ``1 janv. 2035, 12:01:30 UTC`` in French, ``Jan 1, 2035, 12:01:30 PM UTC``
    in English (CLDR's medium form, through Babel).

    Lazy like :func:`amount` (the REST API): ``str()`` of it is RFC 3339
    (``2035-01-01T12:01:30Z``), which log lines quote; written at once in the
    locale's language otherwise, or with ``now``.
    """
    at = value.astimezone(dt.timezone.utc)
    if _lazy.USE_LAZY and not now:
        return _Moment(at)
    return written_moment(at, _PROCESS_LANGUAGE)


def written_moment(value: dt.datetime, language: str) -> str:
    """``value`` (UTC) as ``language`` writes it (see :func:`moment`)."""
    from babel.dates import format_datetime

    locale = _pattern(language, 0)[0]
    text = format_datetime(value, "medium", tzinfo=dt.timezone.utc, locale=locale)
    return f"{text}{NBSP}UTC".replace("\u202f", NBSP)


def _rfc3339(value: dt.datetime) -> str:
    text = value.astimezone(dt.timezone.utc).isoformat()
    return text.removesuffix("+00:00") + "Z"


class _Moment(_message.Message):
    """A moment as a lazy message's parameter (see :class:`_Amount`)."""

    _at: dt.datetime

    def __new__(cls, at: dt.datetime) -> _Moment:
        machine = _rfc3339(at)
        made = cast("_Moment", super().__new__(cls, machine, msgtext=machine, domain=DOMAIN))
        made._at = at
        return made

    def translation(self, desired_locale: str | None = None) -> str:
        return written_moment(self._at, desired_locale or _PROCESS_LANGUAGE)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Moment, (self._at,))


class _Amount(_message.Message):
    """An amount as a lazy message's parameter: oslo.i18n translates a parameter
    that is a Message with the message (``Message.translation``), so it is written
    in the language the message is, when it is."""

    _text: str
    _currency: str | None

    def __new__(cls, text: str, currency: str | None) -> _Amount:
        machine = f"{text} {currency}" if currency else text
        made = cast("_Amount", super().__new__(cls, machine, msgtext=machine, domain=DOMAIN))
        made._text = text
        made._currency = currency
        return made

    def translation(self, desired_locale: str | None = None) -> str:
        return written(self._text, self._currency, desired_locale or _PROCESS_LANGUAGE)

    def __reduce__(self) -> tuple[Any, ...]:
        # oslo.i18n deep-copies a message's parameters: rebuilt from its value.
        return (_Amount, (self._text, self._currency))
