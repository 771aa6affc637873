"""What a house offers a navigating agent: reachable space, connectivity, targets.

``house_report`` is what ``spoc-houses validate`` prints (one JSON line per house) and what
the generator uses to reject houses whose rooms are not all reachable.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from datagen.constants import OBJECTNAV_TARGETS
from sim.lattice import AgentConfig, Lattice
from sim.scene import build_scene

MIN_ROOM_CELLS = 5
"""Reachable cells a room needs to count as reachable (ProcTHOR's House.validate uses 5)."""
DISTANCE_BLOCK = 1 << 20
"""Cell-box distances computed at once: memory stays bounded on the largest lattices."""


def house_report(house: dict, agent: AgentConfig | None = None, house_id: str | None = None,
                 target_distance: float = 1.0) -> dict:
    """Facts about a schema-1.0.0 house for the lattice agent.

    Returns a dict with ``rooms``, ``reachable_cells``, ``connected`` (every room has at least
    MIN_ROOM_CELLS cells in the largest connected component), ``unreachable_rooms``,
    ``object_types`` (type -> count, children included) and ``objectnav_targets_reachable``:
    the ObjectNav target types with an instance whose footprint lies within
    ``target_distance`` of a reachable cell (a geometric test; the episode generator applies
    the full visibility test).
    """
    scene = build_scene(house, house_id)
    lattice = Lattice(scene, agent or AgentConfig())
    reach = lattice.reachable
    per_room = [int(((lattice.room_index == k) & reach).sum()) for k in range(len(scene.rooms))]
    unreachable = [f"{r.id} ({r.room_type})" for r, n in zip(scene.rooms, per_room)
                   if n < MIN_ROOM_CELLS]
    return {
        "id": scene.house_id,
        "rooms": len(scene.rooms),
        "room_types": sorted(Counter(r.room_type for r in scene.rooms).items()),
        "reachable_cells": int(reach.sum()),
        "free_cells": int(lattice.free.sum()),
        "connected": not unreachable,
        "unreachable_rooms": unreachable,
        "object_types": dict(sorted(Counter(scene.boxes.object_type).items())),
        "objectnav_targets_reachable": reachable_target_types(scene, lattice, target_distance),
    }


def reachable_target_types(scene, lattice: Lattice, distance: float,
                           targets=OBJECTNAV_TARGETS) -> list[str]:
    """Target types with an instance within ``distance`` of some reachable cell."""
    cells = np.argwhere(lattice.reachable)
    b = scene.boxes
    rows = [k for k, t in enumerate(b.object_type) if t in targets]
    if len(cells) == 0 or not rows:
        return []
    xs = lattice.x0 + cells[:, 0] * lattice.agent.grid
    zs = lattice.z0 + cells[:, 1] * lattice.agent.grid
    near = np.full(len(rows), np.inf)
    step = max(1, DISTANCE_BLOCK // len(b))  # cells per block of the (cells, boxes) table
    for s in range(0, len(cells), step):
        block = b.distance_xz(xs[s:s + step, None], zs[s:s + step, None])[:, rows]
        near = np.minimum(near, block.min(axis=0))  # (K,) over cells
    found = {b.object_type[k] for k, d in zip(rows, near) if d <= distance}
    return [t for t in targets if t in found]
