"""Modules imported when first used.

``ovh-credit`` starts a new process for every command, and operators run it
in loops (issue 15, decision 3): what one command needs (the voucher
catalog, the settlement host, alembic, pydantic's models, one capability of
the service) must not be imported by the others, nor by ``--help``.
``module(name)`` stands for the module: the first attribute read imports it
(an ordinary import, under the import system's lock, so the module is the
one everybody else gets, also from several threads). Attributes are read
from the module each time: a patched or reassigned attribute is seen.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Deferred(ModuleType):
    _module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self.__name__)
        return getattr(module, attribute)


def module(name: str) -> ModuleType:
    """Stands for module ``name``, imported when one of its attributes is first read."""
    return _Deferred(name)
