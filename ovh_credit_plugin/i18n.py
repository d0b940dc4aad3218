"""Translation of customer-visible text (oslo.i18n, gettext domain ``ovh_credit_plugin``).

Messages are marked with :func:`_` where they are written. A command-line
process translates them at once into the language of its locale (``LANGUAGE``,
``LC_ALL``, ``LC_MESSAGES``, ``LANG``). The REST API enables oslo.i18n's lazy
mode: a message stays a :class:`oslo_i18n.Message` until the answer is written,
then :func:`translate` renders it in the language the request's
``Accept-Language`` picked (:func:`best_language`).

Catalogs: ``locale/<lang>/LC_MESSAGES/ovh_credit_plugin.po`` in the package
are the source; the ``.mo`` files are compiled from them when the package is
built (``setup.py``) and shipped in the wheel.
"""

from __future__ import annotations

import functools
import gettext
import os
from collections.abc import Mapping
from pathlib import Path

import oslo_i18n

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
