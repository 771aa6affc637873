"""Checking a ProcTHOR house dict completely before anything uses it: types (booleans and
numeric strings are not numbers), finite numbers within the limits below, unique ids,
references that resolve, and the values later code reads. The first problem is a
:class:`HouseError`, one line naming the file, the house index, the field and the fix.
:func:`sim.house.read_house` runs these checks (those of :func:`check_before_upgrade` on a
schema-0.0.1 house, then :func:`check_house` on the upgraded one).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import shapely

from common.errors import InputError
from sim.assets import asset_database

MAX_HOUSE_SIDE = 100.0
"""Metres: the longest side of the box around a house's floors (ProcTHOR-10K houses stay under
40 m). A larger house is refused before any grid over it is allocated."""
MAX_COORDINATE = 1000.0
"""Metres: the largest |x| or |z| of a floor, wall or object point."""
MIN_HEIGHT, MAX_HEIGHT = -1.0, 20.0
"""Metres: the range of every y (floors are at y = 0; ProcTHOR's walls are under 5 m tall)."""
NEAR_HOUSE = 1.0
"""Metres: how far outside the box around the floors a wall or an object's centre may be."""
MAX_ROTATION = 3600.0
"""Degrees: the largest |angle| of an object's rotation."""
ROOM_OVERLAP = 0.01
"""Square metres of floor two rooms may share (rounding); more is a repeated or misplaced
room."""

_TOL = 0.02  # metres of slack for holes touching a wall's ends (ProcTHOR rounds wall ids)



class HouseError(InputError):
    """A house that cannot be used, with where it is and what to do about it."""

    def __init__(self, source: str | os.PathLike, index: int | None, field: str, problem: str,
                 fix: str):
        where = f"{source}" + (f" house {index}" if index is not None else "")
        super().__init__(f"{where}: field '{field}': {problem}; {fix}")
        self.source, self.index, self.field = str(source), index, field
        self.problem, self.fix = problem, fix

    def __reduce__(self):  # rebuilt from its parts when it crosses a process boundary
        return HouseError, (self.source, self.index, self.field, self.problem, self.fix)

    def at(self, source: str | os.PathLike, index: int | None) -> HouseError:
        """The same problem said of house ``index`` of ``source`` (for an error raised where
        only the house id was known, such as the lattice's size limit)."""
        return HouseError(source, index, self.field, self.problem, self.fix)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class _At:
    """The house a check is about: the file and index every HouseError names."""

    source: str
    index: int | None

    def error(self, field: str, problem: str, fix: str) -> HouseError:
        return HouseError(self.source, self.index, field, problem, fix)


def show_value(value: Any) -> str:
    """A value as a message shows it: its repr, cut to 60 characters."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**60 else \
        f"an integer of {len(str(abs(value)))} digits"
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    """What a JSON value is, for 'expected ..., got ...'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {show_value(value)}"
    return {list: "a list", dict: "an object"}.get(type(value), show_value(value))


def _require(d: dict, key: str, at: _At, field: str, kind: type = object):
    """``d[key]``, which must be present and of ``kind``."""
    name = f"{field}.{key}" if field else key
    if key not in d:
        raise at.error(name, "missing", "add the field (see AI2-THOR's CreateHouse schema 1.0.0)")
    if not isinstance(d[key], kind):
        expected = {str: "a string", list: "a list", dict: "an object"}[kind]
        raise at.error(name, f"expected {expected}, got {_kind(d[key])}", "fix its type")
    return d[key]


def _number(value: Any, at: _At, field: str, lo: float, hi: float, fix: str) -> float:
    """``value`` as a float: a JSON number (not a boolean or a numeric string), finite and
    within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise at.error(field, f"expected a number, got {_kind(value)}",
                       "give a plain JSON number")
    try:
        x = float(value)
    except OverflowError:  # an integer beyond any float
        x = math.inf
    if not math.isfinite(x):
        raise at.error(field, f"{show_value(value)} is not a finite number", fix)
    if not lo <= x <= hi:
        raise at.error(field, f"{show_value(value)} is outside the limits [{lo:g}, {hi:g}]", fix)
    return x


_METRES = "house coordinates are metres, floors at y = 0"
_WORLD = ((-MAX_COORDINATE, MAX_COORDINATE), (MIN_HEIGHT, MAX_HEIGHT),
          (-MAX_COORDINATE, MAX_COORDINATE))
_LOCAL = ((-MAX_COORDINATE, MAX_COORDINATE),) * 3
_ANGLES = ((-MAX_ROTATION, MAX_ROTATION),) * 3


def _xyz(p: Any, at: _At, field: str, limits=_WORLD, fix: str = _METRES
         ) -> tuple[float, float, float]:
    """A point ``{x, y, z}`` of numbers within ``limits`` ((lo, hi) per axis)."""
    if type(p) is dict:  # the usual case in one pass: plain numbers (not bools) in range
        v = (p.get("x"), p.get("y"), p.get("z"))
        if all(type(c) in (int, float) and lo <= c <= hi for c, (lo, hi) in zip(v, limits)):
            return v
    if not isinstance(p, dict):
        raise at.error(field, f"expected a point {{x, y, z}}, got {_kind(p)}",
                       "give all three coordinates")
    for k in "xyz":
        if k not in p:
            raise at.error(f"{field}.{k}", "missing", "give all three coordinates")
    return tuple(_number(p[k], at, f"{field}.{k}", lo, hi, fix)
                 for k, (lo, hi) in zip("xyz", limits))


def _outside(x: float, z: float, box: tuple[float, float, float, float]) -> float:
    """How far (x, z) lies outside ``box`` (xmin, zmin, xmax, zmax), 0 inside it."""
    return max(box[0] - x, x - box[2], box[1] - z, z - box[3], 0.0)


def _unique_id(d: dict, seen: set, at: _At, field: str, what: str) -> str:
    """``d["id"]``: a string not in ``seen`` (added to it)."""
    eid = _require(d, "id", at, field, str)
    if eid in seen:
        raise at.error(f"{field}.id", f"{what} id {show_value(eid)} is used twice",
                       f"give each {what} its own id")
    seen.add(eid)
    return eid


def _check_ref(d: dict, key: str, known: set, at: _At, field: str, what: str) -> None:
    """``d[key]``, where present and not null, names one of ``known`` (ids of ``what``s)."""
    ref = d.get(key)
    if ref is None:
        return
    if not isinstance(ref, str):
        raise at.error(f"{field}.{key}", f"expected a {what} id, got {_kind(ref)}",
                       f"name a {what} id from '{what}s'")
    if ref not in known:
        raise at.error(f"{field}.{key}", f"{what} {show_value(ref)} does not exist",
                       f"name a {what} id from '{what}s'")


def _check_material(m: Any, at: _At, field: str) -> None:
    """A material: absent, a name, or ``{name, color}`` with colour channels in [0, 1]."""
    if m is None or isinstance(m, str):
        return
    if not isinstance(m, dict):
        raise at.error(field, f"expected a material {{name, color}}, got {_kind(m)}",
                       "give an object with a 'name'")
    if "name" in m and not isinstance(m["name"], str):
        raise at.error(f"{field}.name", f"expected a string, got {_kind(m['name'])}",
                       "name the material")
    color = m.get("color")
    if color is None:
        return
    if not isinstance(color, dict):
        raise at.error(f"{field}.color", f"expected a colour {{r, g, b}}, got {_kind(color)}",
                       "give the channels as numbers in [0, 1]")
    for k in "rgba":
        if k in color:
            _number(color[k], at, f"{field}.color.{k}", 0.0, 1.0,
                    "colour channels are fractions in [0, 1]")


# --------------------------------------------------------------------------- checks


def polygon_area(points: list[tuple[float, float]]) -> float:
    """Signed shoelace area of a 2D polygon given without a repeated closing vertex."""
    a = 0.0
    for (x0, z0), (x1, z1) in zip(points, points[1:] + points[:1]):
        a += x0 * z1 - x1 * z0
    return a / 2


def _check_polygon(pts: list, at: _At, field: str) -> shapely.Polygon:
    """A floor outline: points within the limits, a simple ring of non-zero area."""
    xz = [(x, z) for x, _, z in (_xyz(p, at, f"{field}[{i}]") for i, p in enumerate(pts))]
    if len(xz) >= 2 and xz[0] == xz[-1]:
        xz = xz[:-1]  # an explicitly closed ring
    if len(set(xz)) < 3:
        raise at.error(field, f"polygon has {len(set(xz))} distinct vertices",
                       "a floor polygon needs at least 3")
    if abs(polygon_area(xz)) < 1e-4:
        raise at.error(field, "polygon is degenerate (zero area)", "give the room's real outline")
    polygon = shapely.Polygon(xz)
    if not polygon.is_valid:
        raise at.error(field, "polygon is not a simple closed ring (its edges cross)",
                       "order the vertices around the outline")
    return polygon


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


_LISTS = ("rooms", "walls", "doors", "windows", "objects")
_OBJECTS = ("metadata", "proceduralParameters")


def _check_containers(h: dict, at: _At) -> None:
    """The top-level fields, where present: lists of JSON objects, and JSON objects."""
    for key in _LISTS:
        items = h.get(key, [])
        if not isinstance(items, list):
            raise at.error(key, f"expected a list, got {_kind(items)}", "fix its type")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise at.error(f"{key}[{i}]", f"expected an object, got {_kind(item)}",
                               f"each entry of '{key}' is a JSON object")
    for key in _OBJECTS:
        if key in h and not isinstance(h[key], dict):
            raise at.error(key, f"expected an object, got {_kind(h[key])}", "fix its type")


def check_before_upgrade(raw: dict, source, index: int | None) -> None:
    """What :func:`upgrade_house` reads of a schema-0.0.1 house: the containers, and each
    door's and window's ``boundingBox`` and ``assetOffset``."""
    at = _At(str(source), index)
    _check_containers(raw, at)
    for key in ("doors", "windows"):
        for i, d in enumerate(raw.get(key, [])):
            if "boundingBox" in d:
                _check_bounding_box(d, at, f"{key}[{i}]")


def _check_bounding_box(d: dict, at: _At, field: str) -> None:
    """A schema-0.0.1 hole: ``boundingBox.min/max`` x and y, ``assetOffset`` x and y."""
    bb = _require(d, "boundingBox", at, field, dict)
    for corner in ("min", "max"):
        p = _require(bb, corner, at, f"{field}.boundingBox", dict)
        for k in "xy":
            _number(_require(p, k, at, f"{field}.boundingBox.{corner}"), at,
                    f"{field}.boundingBox.{corner}.{k}", -MAX_COORDINATE, MAX_COORDINATE,
                    _METRES)
    if "assetOffset" in d:
        off = _require(d, "assetOffset", at, field, dict)
        for k in "xy":
            if k in off:
                _number(off[k], at, f"{field}.assetOffset.{k}", -MAX_COORDINATE,
                        MAX_COORDINATE, _METRES)


def check_house(h: dict, source="<memory>", index: int | None = 0) -> None:
    """Raise HouseError for the first problem of a schema-1.0.0 house: a missing field or one
    of the wrong type (booleans and numeric strings are not numbers), a number that is not
    finite or outside the house limits (MAX_COORDINATE, MIN_HEIGHT, MAX_HEIGHT,
    MAX_ROTATION), floors spanning more than MAX_HOUSE_SIDE, overlapping rooms, a wall or
    object away from the floors (NEAR_HOUSE), a repeated id, a reference to a missing room,
    wall or asset, a hole outside its wall, an openness or colour outside [0, 1]."""
    at = _At(str(source), index)
    if not isinstance(h, dict):
        raise at.error("<root>", f"expected a JSON object, got {_kind(h)}",
                       "each house must be one JSON object")
    _check_containers(h, at)
    for key in ("rooms", "walls", "objects"):
        _require(h, key, at, "", list)
    _check_settings(h, at)
    room_ids, box = _check_rooms(h["rooms"], at)
    walls = _check_walls(h["walls"], room_ids, box, at)
    _check_holes(h, walls, room_ids, at)
    _check_objects(h["objects"], box, at)


def _check_settings(h: dict, at: _At) -> None:
    """``metadata.houseId`` and ``proceduralParameters.ceilingMaterial``."""
    hid = h.get("metadata", {}).get("houseId")
    if hid is not None and (isinstance(hid, bool) or not isinstance(hid, (str, int))):
        raise at.error("metadata.houseId", f"expected a string, got {_kind(hid)}",
                       "give the house a string id")
    _check_material(h.get("proceduralParameters", {}).get("ceilingMaterial"), at,
                    "proceduralParameters.ceilingMaterial")


def _check_rooms(rooms: list, at: _At) -> tuple[set, tuple[float, float, float, float]]:
    """The room ids and the box (xmin, zmin, xmax, zmax) around the floors."""
    if not rooms:
        raise at.error("rooms", "no rooms", "a house needs at least one room")
    ids, floors = set(), []
    for i, room in enumerate(rooms):
        f = f"rooms[{i}]"
        _unique_id(room, ids, at, f, "room")
        _require(room, "roomType", at, f, str)
        _check_material(room.get("floorMaterial"), at, f"{f}.floorMaterial")
        floors.append(_check_polygon(_require(room, "floorPolygon", at, f, list), at,
                                     f"{f}.floorPolygon"))
    box = _check_extent(floors, at)
    _check_overlaps(rooms, floors, at)
    return ids, box


def _check_extent(floors: list[shapely.Polygon], at: _At) -> tuple[float, float, float, float]:
    """The box around the floors, refused when a side is longer than MAX_HOUSE_SIDE."""
    bounds = shapely.bounds(floors)
    box = (float(bounds[:, 0].min()), float(bounds[:, 1].min()), float(bounds[:, 2].max()),
           float(bounds[:, 3].max()))
    dx, dz = box[2] - box[0], box[3] - box[1]
    if max(dx, dz) > MAX_HOUSE_SIDE:
        raise at.error("rooms", f"the floors span {dx:.1f} x {dz:.1f} m, more than the limit "
                       f"of {MAX_HOUSE_SIDE:g} m a side", "check the rooms' floor coordinates "
                       "(metres) or split the house")
    return box


def _check_overlaps(rooms: list, floors: list[shapely.Polygon], at: _At) -> None:
    """No two rooms share more than ROOM_OVERLAP of floor."""
    pairs = shapely.STRtree(floors).query(floors, predicate="intersects")
    for i, j in sorted(zip(*pairs.tolist())):
        if i < j and floors[i].intersection(floors[j]).area > ROOM_OVERLAP:
            raise at.error(f"rooms[{j}].floorPolygon",
                           f"overlaps room {show_value(rooms[i]['id'])}",
                           "rooms must not share floor: fix the outline or remove the "
                           "repeated room")


def _check_walls(walls: list, room_ids: set, box: tuple, at: _At) -> dict[str, dict]:
    """Wall id -> wall, each checked."""
    out, ids = {}, set()
    for i, wall in enumerate(walls):
        f = f"walls[{i}]"
        wid = _unique_id(wall, ids, at, f, "wall")
        _check_ref(wall, "roomId", room_ids | {"exterior"}, at, f, "room")
        _check_material(wall.get("material"), at, f"{f}.material")
        _check_wall_polygon(wall, box, at, f)
        out[wid] = wall
    return out


def _check_wall_polygon(wall: dict, box: tuple, at: _At, f: str) -> None:
    """A wall's corners: near the floors, over one base line, with length and height, not
    below the floor."""
    poly = _require(wall, "polygon", at, f, list)
    if len(poly) < 3:
        raise at.error(f"{f}.polygon", f"{len(poly)} vertices",
                       "a wall is a vertical quad of 4 vertices")
    for j, p in enumerate(poly):
        x, _, z = _xyz(p, at, f"{f}.polygon[{j}]")
        if _outside(x, z, box) > NEAR_HOUSE:
            raise at.error(f"{f}.polygon[{j}]", f"({x:g}, {z:g}) is {_outside(x, z, box):.1f} m "
                           f"outside the floors (the limit is {NEAR_HOUSE:g} m)",
                           "walls stand on the rooms' outlines; fix its coordinates")
    (x0, z0), (x1, z1), lo, hi = wall_geometry(wall)
    length = math.hypot(x1 - x0, z1 - z0)
    if length < 1e-3 or hi - lo < 1e-3:
        raise at.error(f"{f}.polygon", "wall is degenerate (no length or no height)",
                       "give the wall's four corners")
    for j, p in enumerate(poly):  # on the vertical plane over the base, not behind its start
        u = ((p["x"] - x0) * (x1 - x0) + (p["z"] - z0) * (z1 - z0)) / length
        off = abs((p["z"] - z0) * (x1 - x0) - (p["x"] - x0) * (z1 - z0)) / length
        if off > _TOL or u < -_TOL:
            raise at.error(f"{f}.polygon[{j}]", f"corner is {max(off, -u):.2f} m off the "
                           "wall's base line", "a wall is a vertical rectangle: give the "
                           "corners over its base")
    if hi <= 0:
        raise at.error(f"{f}.polygon", f"wall is wholly below the floor (its top is at y = "
                       f"{hi:g} m)", "walls stand on the floor at y = 0")


def _check_holes(h: dict, walls: dict, room_ids: set, at: _At) -> None:
    """Doors and windows: ids, assets, walls and rooms named, openness, hole geometry."""
    ids = set()
    exterior = any("exterior" in wid for wid in walls)
    for key in ("doors", "windows"):
        for i, d in enumerate(h.get(key, [])):
            f = f"{key}[{i}]"
            _unique_id(d, ids, at, f, "door or window")
            _check_asset(d, at, f)
            _check_hole_walls(d, walls, exterior, at, f)
            for side in ("room0", "room1"):
                _check_ref(d, side, room_ids, at, f, "room")
            if "openness" in d:
                _number(d["openness"], at, f"{f}.openness", 0.0, 1.0,
                        "openness is a fraction from 0 (closed) to 1 (open)")
            if "assetPosition" in d:
                _xyz(d["assetPosition"], at, f"{f}.assetPosition", _LOCAL)
            _check_hole_polygon(d, walls[d["wall0"]], at, f)


def _check_asset(d: dict, at: _At, f: str) -> None:
    """``assetId`` names an asset of procthor's database."""
    aid = _require(d, "assetId", at, f, str)
    if aid not in asset_database():
        raise at.error(f"{f}.assetId", f"unknown assetId {show_value(aid)}",
                       "use an asset from procthor's asset-database.json")


def _check_hole_walls(d: dict, walls: dict, exterior: bool, at: _At, f: str) -> None:
    """``wall0`` and ``wall1`` name walls; ``wall1`` may name a missing exterior wall only in
    a house without exterior walls (ProcTHOR's schema-0.0.1 houses)."""
    for side in ("wall0", "wall1"):
        wid = _require(d, side, at, f, str)
        unbuilt = side == "wall1" and "exterior" in wid and not exterior
        if wid not in walls and not unbuilt:
            raise at.error(f"{f}.{side}", f"wall {show_value(wid)} does not exist",
                           "name a wall id from 'walls'")


def _check_hole_polygon(d: dict, wall: dict, at: _At, f: str) -> None:
    """``holePolygon``: two wall-local corners (min, max) inside ``wall``."""
    hole = _require(d, "holePolygon", at, f, list)
    if len(hole) != 2:
        raise at.error(f"{f}.holePolygon", f"{len(hole)} points",
                       "give the two corners (min, max) in wall-local coordinates")
    (ax, ay, _), (bx, by, _) = (_xyz(p, at, f"{f}.holePolygon[{j}]", _LOCAL)
                                for j, p in enumerate(hole))
    (x0, z0), (x1, z1), lo, hi = wall_geometry(wall)
    length = math.hypot(x1 - x0, z1 - z0)
    if not (bx - ax > 1e-3 and by - ay > 1e-3):
        raise at.error(f"{f}.holePolygon", "hole is degenerate or its corners are not "
                       "(min, max)", "give the lower-left corner first")
    if ax < -_TOL or bx > length + _TOL or ay < lo - _TOL or by > hi + _TOL:
        raise at.error(f"{f}.holePolygon",
                       f"hole x[{ax:.2f}, {bx:.2f}] y[{ay:.2f}, {by:.2f}] is outside its wall "
                       f"(length {length:.2f}, height {hi - lo:.2f})",
                       "place the hole inside the wall")


def _check_objects(objects: list, box: tuple, at: _At) -> None:
    """Objects and their children, in file order: ids unique over all of them, known assets,
    positions near the floors, rotations in degrees."""
    ids = set()
    stack = [(f"objects[{i}]", o) for i, o in reversed(list(enumerate(objects)))]
    while stack:
        f, o = stack.pop()
        if not isinstance(o, dict):
            raise at.error(f, f"expected an object, got {_kind(o)}", "fix the object entry")
        _unique_id(o, ids, at, f, "object")
        _check_asset(o, at, f)
        x, _, z = _xyz(_require(o, "position", at, f), at, f"{f}.position")
        if _outside(x, z, box) > NEAR_HOUSE:
            raise at.error(f"{f}.position", f"({x:g}, {z:g}) is {_outside(x, z, box):.1f} m "
                           f"outside the floors (the limit is {NEAR_HOUSE:g} m)",
                           "place the object in the house")
        _xyz(_require(o, "rotation", at, f), at, f"{f}.rotation", _ANGLES,
             "rotations are degrees")
        children = o.get("children")
        if children is None:
            continue
        if not isinstance(children, list):
            raise at.error(f"{f}.children", f"expected a list, got {_kind(children)}",
                           "fix its type")
        stack.extend((f"{f}.children[{j}]", c) for j, c in reversed(list(enumerate(children))))
