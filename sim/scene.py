"""A house (schema-1.0.0 dict) turned into flat geometry arrays for rendering and collision.

Coordinates are AI2-THOR's: x and z horizontal, y up, metres. A heading (yaw) of 0 degrees
faces +z and 90 degrees faces +x (Unity's left-handed frame, so ``rotate_right`` adds yaw).

- Walls become vertical *pieces*: rectangles over a base segment ``a -> b`` between heights
  ``y0`` and ``y1`` (``"empty": true`` walls, open-plan boundaries, become nothing). Door
  and window holes are cut out, leaving the wall beside, below and above (a doorway keeps
  its lintel). Each piece faces into its own room (``normal``); a renderer shows only faces
  seen from the front, so the two coincident sides of an interior wall never fight.
- A closed door (openness 0, not a bare door frame) fills its hole with a door panel; a window
  fills its hole with a glass panel. Panels render but are not see-through.
- Objects (children included) become oriented boxes sized from the asset database.
  Instance id ``k >= 1`` is ``boxes`` row ``k - 1``; id 0 is structure (walls, floor, ceiling).
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from sim.assets import asset_database, object_types
from sim.house_check import wall_geometry

# Piece kinds.
WALL, DOOR_PANEL, WINDOW = 0, 1, 2

STRUCTURE_ID = 0


def stable_hash(text: str) -> int:
    """A hash of a string that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def type_color(object_type: str) -> tuple[int, int, int]:
    """The base colour of an object type: hues spread by the golden ratio over the sorted
    type list, in three saturation/value bands, so that types are told apart by colour."""
    types = object_types()
    k = types.index(object_type) if object_type in types else stable_hash(object_type) % 997
    band = k % 3
    return _rgb(k * 0.618033988749895, (0.85, 0.6, 0.95)[band], (0.9, 0.75, 0.55)[band])


def chromaticity(rgb, dtype=np.float64) -> np.ndarray:
    """(..., 3) RGB -> (..., 3) r, g and b over their sum (0 for black), in ``dtype``: the
    renderer's lighting scales a colour, which leaves this alone, so it names the type's
    palette colour (:func:`type_color`) wherever the type is lit."""
    rgb = np.asarray(rgb, dtype=dtype)
    return rgb / np.maximum(rgb.sum(-1, keepdims=True), 1)


def type_pattern(object_type: str) -> int:
    """A cheap texture code per type: 0 plain, 1 horizontal stripes, 2 vertical stripes,
    3 checker. Together with the base colour it separates neighbouring hues."""
    types = object_types()
    k = types.index(object_type) if object_type in types else stable_hash(object_type)
    return (k // 3) % 4


def asset_color(object_type: str, asset_id: str) -> tuple[int, int, int]:
    """The type's base colour with a small stable per-asset variation (about +-6%)."""
    base = np.array(type_color(object_type), dtype=np.float64)
    h = stable_hash(asset_id)
    jitter = np.array([(h >> k) & 0xFF for k in (0, 8, 16)]) / 255.0 - 0.5
    return tuple(int(c) for c in np.clip(base * (1.0 + 0.12 * jitter), 0, 255).round())


def material_color(material: dict | str | None, fallback: str) -> tuple[int, int, int]:
    """A wall/floor/ceiling colour: the JSON's ``color`` where given, else a fixed muted
    palette colour chosen by the material name."""
    if isinstance(material, dict) and isinstance(material.get("color"), dict):
        c = material["color"]
        return tuple(int(round(255 * float(c.get(k, 0.5)))) for k in "rgb")
    name = material.get("name", fallback) if isinstance(material, dict) else (material or
                                                                               fallback)
    h = stable_hash(str(name))
    return _rgb((h % 360) / 360.0, 0.15 + 0.2 * ((h >> 9) % 3) / 2, 0.55 + 0.35 * ((h >> 12) % 4)
                / 3)


@dataclass
class Room:
    id: str
    room_type: str
    polygon: np.ndarray  # (K, 2) float64 floor outline in (x, z)
    floor_color: tuple[int, int, int]


@dataclass
class Pieces:
    """Vertical wall rectangles, one row each."""

    a: np.ndarray  # (N, 2) base segment start (x, z)
    b: np.ndarray  # (N, 2) base segment end (x, z)
    y0: np.ndarray  # (N,) bottom height
    y1: np.ndarray  # (N,) top height
    normal: np.ndarray  # (N, 2) unit normal facing into the piece's room
    color: np.ndarray  # (N, 3) uint8
    kind: np.ndarray  # (N,) int8: WALL, DOOR_PANEL or WINDOW

    def __len__(self) -> int:
        return len(self.y0)


@dataclass
class Boxes:
    """Objects as oriented boxes, one row each; instance id = row + 1."""

    center: np.ndarray  # (M, 3) bounding-box centre (x, y, z)
    half: np.ndarray  # (M, 3) half extents in the object frame
    yaw: np.ndarray  # (M,) radians, rotation about +y (0 faces +z)
    color: np.ndarray  # (M, 3) uint8
    pattern: np.ndarray  # (M,) int8 texture code, see type_pattern
    object_id: list[str] = field(default_factory=list)
    object_type: list[str] = field(default_factory=list)
    asset_id: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.yaw)

    def footprints(self) -> np.ndarray:
        """(M, 4, 2) corners of each box's footprint in (x, z), counter-clockwise."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        ax_x = np.stack([c, -s], axis=1)  # object +x in world (x, z)
        ax_z = np.stack([s, c], axis=1)  # object +z in world (x, z)
        hx, hz = self.half[:, 0:1], self.half[:, 2:3]
        ctr = self.center[:, [0, 2]]
        signs = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        return np.stack([ctr + sx * hx * ax_x + sz * hz * ax_z for sx, sz in signs], axis=1)

    def distance_xz(self, x: float, z: float) -> np.ndarray:
        """Horizontal distance from (x, z) to each box's footprint (0 inside it): (M,) for a
        point, (C, M) for points given as (C, 1) arrays."""
        dx, dz = x - self.center[:, 0], z - self.center[:, 2]
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        lx, lz = dx * c - dz * s, dx * s + dz * c  # the point in each box's own frame
        ex = np.maximum(np.abs(lx) - self.half[:, 0], 0.0)
        ez = np.maximum(np.abs(lz) - self.half[:, 2], 0.0)
        return np.hypot(ex, ez)


@dataclass
class Scene:
    house_id: str
    rooms: list[Room]
    pieces: Pieces
    boxes: Boxes
    ceiling_height: float
    ceiling_color: tuple[int, int, int]
    bounds: tuple[float, float, float, float]  # xmin, zmin, xmax, zmax of all floors

    def room_at(self, x: float, z: float) -> Room | None:
        """The room whose floor contains (x, z), or None."""
        for room in self.rooms:
            if point_in_polygon(x, z, room.polygon):
                return room
        return None


def point_in_polygon(x: float, z: float, poly: np.ndarray) -> bool:
    """Even-odd test of one point against a (K, 2) polygon."""
    inside = False
    n = len(poly)
    for i in range(n):
        x0, z0 = poly[i]
        x1, z1 = poly[(i + 1) % n]
        if (z0 > z) != (z1 > z) and x < x0 + (z - z0) * (x1 - x0) / (z1 - z0):
            inside = not inside
    return inside


def _wall_frame(wall: dict) -> tuple[np.ndarray, np.ndarray, float, float]:
    (x0, z0), (x1, z1), lo, hi = wall_geometry(wall)
    return np.array([x0, z0]), np.array([x1, z1]), lo, hi


def _hole_is_open(hole: dict, kind: str) -> bool:
    if kind == "windows":
        return False
    return hole.get("openness", 1) > 0 or hole["assetId"].startswith("Doorframe")


def _cut_wall(length: float, lo: float, hi: float, holes: list[tuple[float, float, float,
                                                                          float]]):
    """Solid rectangles (u0, u1, y0, y1) of a wall [0, length] x [lo, hi] minus the holes."""
    cuts = sorted({0.0, length, *(min(max(u, 0.0), length) for h in holes for u in h[:2])})
    out = []
    for u0, u1 in zip(cuts, cuts[1:]):
        if u1 - u0 < 1e-6:
            continue
        mid = (u0 + u1) / 2
        spans = sorted((h[2], h[3]) for h in holes if h[0] <= mid <= h[1])
        y = lo
        for y0, y1 in spans:
            if y0 > y + 1e-6:
                out.append((u0, u1, y, min(y0, hi)))
            y = max(y, y1)
        if hi > y + 1e-6:
            out.append((u0, u1, y, hi))
    return out


def room_polygons(house: dict) -> dict[str, np.ndarray]:
    """Room id -> (K, 2) float64 floor outline in (x, z) of each room of a house."""
    return {r["id"]: np.array([(p["x"], p["z"]) for p in r["floorPolygon"]], dtype=np.float64)
            for r in house["rooms"]}


def _inward_normal(a: np.ndarray, b: np.ndarray, room_poly: np.ndarray | None) -> np.ndarray:
    d = (b - a) / np.linalg.norm(b - a)
    n = np.array([-d[1], d[0]])
    mid = (a + b) / 2
    if room_poly is not None and not point_in_polygon(*(mid + 0.05 * n), room_poly) and \
            point_in_polygon(*(mid - 0.05 * n), room_poly):
        n = -n
    return n


def _holes_on_walls(house: dict, walls: dict[str, dict]) -> dict[str, list[tuple]]:
    """Wall id -> hole rectangles (u0, u1, y0, y1) in that wall's own frame.

    ``holePolygon`` is given in ``wall0``'s frame (x along the wall from its first vertex);
    ``wall1`` usually runs the other way, so the hole is carried over through world space.
    """
    out: dict[str, list[tuple]] = {}
    for kind in ("doors", "windows"):
        for hole in house.get(kind, []):
            lo_pt, hi_pt = hole["holePolygon"]
            a0, b0, _, _ = _wall_frame(walls[hole["wall0"]])
            d0 = (b0 - a0) / np.linalg.norm(b0 - a0)
            ends = (a0 + lo_pt["x"] * d0, a0 + hi_pt["x"] * d0)  # world (x, z)
            for side in ("wall0", "wall1"):
                wall = walls.get(hole[side])
                if wall is None:
                    continue
                a, b, _, _ = _wall_frame(wall)
                d = (b - a) / np.linalg.norm(b - a)
                u0, u1 = sorted(float(np.dot(e - a, d)) for e in ends)
                out.setdefault(hole[side], []).append((u0, u1, lo_pt["y"], hi_pt["y"]))
    return out


def build_pieces(house: dict, polys: dict[str, np.ndarray]) -> Pieces:
    walls = {w["id"]: w for w in house["walls"]}
    holes_by_wall = _holes_on_walls(house, walls)
    panels: list[tuple[str, tuple, int]] = []
    for kind in ("doors", "windows"):
        for hole in house.get(kind, []):
            if not _hole_is_open(hole, kind):
                lo_pt, hi_pt = hole["holePolygon"]
                rect = (lo_pt["x"], hi_pt["x"], lo_pt["y"], hi_pt["y"])
                panels.append((hole["wall0"], rect, WINDOW if kind == "windows" else DOOR_PANEL))
    rows = []
    centre = np.mean(np.concatenate(list(polys.values())), axis=0)
    for wall in house["walls"]:
        if wall.get("empty"):
            continue  # an open-plan boundary: ProcTHOR keeps the record but builds no wall
        a, b, lo, hi = _wall_frame(wall)
        length = float(np.linalg.norm(b - a))
        d = (b - a) / length
        poly = polys.get(wall.get("roomId"))
        n = _inward_normal(a, b, poly)
        if poly is None or "exterior" in wall["id"]:
            n = n if np.dot((a + b) / 2 - centre, n) > 0 else -n  # outer face looks out
        color = material_color(wall.get("material"), "wall")
        for u0, u1, y0, y1 in _cut_wall(length, lo, hi, holes_by_wall.get(wall["id"], [])):
            rows.append((a + u0 * d, a + u1 * d, y0, y1, n, color, WALL))
        if poly is not None and "exterior" not in wall["id"]:
            for wid, (u0, u1, y0, y1), kind in panels:
                if wid == wall["id"]:
                    pc = (205, 225, 240) if kind == WINDOW else (120, 84, 52)
                    for sign in (1, -1):  # a panel is seen from both rooms
                        rows.append((a + u0 * d, a + u1 * d, y0, y1, sign * n, pc, kind))
    if not rows:
        z2 = np.zeros((0, 2))
        return Pieces(z2, z2, np.zeros(0), np.zeros(0), z2, np.zeros((0, 3), np.uint8),
                      np.zeros(0, np.int8))
    a, b, y0, y1, n, color, kind = zip(*rows)
    return Pieces(np.array(a), np.array(b), np.array(y0, dtype=np.float64),
                  np.array(y1, dtype=np.float64), np.array(n), np.array(color, dtype=np.uint8),
                  np.array(kind, dtype=np.int8))


def _flatten_objects(objects: list[dict]) -> list[dict]:
    out, stack = [], list(reversed(objects))
    while stack:
        o = stack.pop()
        out.append(o)
        stack.extend(reversed(o.get("children", []) or []))
    return out


def build_boxes(house: dict) -> Boxes:
    db = asset_database()
    objs = _flatten_objects(house["objects"])
    center, half, yaw, color, pattern = [], [], [], [], []
    ids, types, assets = [], [], []
    for o in objs:
        info = db[o["assetId"]]
        p = o["position"]
        center.append((p["x"], p["y"], p["z"]))
        half.append(tuple(s / 2 for s in info.size))
        yaw.append(math.radians(float(o["rotation"]["y"])))
        color.append(asset_color(info.object_type, info.asset_id))
        pattern.append(type_pattern(info.object_type))
        ids.append(o["id"])
        types.append(info.object_type)
        assets.append(info.asset_id)
    return Boxes(np.array(center, dtype=np.float64).reshape(-1, 3),
                 np.array(half, dtype=np.float64).reshape(-1, 3),
                 np.array(yaw, dtype=np.float64), np.array(color, dtype=np.uint8).reshape(-1, 3),
                 np.array(pattern, dtype=np.int8), ids, types, assets)


def build_scene(house: dict, house_id: str | None = None) -> Scene:
    """Flat geometry of a schema-1.0.0 house (see :mod:`sim.house`)."""
    polys = room_polygons(house)
    rooms = [Room(r["id"], r["roomType"], polys[r["id"]],
                  material_color(r.get("floorMaterial"), r["roomType"] + "-floor"))
             for r in house["rooms"]]
    pieces = build_pieces(house, polys)
    allpts = np.concatenate([r.polygon for r in rooms])
    params = house.get("proceduralParameters", {})
    ceiling = float(pieces.y1[pieces.kind == WALL].max()) if len(pieces) else 2.5
    hid = house_id or str(house.get("metadata", {}).get("houseId", "house"))
    return Scene(
        house_id=hid,
        rooms=rooms,
        pieces=pieces,
        boxes=build_boxes(house),
        ceiling_height=ceiling,
        ceiling_color=material_color(params.get("ceilingMaterial"), "ceiling"),
        bounds=(float(allpts[:, 0].min()), float(allpts[:, 1].min()),
                float(allpts[:, 0].max()), float(allpts[:, 1].max())),
    )
