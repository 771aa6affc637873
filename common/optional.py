"""Packages that only one path needs, installed with an extra of ``pyproject.toml``.

:func:`require` imports one; when it is missing (or its own imports fail) the
:class:`~common.errors.InputError` names what needs it and the extra that installs it, in one
line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from common.errors import InputError


class MissingExtraError(InputError):
    """An optional package is not installed; the message names the extra to install."""


def missing_extra(package: str, extra: str, purpose: str, why: str = "") -> MissingExtraError:
    """The one-line error for ``purpose`` needing ``package`` from the extra ``extra``."""
    because = f" ({why})" if why else ""
    return MissingExtraError(f"{purpose} needs {package}, which is not installed{because}: "
                             f"pip install -e '.[{extra}]'")


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``module``, imported; :class:`MissingExtraError` if it cannot be."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise missing_extra(module.partition(".")[0], extra, purpose, str(e)) from None
