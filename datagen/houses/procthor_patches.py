"""Fixes applied to the installed ``procthor`` (0.0.1.dev2) at run time, never on disk.

Importing this module changes nothing; :func:`apply` (idempotent) installs:

Determinism (procthor is not reproducible for a seed out of the box):

1. ``floorplan_generation.expand_rooms`` iterates ``set(rooms)`` of attrs objects hashed by
   address, so the room grown next depends on memory layout. Replaced by the same algorithm
   over a list in the room-spec's order.
2. ``materials.randomize_wall_materials`` draws one wall material per room while iterating a
   set of room-id *strings*, whose order depends on ``PYTHONHASHSEED``. Replaced by the same
   algorithm iterating the room ids sorted.
3. ``databases.get_spawnable_asset_group_info`` (lru_cached) samples asset-group dimensions
   with the global RNG on first use, so a house depends on what the process generated
   before. :func:`warm_asset_group_cache` fills the cache under a fixed seed and restores the
   global RNG state; generation calls it before seeding each house.

Speed and dependencies:

4. ``OrthogonalPolygon._join_neighboring_rectangles`` -> :mod:`datagen.houses.fast_rectangles`
   (output-identical; toggled with :func:`use_fast_rectangles` so benchmarks can compare).
5. ``asset_groups.CollisionManager`` -> :class:`EmptyCollisionManager`. Our stand-in returns
   no geometry, so trimesh's manager would hold no meshes and report no collision; building
   it needs ``python-fcl``, which procthor does not declare. The empty manager gives that same
   answer and fails loudly if a mesh is ever added.

Crash:

6. ``wall_objects.add_televisions`` returns two values instead of three when a split has no
   wall-mountable television (the case for ``val``), so every val house crashed. Wrapped to
   return the empty ``tvs_per_room`` it would have built.

Hang:

7. ``doors.select_openings`` loops forever when a room of a connection group borders no
   other room of its group (procthor only logs "Might be unable to walk between rooms!"):
   the room is never removed from the rooms still to connect. :func:`_select_openings_checked`
   makes that case raise :class:`DisconnectedRoomGroupError` before the loop (no random draw
   is taken first, so every house that generated before is unchanged), and the generator
   moves on to the next attempt.
"""

from __future__ import annotations

import random
from collections import defaultdict
from contextlib import contextmanager
from typing import Any

import numpy as np

from datagen.houses import procthor_imports
from datagen.houses.fast_rectangles import patched_method

ASSET_GROUP_WARMUP_SEED = 0
"""Global seed under which asset-group dimensions are sampled (fix 3)."""

_state: dict[str, Any] = {"applied": False, "original_join": None,
                         "original_add_televisions": None, "original_select_openings": None}


class DisconnectedRoomGroupError(Exception):
    """A room of a procthor connection group borders no other room of its group (fix 7)."""


class EmptyCollisionManager:
    """What ``trimesh.collision.CollisionManager`` is when no mesh is ever added (fix 5)."""

    def add_object(self, name: str, mesh: Any, **kwargs: Any) -> None:
        raise RuntimeError(
            "EmptyCollisionManager got a mesh: the controller returned asset geometry, which "
            "needs trimesh's real CollisionManager (pip install python-fcl) instead of "
            "datagen.houses.procthor_patches.EmptyCollisionManager"
        )

    def in_collision_internal(self, return_names: bool = False, **kwargs: Any):
        return (False, set()) if return_names else False


def _expand_rooms_ordered(rooms, floorplan: np.ndarray) -> None:
    """``floorplan_generation.expand_rooms`` with a list instead of ``set(rooms)`` (fix 1).

    Body otherwise identical to procthor 0.0.1.dev2: grow rectangles, then L-shapes, picking
    rooms with ``select_room`` until none can grow.
    """
    from procthor.generation import floorplan_generation as fg

    fg.sample_initial_room_positions(rooms, floorplan)
    for grow in (fg.grow_rect, fg.grow_l_shape):
        rooms_to_grow = list(rooms)
        while rooms_to_grow:
            room = fg.select_room(rooms_to_grow)
            if not grow(room, floorplan):
                rooms_to_grow.remove(room)


def _randomize_wall_materials_sorted(partial_house) -> None:
    """``materials.randomize_wall_materials`` iterating room ids sorted (fix 2).

    Body otherwise identical to procthor 0.0.1.dev2.
    """
    from procthor.generation import materials as m

    if random.random() < m.P_ALL_WALLS_SAME:
        wall_params = m.sample_wall_params()
        for wall in partial_house.walls:
            for k, v in wall_params.items():
                wall[k] = v
        _set_ceiling(partial_house, wall_params)
        return

    room_ids = sorted({wall["roomId"] for wall in partial_house.walls} | {"ceiling"})
    wall_params_per_room = {room_id: m.sample_wall_params() for room_id in room_ids}
    for wall in partial_house.walls:
        for k, v in wall_params_per_room[wall["roomId"]].items():
            wall[k] = v
    _set_ceiling(partial_house, wall_params_per_room["ceiling"])


def _set_ceiling(partial_house, wall_params: dict) -> None:
    partial_house.procedural_parameters["ceilingMaterial"] = wall_params["material"]
    if "color" in wall_params:
        partial_house.procedural_parameters["ceilingColor"] = wall_params["color"]


@contextmanager
def preserved_global_rng():
    """Restore Python's and numpy's global RNG states on exit."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def warm_asset_group_cache(split: str, controller) -> None:
    """Fill procthor's asset-group cache for (split, controller) reproducibly (fix 3)."""
    procthor_imports.load()
    from procthor.databases import get_spawnable_asset_group_info

    with preserved_global_rng():
        random.seed(ASSET_GROUP_WARMUP_SEED)
        np.random.seed(ASSET_GROUP_WARMUP_SEED)
        get_spawnable_asset_group_info(split=split, controller=controller)


def use_fast_rectangles(enabled: bool) -> None:
    """Switch procthor's rectangle join between ours (True) and the package's (False)."""
    apply()
    from procthor.generation.objects import OrthogonalPolygon

    original = _state["original_join"]
    OrthogonalPolygon._join_neighboring_rectangles = patched_method if enabled else original


def _add_televisions_fixed(*args: Any, **kwargs: Any):
    """``wall_objects.add_televisions`` always returning (tvs_per_room, lines, heights)."""
    out = _state["original_add_televisions"](*args, **kwargs)
    if len(out) == 2:  # early return: no television assets for this split
        return (defaultdict(int), *out)
    return out


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _select_openings_checked(neighboring_rooms, room_spec_neighbors, room_spec):
    """``doors.select_openings``, raising instead of looping forever (fix 7).

    The package's loop removes a room from the rooms still to connect only through a door to
    another room of its group, so it ends iff every room borders at least one of them.
    """
    for group in room_spec_neighbors:
        if len(group) == 1:
            continue
        for i, rooms in enumerate(group):
            if not any(_pair(a, b) in neighboring_rooms
                       for j, others in enumerate(group) if j != i
                       for a in rooms for b in others):
                raise DisconnectedRoomGroupError(
                    f"rooms {sorted(rooms)} border no other room of their group")
    return _state["original_select_openings"](neighboring_rooms, room_spec_neighbors, room_spec)


def original_join_neighboring_rectangles():
    """The package's own ``OrthogonalPolygon._join_neighboring_rectangles`` (unpatched)."""
    procthor_imports.load()
    from procthor.generation.objects import OrthogonalPolygon

    return _state["original_join"] or OrthogonalPolygon._join_neighboring_rectangles


def apply() -> None:
    """Install every fix above (idempotent). The fast rectangle join is on by default."""
    if _state["applied"]:
        return
    procthor_imports.load()
    from procthor.generation import (
        asset_groups,
        doors,
        floorplan_generation,
        materials,
        wall_objects,
    )
    from procthor.generation.objects import OrthogonalPolygon

    _state["original_add_televisions"] = wall_objects.add_televisions
    wall_objects.add_televisions = _add_televisions_fixed
    _state["original_select_openings"] = doors.select_openings
    doors.select_openings = _select_openings_checked  # add_doors looks it up in the module
    floorplan_generation.expand_rooms = _expand_rooms_ordered
    # generate_floorplan calls expand_rooms via recursively_expand_rooms in the same module,
    # so rebinding the module attribute is enough.
    materials.randomize_wall_materials = _randomize_wall_materials_sorted
    asset_groups.CollisionManager = EmptyCollisionManager
    _state["original_join"] = OrthogonalPolygon._join_neighboring_rectangles
    OrthogonalPolygon._join_neighboring_rectangles = patched_method
    _state["applied"] = True
