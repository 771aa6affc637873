"""Reading, checking and upgrading ProcTHOR house JSON.

A house is the dict AI2-THOR's ``CreateHouse`` takes. Two schemas are accepted on input:

- ``1.0.0`` (AI2-THOR >= 4, ProcTHOR-10K): doors/windows carry ``holePolygon`` (two corners,
  wall-local: x along the wall from its first vertex, y up) and ``assetPosition``; materials
  are ``{"name": ..., "color": ...}``.
- ``0.0.1`` (what the ``procthor`` package emits): doors/windows carry ``boundingBox`` and
  ``assetOffset``; materials are plain strings.

Everything downstream sees schema 1.0.0: :func:`upgrade_house` converts. Problems raise
:class:`HouseError`, one line naming the file, the house index, the field and the fix.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InputError
from sim.assets import asset_database

SCHEMA = "1.0.0"
OLD_SCHEMA = "0.0.1"
SCHEMAS = (OLD_SCHEMA, SCHEMA)
HOUSE_SUFFIXES = (".json", ".jsonl", ".jsonl.gz")

_TOL = 0.02  # metres of slack for holes touching a wall's ends (ProcTHOR rounds wall ids)


class HouseError(InputError):
    """A house that cannot be used, with where it is and what to do about it."""

    def __init__(self, source: str | os.PathLike, index: int | None, field: str, problem: str,
                 fix: str):
        where = f"{source}" + (f" house {index}" if index is not None else "")
        super().__init__(f"{where}: field '{field}': {problem}; {fix}")
        self.source, self.index, self.field = str(source), index, field


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


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_house_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line index, text) of every non-blank line of a ``.jsonl``/``.jsonl.gz`` house file;
    a ``.json`` file is one house at index 0. HouseError when the file cannot be read."""
    path = Path(path)
    if not path.name.endswith(HOUSE_SUFFIXES):
        raise HouseError(path, None, "<file>", "unknown file type",
                         f"give a file ending in one of {', '.join(HOUSE_SUFFIXES)}")
    if not path.is_file():
        raise HouseError(path, None, "<file>", "no such file", "check the path")
    try:
        with _open_text(path) as f:
            if path.name.endswith(".json"):
                yield 0, f.read()
                return
            for i, line in enumerate(f):
                if line.strip():
                    yield i, line
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise HouseError(path, None, "<file>", f"cannot be read ({e})",
                         "the file is corrupt or truncated; regenerate it") from None


def parse_house_line(text: str, path: str | os.PathLike, index: int) -> Any:
    """The JSON of one house line (HouseError naming the line when malformed)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise HouseError(path, index, "<json>", f"malformed JSON on line {index + 1} ({e})",
                         "fix or regenerate the file") from None


def iter_raw_houses(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(index, parsed JSON) for every house in a ``.json``, ``.jsonl`` or ``.jsonl.gz`` file."""
    for index, text in iter_house_lines(path):
        yield index, parse_house_line(text, path, index)


def load_houses(path: str | os.PathLike) -> Iterator[HouseRecord]:
    """Every house in a file, checked and upgraded to schema 1.0.0."""
    for index, raw in iter_raw_houses(path):
        yield read_house(raw, path, index, owned=True)


def load_house(path: str | os.PathLike, index: int = 0) -> HouseRecord:
    """The house at ``index`` (0-based line) of a house file."""
    for rec in load_houses(path):
        if rec.index == index:
            return rec
    raise HouseError(path, index, "--index", "no house at this index",
                     "give an index smaller than the number of houses in the file")


def read_house(raw: Any, source: str | os.PathLike = "<memory>", index: int | None = 0,
               owned: bool = False) -> HouseRecord:
    """Check a parsed house of either schema and return it upgraded to schema 1.0.0.

    A schema-1.0.0 ``raw`` is deep-copied unless ``owned`` (the caller has just parsed it and
    hands it over: the copy is 2/3 of the time of reading a house file).
    """
    schema = detect_schema(raw, source, index)
    if schema == OLD_SCHEMA:
        house = upgrade_house(raw)
    else:
        house = raw if owned else copy.deepcopy(raw)
    check_house(house, source, index)
    return HouseRecord(str(source), index if index is not None else 0, house, schema)


# --------------------------------------------------------------------------- schema


def detect_schema(raw: Any, source, index) -> str:
    """The schema a house declares (``metadata.schema``), or the one its door fields imply."""
    if not isinstance(raw, dict):
        raise HouseError(source, index, "<root>", f"expected a JSON object, got "
                         f"{type(raw).__name__}", "each house must be one JSON object")
    declared = raw.get("metadata", {}).get("schema") if isinstance(raw.get("metadata"),
                                                                   dict) else None
    if declared is not None:
        if declared not in SCHEMAS:
            raise HouseError(source, index, "metadata.schema", f"unknown schema {declared!r}",
                             f"use one of {', '.join(SCHEMAS)}")
        return declared
    holes = [d for d in raw.get("doors", []) + raw.get("windows", []) if isinstance(d, dict)]
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
    ``{"name": ...}``.
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


# --------------------------------------------------------------------------- checks


def _xyz(p: Any, source, index, field: str) -> tuple[float, float, float]:
    if not isinstance(p, dict) or not all(k in p for k in "xyz"):
        raise HouseError(source, index, field, "expected a point {x, y, z}",
                         "give all three coordinates")
    try:
        v = (float(p["x"]), float(p["y"]), float(p["z"]))
    except (TypeError, ValueError):
        raise HouseError(source, index, field, "coordinates must be numbers",
                         "fix the point") from None
    if not all(math.isfinite(c) for c in v):
        raise HouseError(source, index, field, "coordinates must be finite", "fix the point")
    return v


def _require(d: dict, key: str, source, index, field: str, kind: type | tuple = object):
    if key not in d:
        raise HouseError(source, index, f"{field}.{key}" if field else key, "missing",
                         "add the field (see AI2-THOR's CreateHouse schema 1.0.0)")
    if not isinstance(d[key], kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise HouseError(source, index, f"{field}.{key}" if field else key,
                         f"expected {name}, got {type(d[key]).__name__}", "fix its type")
    return d[key]


def polygon_area(points: list[tuple[float, float]]) -> float:
    """Signed shoelace area of a 2D polygon given without a repeated closing vertex."""
    a = 0.0
    for (x0, z0), (x1, z1) in zip(points, points[1:] + points[:1]):
        a += x0 * z1 - x1 * z0
    return a / 2


def _check_polygon(pts: list, source, index, field: str) -> list[tuple[float, float]]:
    import shapely

    xz = [(x, z) for x, _, z in (_xyz(p, source, index, f"{field}[{i}]")
                                 for i, p in enumerate(pts))]
    if len(xz) >= 2 and xz[0] == xz[-1]:
        xz = xz[:-1]  # an explicitly closed ring
    if len(set(xz)) < 3:
        raise HouseError(source, index, field, f"polygon has {len(set(xz))} distinct vertices",
                         "a floor polygon needs at least 3")
    if abs(polygon_area(xz)) < 1e-4:
        raise HouseError(source, index, field, "polygon is degenerate (zero area)",
                         "give the room's real outline")
    if not shapely.Polygon(xz).is_valid:
        raise HouseError(source, index, field, "polygon is not a simple closed ring "
                         "(its edges cross)", "order the vertices around the outline")
    return xz


def wall_geometry(wall: dict) -> tuple[tuple[float, float], tuple[float, float], float, float]:
    """((x0, z0), (x1, z1), bottom, top) of a wall quad: its base segment and height range.

    The base runs from the wall's first polygon vertex, which is also the origin of
    wall-local hole coordinates.
    """
    pts = [(p["x"], p["y"], p["z"]) for p in wall["polygon"]]
    x0, _, z0 = pts[0]
    far = max(pts, key=lambda p: (p[0] - x0) ** 2 + (p[2] - z0) ** 2)
    ys = [p[1] for p in pts]
    return (x0, z0), (far[0], far[2]), min(ys), max(ys)


def check_house(h: dict, source="<memory>", index: int | None = 0) -> None:
    """Raise HouseError for the first structural problem of a schema-1.0.0 house."""
    for key in ("rooms", "walls", "objects"):
        _require(h, key, source, index, "", list)
    for key in ("doors", "windows"):
        if key in h and not isinstance(h[key], list):
            raise HouseError(source, index, key, "expected a list", "fix its type")
    if not h["rooms"]:
        raise HouseError(source, index, "rooms", "no rooms", "a house needs at least one room")
    room_ids = set()
    for i, room in enumerate(h["rooms"]):
        f = f"rooms[{i}]"
        if not isinstance(room, dict):
            raise HouseError(source, index, f, "expected an object", "fix the room entry")
        room_ids.add(_require(room, "id", source, index, f, str))
        _require(room, "roomType", source, index, f, str)
        _check_polygon(_require(room, "floorPolygon", source, index, f, list), source, index,
                       f"{f}.floorPolygon")
    walls = {}
    for i, wall in enumerate(h["walls"]):
        f = f"walls[{i}]"
        if not isinstance(wall, dict):
            raise HouseError(source, index, f, "expected an object", "fix the wall entry")
        wid = _require(wall, "id", source, index, f, str)
        poly = _require(wall, "polygon", source, index, f, list)
        if len(poly) < 3:
            raise HouseError(source, index, f"{f}.polygon", f"{len(poly)} vertices",
                             "a wall is a vertical quad of 4 vertices")
        for j, p in enumerate(poly):
            _xyz(p, source, index, f"{f}.polygon[{j}]")
        (x0, z0), (x1, z1), lo, hi = wall_geometry(wall)
        if math.hypot(x1 - x0, z1 - z0) < 1e-3 or hi - lo < 1e-3:
            raise HouseError(source, index, f"{f}.polygon", "wall is degenerate (no length or "
                             "no height)", "give the wall's four corners")
        walls[wid] = wall
    for key in ("doors", "windows"):
        for i, d in enumerate(h.get(key, [])):
            _check_hole(d, walls, room_ids, source, index, f"{key}[{i}]")
    db = asset_database()
    stack = [(f"objects[{i}]", o) for i, o in enumerate(h["objects"])]
    while stack:
        f, o = stack.pop()
        if not isinstance(o, dict):
            raise HouseError(source, index, f, "expected an object", "fix the object entry")
        _require(o, "id", source, index, f, str)
        aid = _require(o, "assetId", source, index, f, str)
        if aid not in db:
            raise HouseError(source, index, f"{f}.assetId", f"unknown assetId {aid!r}",
                             "use an asset from procthor's asset-database.json")
        _xyz(_require(o, "position", source, index, f, dict), source, index, f"{f}.position")
        _xyz(_require(o, "rotation", source, index, f, dict), source, index, f"{f}.rotation")
        children = o.get("children", [])
        if not isinstance(children, list):
            raise HouseError(source, index, f"{f}.children", "expected a list", "fix its type")
        stack.extend((f"{f}.children[{j}]", c) for j, c in enumerate(children))


def _check_hole(d: Any, walls: dict, room_ids: set, source, index, f: str) -> None:
    if not isinstance(d, dict):
        raise HouseError(source, index, f, "expected an object", "fix the entry")
    _require(d, "id", source, index, f, str)
    aid = _require(d, "assetId", source, index, f, str)
    if aid not in asset_database():
        raise HouseError(source, index, f"{f}.assetId", f"unknown assetId {aid!r}",
                         "use an asset from procthor's asset-database.json")
    for side in ("wall0", "wall1"):
        wid = _require(d, side, source, index, f, str)
        if wid not in walls and not (side == "wall1" and "exterior" in wid):
            raise HouseError(source, index, f"{f}.{side}", f"wall {wid!r} does not exist",
                             "name a wall id from 'walls'")
    for side in ("room0", "room1"):
        if side in d and d[side] not in room_ids:
            raise HouseError(source, index, f"{f}.{side}", f"room {d[side]!r} does not exist",
                             "name a room id from 'rooms'")
    hole = _require(d, "holePolygon", source, index, f, list)
    if len(hole) != 2:
        raise HouseError(source, index, f"{f}.holePolygon", f"{len(hole)} points",
                         "give the two corners (min, max) in wall-local coordinates")
    (ax, ay, _), (bx, by, _) = (_xyz(p, source, index, f"{f}.holePolygon[{j}]")
                                for j, p in enumerate(hole))
    (x0, z0), (x1, z1), lo, hi = wall_geometry(walls[d["wall0"]])
    length = math.hypot(x1 - x0, z1 - z0)
    if not (bx - ax > 1e-3 and by - ay > 1e-3):
        raise HouseError(source, index, f"{f}.holePolygon", "hole is degenerate or its corners "
                         "are not (min, max)", "give the lower-left corner first")
    if ax < -_TOL or bx > length + _TOL or ay < lo - _TOL or by > hi + _TOL:
        raise HouseError(source, index, f"{f}.holePolygon",
                         f"hole x[{ax:.2f}, {bx:.2f}] y[{ay:.2f}, {by:.2f}] is outside its wall "
                         f"(length {length:.2f}, height {hi - lo:.2f})",
                         "place the hole inside the wall")


def write_house_json(house: dict) -> str:
    """The canonical one-line JSON of a house (sorted keys): equal houses give equal bytes."""
    return json.dumps(house, sort_keys=True, separators=(",", ":"))


def house_content_hash(house: dict) -> str:
    """Hex sha256 of what a house is, whatever it is called: its canonical JSON without
    ``metadata`` (id, generator, split), so a training house renamed or stripped of its
    metadata still hashes the same (the held-out check of ``spoc-eval``)."""
    body = {k: v for k, v in house.items() if k != "metadata"}
    return hashlib.sha256(write_house_json(body).encode()).hexdigest()
