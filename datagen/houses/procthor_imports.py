"""Importing ``procthor`` (0.0.1.dev2) without AI2-THOR or moviepy installed.

procthor's generation and database modules import ``ai2thor.controller.Controller`` and
``moviepy.editor.ImageSequenceClip`` at module level, and the houses generated here never call
either:

- ``Controller`` appears in annotations, as the base of ``procthor.utils.DebugController``
  (unused), and is instantiated only when ``HouseGenerator`` gets no controller (ours always
  gets :class:`~datagen.houses.standin.GeometricController`) and in
  ``House.top_down_video`` (not called).
- ``ImageSequenceClip`` is used only in ``House.top_down_video``, which starts a Unity
  controller and raises ``NotImplementedError`` before it reaches the clip.

So the embedded pipeline does not install them (``ai2thor`` is the ``thor`` extra; moviepy
is not needed at all). :func:`load` imports procthor's modules once, with a placeholder for
each of the two that cannot be imported; a placeholder raises a one-line
:class:`~common.optional.MissingExtraError` if anything calls it. The placeholders are taken
out of ``sys.modules`` again, so any other ``import ai2thor`` still fails as usual. Installed
packages are used as they are.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from common.optional import missing_extra

PROCTHOR_MODULES = ("procthor.generation", "procthor.databases")
"""What :func:`load` imports; every procthor module that imports ai2thor or moviepy is one of
these or imported by them."""


class Controller:
    """Stands in for ``ai2thor.controller.Controller`` when ai2thor is not installed."""

    def __init__(self, *args, **kwargs):
        raise missing_extra("ai2thor", "thor", "procthor starting AI2-THOR's Unity controller")


class ImageSequenceClip:
    """Stands in for ``moviepy.editor.ImageSequenceClip`` when moviepy is not installed."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("procthor's top-down video needs moviepy<2 and AI2-THOR; "
                           "neither is part of this project")


_ABSENT = object()

PLACEHOLDERS = {"ai2thor.controller": Controller, "moviepy.editor": ImageSequenceClip}
"""Module -> the one name procthor imports from it."""


def placeholder_module(name: str, value: type) -> ModuleType:
    module = ModuleType(name, f"Placeholder for {name} while procthor is imported.")
    setattr(module, value.__name__, value)
    return module


@contextmanager
def placeholders() -> Iterator[list[str]]:
    """Placeholder modules in ``sys.modules`` for the :data:`PLACEHOLDERS` that cannot be
    imported, while the block runs; yields their names. ``sys.modules`` is restored after."""
    saved: dict[str, object] = {}
    used = []
    for name, value in PLACEHOLDERS.items():
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        parent = name.partition(".")[0]
        for mod in (parent, name):
            saved.setdefault(mod, sys.modules.get(mod, _ABSENT))
        if sys.modules.get(parent) is None:
            sys.modules[parent] = placeholder_module(parent, value)
        sys.modules[name] = placeholder_module(name, value)
        used.append(name)
    try:
        yield used
    finally:
        for mod, before in saved.items():
            if before is _ABSENT:
                sys.modules.pop(mod, None)
            else:
                sys.modules[mod] = before


def load() -> None:
    """Import procthor's generation and database modules (idempotent)."""
    if all(m in sys.modules for m in PROCTHOR_MODULES):
        return
    with placeholders():
        for module in PROCTHOR_MODULES:
            importlib.import_module(module)
