"""Reading and upgrading ProcTHOR house JSON (the checks: :mod:`sim.house_check`).

A house is the dict AI2-THOR's ``CreateHouse`` takes. Two schemas are accepted on input:

- ``1.0.0`` (AI2-THOR >= 4, ProcTHOR-10K): doors/windows carry ``holePolygon`` (two corners,
  wall-local: x along the wall from its first vertex, y up) and ``assetPosition``; materials
  are ``{"name": ..., "color": ...}``.
- ``0.0.1`` (what the ``procthor`` package emits): doors/windows carry ``boundingBox`` and
  ``assetOffset``; materials are plain strings.

Everything downstream sees schema 1.0.0: :func:`read_house` checks what
:func:`upgrade_house` reads of a 0.0.1 house, upgrades it, then checks the whole house with
:func:`check_house` (types, finite numbers within the limits below, unique ids, references
that resolve), so later code never meets a value it cannot use. Problems raise
:class:`HouseError`, one line naming the file, the house index, the field and the fix.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.house_check import HouseError, check_before_upgrade, check_house, show_value

SCHEMA = "1.0.0"
OLD_SCHEMA = "0.0.1"
SCHEMAS = (OLD_SCHEMA, SCHEMA)
HOUSE_SUFFIXES = (".json", ".jsonl", ".jsonl.gz")

MAX_HOUSE_CHARS = 64 * 2**20
"""Characters of one house's JSON (ProcTHOR houses take 20-500 kB): a longer line is refused
before it is parsed."""
@dataclass(frozen=True)
class HouseRecord:
    """One house read from a file: where it came from and its schema-1.0.0 dict."""

    source: str
    index: int
    house: dict
    schema_in: str

    @property
    def house_id(self) -> str:
        return house_id(self.house, f"{Path(self.source).name}:{self.index}")


def house_id(house: dict, default: str) -> str:
    """The house's id: ``metadata.houseId`` when present, else ``default``."""
    return str(house.get("metadata", {}).get("houseId", default))


# --------------------------------------------------------------------------- reading

_READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error)
"""What a missing, truncated, corrupt or non-UTF-8 file raises while it is read."""


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _bounded(text: str, path: Path, index: int) -> str:
    """``text``, unless it is longer than MAX_HOUSE_CHARS (HouseError)."""
    if len(text) > MAX_HOUSE_CHARS:
        raise HouseError(path, index, "<file>", f"the house is longer than "
                         f"{MAX_HOUSE_CHARS:,} characters", "give one house per line")
    return text


def _texts(f, path: Path) -> Iterator[tuple[int, str]]:
    """(index, text) of each house of an open file: the whole of a ``.json``, else each line;
    HouseError for one longer than MAX_HOUSE_CHARS (read no further than that)."""
    if path.name.endswith(".json"):
        yield 0, _bounded(f.read(MAX_HOUSE_CHARS + 1), path, 0)
        return
    for index, line in enumerate(iter(lambda: f.readline(MAX_HOUSE_CHARS + 1), "")):
        yield index, _bounded(line, path, index)


def iter_house_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line index, text) of every non-blank line of a ``.jsonl``/``.jsonl.gz`` house file;
    a ``.json`` file is one house at index 0. HouseError when the file cannot be read or
    holds no house."""
    path = Path(path)
    if not path.name.endswith(HOUSE_SUFFIXES):
        raise HouseError(path, None, "<file>", "unknown file type",
                         f"give a file ending in one of {', '.join(HOUSE_SUFFIXES)}")
    if not path.is_file():
        raise HouseError(path, None, "<file>", "no such file", "check the path")
    found = False
    try:
        with _open_text(path) as f:
            for index, text in _texts(f, path):
                if text.strip():
                    found = True
                    yield index, text
    except _READ_ERRORS as e:
        raise HouseError(path, None, "<file>", f"cannot be read ({e})",
                         "the file is corrupt or truncated; regenerate it") from None
    if not found:
        raise HouseError(path, None, "<file>", "no houses (the file is empty)",
                         "give a file with one house per line (a .json file: one house)")


class _NotJSONNumber(ValueError):
    """NaN, Infinity or -Infinity in a house's text: Python reads them, JSON has no such
    numbers."""


def _no_constant(name: str):
    raise _NotJSONNumber(f"{name} is not a number JSON allows")


def parse_house_line(text: str, path: str | os.PathLike, index: int) -> Any:
    """The JSON of one house line (HouseError naming the line when malformed, nested too
    deeply to read, or holding NaN, Infinity or an integer too long to convert)."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise HouseError(path, index, "<json>", f"line {index + 1} is nested too deeply to "
                         "read", "a house nests a few levels deep; fix or regenerate the file"
                         ) from None
    except _NotJSONNumber as e:
        raise HouseError(path, index, "<json>", f"line {index + 1}: {e}",
                         "write finite numbers (JSON has no NaN or Infinity)") from None
    except ValueError as e:  # JSONDecodeError, integers of over 4300 digits
        problem = " ".join(str(e).split(";")[0].split())
        raise HouseError(path, index, "<json>", f"malformed JSON on line {index + 1} "
                         f"({problem})", "fix or regenerate the file") from None


def iter_raw_houses(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(index, parsed JSON) for every house in a ``.json``, ``.jsonl`` or ``.jsonl.gz`` file."""
    for index, text in iter_house_lines(path):
        yield index, parse_house_line(text, path, index)


def load_houses(path: str | os.PathLike) -> Iterator[HouseRecord]:
    """Every house in a file, checked and upgraded to schema 1.0.0."""
    for index, raw in iter_raw_houses(path):
        yield read_house(raw, path, index, owned=True)


def load_house(path: str | os.PathLike, index: int = 0) -> HouseRecord:
    """The house at ``index`` (0-based line) of a house file (the other lines are not
    parsed, so a bad house elsewhere in the file does not matter)."""
    for i, text in iter_house_lines(path):
        if i == index:
            return read_house(parse_house_line(text, path, i), path, i, owned=True)
    raise HouseError(path, index, "--index", "no house at this index",
                     "give an index smaller than the number of houses in the file")


def read_house(raw: Any, source: str | os.PathLike = "<memory>", index: int | None = 0,
               owned: bool = False) -> HouseRecord:
    """Check a parsed house of either schema and return it upgraded to schema 1.0.0.

    A schema-0.0.1 house is checked where :func:`upgrade_house` reads it, upgraded, then
    checked whole; its errors name its own fields (``boundingBox``, not ``holePolygon``).
    A schema-1.0.0 ``raw`` is deep-copied unless ``owned`` (the caller has just parsed it and
    hands it over: the copy is 2/3 of the time of reading a house file).
    """
    schema = detect_schema(raw, source, index)
    try:
        if schema == OLD_SCHEMA:
            check_before_upgrade(raw, source, index)
            house = upgrade_house(raw)
        else:
            house = raw if owned else copy.deepcopy(raw)
    except RecursionError:
        raise HouseError(source, index, "<json>", "nested too deeply to copy",
                         "a house nests a few levels deep; fix or regenerate it") from None
    try:
        check_house(house, source, index)
    except HouseError as e:
        if schema != OLD_SCHEMA:
            raise
        field = e.field.replace("holePolygon", "boundingBox")
        raise HouseError(source, index, field.replace("assetPosition", "assetOffset"),
                         e.problem, e.fix) from None
    return HouseRecord(str(source), index if index is not None else 0, house, schema)


# --------------------------------------------------------------------------- schema


def detect_schema(raw: Any, source, index) -> str:
    """The schema a house declares (``metadata.schema``), or the one its door fields imply."""
    if not isinstance(raw, dict):
        raise HouseError(source, index, "<root>", f"expected a JSON object, got "
                         f"{type(raw).__name__}", "each house must be one JSON object")
    meta = raw.get("metadata")
    declared = meta.get("schema") if isinstance(meta, dict) else None
    if declared is not None:
        if declared not in SCHEMAS:
            raise HouseError(source, index, "metadata.schema", f"unknown schema "
                             f"{show_value(declared)}", f"use one of {', '.join(SCHEMAS)}")
        return declared
    holes = [d for key in ("doors", "windows") if isinstance(raw.get(key), list)
             for d in raw[key] if isinstance(d, dict)]
    if any("boundingBox" in d for d in holes):
        return OLD_SCHEMA
    return SCHEMA


def _material(m: Any) -> Any:
    if isinstance(m, str):
        return {"name": m}
    return m


def upgrade_house(raw: dict) -> dict:
    """A schema-0.0.1 house rewritten as schema 1.0.0 (the input is not modified).

    Doors and windows: ``boundingBox`` (wall-local min/max corners) becomes ``holePolygon``;
    ``assetPosition`` is the hole's centre plus ``assetOffset``. String materials become
    ``{"name": ...}``. The input must have passed :func:`read_house`'s checks before the
    upgrade (as the ``procthor`` package's output does).
    """
    h = copy.deepcopy(raw)
    for key in ("doors", "windows"):
        for d in h.get(key, []):
            if not isinstance(d, dict) or "boundingBox" not in d:
                continue
            bb = d.pop("boundingBox")
            off = d.pop("assetOffset", {"x": 0.0, "y": 0.0, "z": 0.0})
            lo, hi = bb["min"], bb["max"]
            d["holePolygon"] = [{"x": lo["x"], "y": lo["y"], "z": 0},
                                {"x": hi["x"], "y": hi["y"], "z": 0}]
            d["assetPosition"] = {
                "x": (lo["x"] + hi["x"]) / 2 + off.get("x", 0.0),
                "y": (lo["y"] + hi["y"]) / 2 + off.get("y", 0.0),
                "z": 0,
            }
    for room in h.get("rooms", []):
        if "floorMaterial" in room:
            room["floorMaterial"] = _material(room["floorMaterial"])
    for wall in h.get("walls", []):
        if "material" in wall:
            wall["material"] = _material(wall["material"])
    params = h.get("proceduralParameters", {})
    if "ceilingMaterial" in params:
        params["ceilingMaterial"] = _material(params["ceilingMaterial"])
    meta = h.setdefault("metadata", {})
    meta["schema"] = SCHEMA
    return h


def write_house_json(house: dict) -> str:
    """The canonical one-line JSON of a house (sorted keys): equal houses give equal bytes."""
    return json.dumps(house, sort_keys=True, separators=(",", ":"))


def house_content_hash(house: dict) -> str:
    """Hex sha256 of what a house is, whatever it is called: its canonical JSON without
    ``metadata`` (id, generator, split), so a training house renamed or stripped of its
    metadata still hashes the same (the held-out check of ``spoc-eval``)."""
    body = {k: v for k, v in house.items() if k != "metadata"}
    return hashlib.sha256(write_house_json(body).encode()).hexdigest()


def line_content_hash(text: str, source: str | os.PathLike, line: int) -> str:
    """:func:`house_content_hash` of the house on one line of a house file, as schema
    1.0.0: an older house is checked and upgraded first, a 1.0.0 house is hashed as parsed.
    What a checkpoint records of its training houses and what evaluation compares with them."""
    raw = parse_house_line(text, source, line)
    if detect_schema(raw, source, line) == OLD_SCHEMA:
        raw = read_house(raw, source, line, owned=True).house
    return house_content_hash(raw)


def file_content_hashes(path: str | os.PathLike) -> dict[int, str]:
    """Line -> :func:`line_content_hash` of every house of a house file."""
    return {line: line_content_hash(text, path, line) for line, text in iter_house_lines(path)}
