"""A geometric stand-in for the Unity ``Controller`` that ``procthor``'s HouseGenerator drives.

``HouseGenerator.sample`` calls AI2-THOR for three things (procthor 0.0.1.dev2):

- ``SetRandomSeed``: ignored here (our only randomness is seeded per call, see below).
- Asset-group collision checks (``reset``, ``SpawnAsset``, ``GetInSceneAssetGeometry``): we
  return no geometry, which accepts every asset-group placement (chairs tucked under tables
  stay, as with real meshes; 80%-scaled boxes rejected most of them).
- Small objects (``CreateHouse``, ``SpawnAsset``, ``OpenObject``, ``InitialRandomSpawn``,
  ``DisableObject``, physics ``AdvancePhysicsStep``): ``InitialRandomSpawn`` puts the object
  on its receptacle's support surface, inside the receptacle's footprint, not overlapping
  what is already on it, at a yaw that is the receptacle's plus a multiple of 90 degrees.
  The physics "drop" of baseball bats returns each object to the pose it had before the drop
  (a no-op), so a dropped bat never floats at the drop height.

Every position we report is the centre of the object's bounding box, as AI2-THOR's
``axisAlignedBoundingBox.center`` (and the house's ``position``) is. Randomness comes only
from the ``randomSeed`` procthor passes to ``InitialRandomSpawn`` (a local
``np.random.Generator``), never from global state.

All stand-ins compare equal and hash alike: procthor caches asset-group info per
``(split, controller)`` with ``lru_cache``, and any stand-in gives the same answers.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from datagen.houses import procthor_imports
from sim.assets import asset_database

SPAWN_TRIES = 12
"""Random positions tried per InitialRandomSpawn before reporting failure."""

SURFACE_FRACTION_OVERRIDES = {"Chair": 0.47}
"""Support height as a fraction of the receptacle's height, where the value read from
procthor's ai2thor-object-metadata.json is unusable (iTHOR chairs report children at their
feet). 0.47 is what the same file gives for ArmChair seats."""

MIN_SURFACE_OBSERVATIONS = 20
"""Observations needed before a per-type surface fraction from the metadata file is used."""


class StandInError(RuntimeError):
    """procthor asked the stand-in for something it does not model."""


class Event:
    """The slice of ``ai2thor.server.Event`` procthor reads: truthiness and ``metadata``.

    ``metadata["objects"]`` is built on first access: most actions' events are never read.
    """

    def __init__(self, success: bool, action_return: Any, objects: Callable[[], list[dict]]):
        self.success = success
        self._action_return = action_return
        self._objects = objects
        self._metadata: dict | None = None

    @property
    def metadata(self) -> dict:
        if self._metadata is None:
            self._metadata = {"lastActionSuccess": self.success, "errorMessage": "",
                              "actionReturn": self._action_return, "objects": self._objects()}
        return self._metadata

    def __bool__(self) -> bool:
        return bool(self.success)


@dataclass
class _Body:
    """One object in the stand-in scene: a box with its centre, yaw and asset."""

    object_id: str
    asset_id: str
    center: dict
    rotation: dict
    enabled: bool = True

    def to_metadata(self, center: dict, rotation: dict) -> dict:
        """AI2-THOR's object metadata for this body at the given pose."""
        asset = asset_database()[self.asset_id]
        return {
            "objectId": self.object_id,
            "objectType": asset.object_type,
            "assetId": self.asset_id,
            "position": dict(center),
            "rotation": dict(rotation),
            "axisAlignedBoundingBox": {"center": dict(center)},
            "breakable": _is_breakable(self.asset_id),
        }


@lru_cache(maxsize=1)
def _procthor_asset_info() -> dict[str, dict]:
    procthor_imports.load()
    from procthor.databases import asset_id_database

    return asset_id_database


def _is_breakable(asset_id: str) -> bool:
    info = _procthor_asset_info().get(asset_id, {})
    return "Breakable" in (info.get("secondaryProperties") or [])


@lru_cache(maxsize=1)
def surface_fractions() -> dict[str, float]:
    """objectType -> height of its support surface as a fraction of its box height.

    Read off procthor's ``ai2thor-object-metadata.json`` (iTHOR scenes): for each object
    resting on a receptacle, (child bottom - receptacle bottom) / receptacle height; the
    per-type median, used when there are enough observations and it lies in [0.3, 1].
    Types without a usable value support objects on the top of their box (fraction 1).
    """
    path = resources.files("procthor") / "databases" / "ai2thor-object-metadata.json"
    scenes = [s for room in json.loads(path.read_text()).values() for s in room]
    fractions: dict[str, list[float]] = defaultdict(list)
    for objects in scenes:
        by_id = {o["objectId"]: o for o in objects}
        for child in objects:
            for parent_id in child.get("parentReceptacles") or []:
                parent = by_id.get(parent_id)
                if parent is not None:
                    frac = _rest_fraction(child, parent)
                    if frac is not None:
                        fractions[parent["objectType"]].append(frac)
    out = {}
    for object_type, values in fractions.items():
        median = statistics.median(values)
        if len(values) >= MIN_SURFACE_OBSERVATIONS and 0.3 <= median <= 1.0:
            out[object_type] = median
    out.update(SURFACE_FRACTION_OVERRIDES)
    return out


def _rest_fraction(child: dict, parent: dict) -> float | None:
    pb, cb = parent["axisAlignedBoundingBox"], child["axisAlignedBoundingBox"]
    height = pb["size"]["y"]
    if height <= 0:
        return None
    parent_bottom = pb["center"]["y"] - height / 2
    child_bottom = cb["center"]["y"] - cb["size"]["y"] / 2
    return (child_bottom - parent_bottom) / height


def _yaw_axes(yaw_deg: float) -> tuple[float, float]:
    rad = math.radians(yaw_deg)
    return math.cos(rad), math.sin(rad)


def local_to_world(center: dict, yaw_deg: float, u: float, v: float) -> tuple[float, float]:
    """World (x, z) of the point at (u, v) in the frame of a box centred at ``center`` and
    turned ``yaw_deg`` about +y (Unity: +90 maps local +x to world -z)."""
    c, s = _yaw_axes(yaw_deg)
    return center["x"] + u * c + v * s, center["z"] - u * s + v * c


def world_to_local(center: dict, yaw_deg: float, x: float, z: float) -> tuple[float, float]:
    """Inverse of :func:`local_to_world`."""
    c, s = _yaw_axes(yaw_deg)
    dx, dz = x - center["x"], z - center["z"]
    return dx * c - dz * s, dx * s + dz * c


def footprint_extent(size: tuple[float, float, float], rel_yaw_deg: float
                     ) -> tuple[float, float]:
    """(x, z) extent, in a frame turned ``rel_yaw_deg`` from the box, of the box's AABB."""
    c, s = (abs(v) for v in _yaw_axes(rel_yaw_deg))
    return size[0] * c + size[2] * s, size[0] * s + size[2] * c


class GeometricController:
    """Answers the ``Controller.step`` actions procthor's generator sends; see module doc."""

    def __init__(self) -> None:
        self._bodies: dict[str, _Body] = {}
        self._rest: dict[str, tuple[dict, dict]] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GeometricController)

    def __hash__(self) -> int:
        return hash(GeometricController)

    # ------------------------------------------------------------------ lifecycle

    def begin_house(self) -> None:
        """Forget everything about the previous house (call before each ``sample``)."""
        self._bodies.clear()
        self._rest.clear()

    def reset(self, *args: Any, **kwargs: Any) -> Event:
        self._bodies.clear()
        return self._event()

    def stop(self) -> None:
        """Nothing to stop; mirrors ``Controller.stop``."""

    def step(self, action: str | None = None, **kwargs: Any) -> Event:
        handler = _ACTIONS.get(action)
        if handler is None:
            raise StandInError(f"GeometricController: action {action!r} is not modelled; "
                               f"procthor 0.0.1.dev2 only sends {sorted(_ACTIONS)}")
        return handler(self, **kwargs)

    def _event(self, success: bool = True, action_return: Any = None) -> Event:
        # Snapshot now (poses are replaced, never mutated), turn into dicts only if read.
        state = [(b, b.center, b.rotation) for b in self._bodies.values() if b.enabled]
        return Event(success, action_return,
                     lambda: [b.to_metadata(center, rot) for b, center, rot in state])

    # ------------------------------------------------------------------ actions

    def _no_op(self, **kwargs: Any) -> Event:
        return self._event()

    def _create_house(self, house: dict, **kwargs: Any) -> Event:
        self._bodies.clear()
        stack = list(house.get("objects", []))
        while stack:
            obj = stack.pop(0)
            body = _Body(obj["id"], obj["assetId"], dict(obj["position"]),
                         dict(obj["rotation"]))
            self._bodies[body.object_id] = body
            # First pose seen in this house = its resting pose (for the physics no-op).
            self._rest.setdefault(body.object_id, (dict(body.center), dict(body.rotation)))
            stack.extend(obj.get("children", []))
        return self._event()

    def _spawn_asset(self, assetId: str, generatedId: str, position: dict,
                     rotation: dict | None = None, **kwargs: Any) -> Event:
        if assetId not in asset_database():
            return self._event(False)
        rot = dict(rotation) if rotation else {"x": 0, "y": 0, "z": 0}
        self._bodies[generatedId] = _Body(generatedId, assetId, dict(position), rot)
        return self._event()

    def _geometry(self, objectId: str, **kwargs: Any) -> Event:
        return self._event(action_return=[])  # no meshes: asset-group checks accept all

    def _disable(self, objectId: str, **kwargs: Any) -> Event:
        if objectId in self._bodies:
            self._bodies[objectId].enabled = False
        return self._event()

    def _advance_physics(self, **kwargs: Any) -> Event:
        for body in self._bodies.values():
            if body.object_id in self._rest:
                center, rotation = self._rest[body.object_id]
                body.center, body.rotation = dict(center), dict(rotation)
        return self._event()

    def _initial_random_spawn(self, randomSeed: int, objectIds: list[str],
                              receptacleObjectIds: list[str], **kwargs: Any) -> Event:
        rng = np.random.default_rng(randomSeed)
        ok = True
        for object_id in objectIds:
            ok &= self._place_on_receptacle(self._bodies[object_id], receptacleObjectIds, rng)
        return self._event(ok)

    # ------------------------------------------------------------------ placement

    def _receptacle_for(self, receptacle_ids: list[str]) -> _Body | None:
        """procthor passes every id that *starts with* the receptacle's id (so "3|1" also
        brings "3|10"); the receptacle is the shortest, of which all others extend."""
        ids = [i for i in receptacle_ids if i in self._bodies]
        return self._bodies[min(ids, key=len)] if ids else None

    def _place_on_receptacle(self, body: _Body, receptacle_ids: list[str],
                             rng: np.random.Generator) -> bool:
        recep = self._receptacle_for(receptacle_ids)
        if recep is None:
            return False
        r_size = asset_database()[recep.asset_id].size
        c_size = asset_database()[body.asset_id].size
        occupied = self._occupied(recep, exclude=body.object_id)
        for _ in range(SPAWN_TRIES):
            quarter = int(rng.integers(4))
            ex, ez = footprint_extent(c_size, 90.0 * quarter)
            room_x, room_z = r_size[0] - ex, r_size[2] - ez
            if room_x < 0 or room_z < 0:
                continue
            u = (rng.random() - 0.5) * room_x
            v = (rng.random() - 0.5) * room_z
            rect = (u - ex / 2, v - ez / 2, u + ex / 2, v + ez / 2)
            if any(_overlap(rect, o) for o in occupied):
                continue
            self._put(body, recep, c_size, u, v, quarter)
            return True
        return False

    def _put(self, body: _Body, recep: _Body, c_size: tuple[float, float, float], u: float,
             v: float, quarter: int) -> None:
        yaw = recep.rotation.get("y", 0.0)
        x, z = local_to_world(recep.center, yaw, u, v)
        body.center = {"x": x, "y": _surface_y(recep) + c_size[1] / 2, "z": z}
        body.rotation = {"x": 0, "y": (yaw + 90.0 * quarter) % 360.0, "z": 0}
        self._rest[body.object_id] = (dict(body.center), dict(body.rotation))

    def _occupied(self, recep: _Body, exclude: str) -> list[tuple[float, float, float, float]]:
        """Receptacle-frame footprints of enabled objects standing on the receptacle."""
        yaw = recep.rotation.get("y", 0.0)
        r_size = asset_database()[recep.asset_id].size
        surface = _surface_y(recep)
        out = []
        for other in self._bodies.values():
            if other.object_id in (exclude, recep.object_id) or not other.enabled:
                continue
            u, v = world_to_local(recep.center, yaw, other.center["x"], other.center["z"])
            size = asset_database()[other.asset_id].size
            ex, ez = footprint_extent(size, other.rotation.get("y", 0.0) - yaw)
            inside = abs(u) < r_size[0] / 2 and abs(v) < r_size[2] / 2
            if inside and other.center["y"] - size[1] / 2 > surface - 0.02:
                out.append((u - ex / 2, v - ez / 2, u + ex / 2, v + ez / 2))
        return out


def _surface_y(recep: _Body) -> float:
    """World height of the surface objects rest on, for a receptacle body."""
    asset = asset_database()[recep.asset_id]
    bottom = recep.center["y"] - asset.size[1] / 2
    return bottom + surface_fractions().get(asset.object_type, 1.0) * asset.size[1]


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


_ACTIONS = {
    "SetRandomSeed": GeometricController._no_op,
    "ResetObjectFilter": GeometricController._no_op,
    "SetObjectFilter": GeometricController._no_op,
    "OpenObject": GeometricController._no_op,
    "CreateHouse": GeometricController._create_house,
    "SpawnAsset": GeometricController._spawn_asset,
    "GetInSceneAssetGeometry": GeometricController._geometry,
    "InitialRandomSpawn": GeometricController._initial_random_spawn,
    "DisableObject": GeometricController._disable,
    "AdvancePhysicsStep": GeometricController._advance_physics,
}
