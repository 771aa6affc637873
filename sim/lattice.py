"""The agent's lattice: free space, motion and collision on a square grid.

A state is ``(i, j, h)``: grid cell ``(i, j)`` at world ``(x0 + i * grid, z0 + j * grid)`` and
heading ``h`` of ``headings`` equal steps (yaw ``h * 360 / headings`` degrees; 0 faces +z,
90 faces +x). The agent is a disc of ``radius`` metres. A cell is free when its centre is on a
floor and the disc touches no obstacle: wall pieces and object boxes whose height range meets
the agent's ``[floor_clearance, height]``. Door holes from the floor up are open; a closed
door's panel is not.

``move_ahead`` goes to the neighbouring cell in the heading's direction (diagonal for odd
headings when ``headings == 8``); it succeeds only if every point of the straight segment
between the two centres (sampled every ``grid / 8`` at most) is free. A blocked move leaves the
agent where it was. The env and the oracle both read these tables, so they always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from common.errors import InputError
from sim.house_check import HouseError
from sim.scene import Scene

ACTIONS = ("move_ahead", "rotate_left", "rotate_right", "end")
MOVE_AHEAD, ROTATE_LEFT, ROTATE_RIGHT, END = range(4)

MAX_LATTICE_CELLS = 1_000_000
"""The most cells a lattice may have: about (house side / grid step) squared. A 100 m house
(``sim.house_check.MAX_HOUSE_SIDE``) at the default 0.25 m grid has 160,000; an open floor of
1,000,000 takes about 250 MB and 8 s for ``spoc-houses validate``. A finer grid is refused
before anything is allocated."""


@dataclass(frozen=True)
class AgentConfig:
    """The lattice agent."""

    grid: float = 0.25
    """Grid step in metres."""
    headings: int = 4
    """Number of headings (4 or 8)."""
    radius: float = 0.2
    """Agent disc radius in metres."""
    height: float = 1.8
    """Objects and wall pieces starting below this height block the agent."""
    floor_clearance: float = 0.05
    """Objects ending below this height (rugs) do not block the agent."""

    def __post_init__(self):
        if self.headings not in (4, 8):
            raise InputError(f"agent.headings: {self.headings} is not supported; use 4 or 8")
        if not (0 < self.grid <= 2 and 0 <= self.radius < 2):
            raise InputError(f"agent.grid/radius: {self.grid}/{self.radius} out of range; "
                             "use 0 < grid <= 2 and 0 <= radius < 2 metres")


def heading_step(h: int, headings: int) -> tuple[int, int]:
    """The (di, dj) cell step of ``move_ahead`` at heading ``h``."""
    yaw = math.radians(h * 360.0 / headings)
    return int(round(math.sin(yaw))), int(round(math.cos(yaw)))


def check_lattice_size(scene: Scene, agent: AgentConfig) -> None:
    """HouseError (naming the house id) when the lattice of ``scene`` at the agent's grid
    would have more than MAX_LATTICE_CELLS cells, with the finest grid that fits."""
    xmin, zmin, xmax, zmax = scene.bounds
    dx, dz, g = xmax - xmin, zmax - zmin, agent.grid
    cells = (dx / g + 2) * (dz / g + 2)  # a float: no overflow for any grid > 0
    if cells > MAX_LATTICE_CELLS:
        finest = math.ceil(max(dx, dz) / (math.sqrt(MAX_LATTICE_CELLS) - 2) * 1000) / 1000
        raise HouseError(scene.house_id, None, "grid", f"a {g:g} m grid over {dx:.1f} x "
                         f"{dz:.1f} m of floor makes {cells:,.0f} lattice cells, more than the "
                         f"limit of {MAX_LATTICE_CELLS:,}", f"use a grid of at least "
                         f"{finest:g} m")


def obstacle_geometry(scene: Scene, agent: AgentConfig):
    """The union of every obstacle's footprint (walls as segments, boxes as polygons)."""
    parts = []
    p = scene.pieces
    for k in np.flatnonzero((p.y0 < agent.height) & (p.y1 > agent.floor_clearance)):
        parts.append(shapely.LineString([p.a[k], p.b[k]]))
    b = scene.boxes
    bottom, top = b.center[:, 1] - b.half[:, 1], b.center[:, 1] + b.half[:, 1]
    feet = b.footprints()
    for k in np.flatnonzero((bottom < agent.height) & (top > agent.floor_clearance)):
        parts.append(shapely.Polygon(feet[k]))
    return shapely.union_all(parts) if parts else shapely.Polygon()


class Lattice:
    """Free cells, allowed moves and rooms of one scene for one agent."""

    def __init__(self, scene: Scene, agent: AgentConfig = AgentConfig()):
        check_lattice_size(scene, agent)
        self.scene, self.agent = scene, agent
        g = agent.grid
        xmin, zmin, xmax, zmax = scene.bounds
        self.x0, self.z0 = math.floor(xmin / g) * g, math.floor(zmin / g) * g
        self.ni = int(math.ceil((xmax - self.x0) / g)) + 1
        self.nj = int(math.ceil((zmax - self.z0) / g)) + 1
        floors = shapely.union_all([shapely.Polygon(r.polygon) for r in scene.rooms])
        blocked = obstacle_geometry(scene, agent).buffer(agent.radius) if agent.radius > 0 \
            else obstacle_geometry(scene, agent)
        self._floors, self._blocked = floors, blocked
        shapely.prepare(floors)
        shapely.prepare(blocked)
        ii, jj = np.meshgrid(np.arange(self.ni), np.arange(self.nj), indexing="ij")
        xs, zs = self.x0 + ii * g, self.z0 + jj * g
        self.free = self.is_free_xy(xs, zs)  # (ni, nj)
        self.room_index = np.full((self.ni, self.nj), -1, dtype=np.int32)
        for k, room in enumerate(scene.rooms):
            poly = shapely.Polygon(room.polygon)
            shapely.prepare(poly)
            inside = shapely.contains_xy(poly, xs, zs) & (self.room_index < 0)
            self.room_index[inside] = k
        self.move_ok = self._moves()  # (ni, nj, H)

    # ------------------------------------------------------------------ geometry

    def is_free_xy(self, xs, zs) -> np.ndarray:
        """Whether the agent's disc fits at world points (broadcast arrays)."""
        xs, zs = np.asarray(xs, dtype=np.float64), np.asarray(zs, dtype=np.float64)
        return shapely.contains_xy(self._floors, xs, zs) & ~shapely.intersects_xy(
            self._blocked, xs, zs)

    def _moves(self) -> np.ndarray:
        H, g = self.agent.headings, self.agent.grid
        ok = np.zeros((self.ni, self.nj, H), dtype=bool)
        fi, fj = np.nonzero(self.free)
        for h in range(H):
            di, dj = heading_step(h, H)
            ti, tj = fi + di, fj + dj
            inb = (ti >= 0) & (ti < self.ni) & (tj >= 0) & (tj < self.nj)
            cand = inb.copy()
            cand[inb] = self.free[ti[inb], tj[inb]]
            n = max(2, int(math.ceil(math.hypot(di, dj) * 8)) + 1)
            t = np.linspace(0.0, 1.0, n)[1:-1]
            xs = self.x0 + (fi[cand, None] + t * di) * g
            zs = self.z0 + (fj[cand, None] + t * dj) * g
            good = self.is_free_xy(xs, zs).all(axis=1)
            idx = np.flatnonzero(cand)[good]
            ok[fi[idx], fj[idx], h] = True
        return ok

    # ------------------------------------------------------------------ states

    def position(self, i: int, j: int) -> tuple[float, float]:
        """World (x, z) of cell (i, j)."""
        return self.x0 + i * self.agent.grid, self.z0 + j * self.agent.grid

    def yaw(self, h: int) -> float:
        """Heading ``h`` in degrees."""
        return h * 360.0 / self.agent.headings

    def cell_of(self, x: float, z: float) -> tuple[int, int]:
        """The nearest cell to world (x, z) (it may be outside the grid or not free)."""
        g = self.agent.grid
        return int(round((x - self.x0) / g)), int(round((z - self.z0) / g))

    def heading_of(self, yaw_deg: float) -> int:
        """The nearest heading index to a yaw in degrees."""
        return int(round((yaw_deg % 360.0) / (360.0 / self.agent.headings))) % \
            self.agent.headings

    def in_grid(self, i: int, j: int) -> bool:
        return 0 <= i < self.ni and 0 <= j < self.nj

    def is_free(self, i: int, j: int) -> bool:
        return self.in_grid(i, j) and bool(self.free[i, j])

    def step(self, state: tuple[int, int, int], action: int) -> tuple[tuple[int, int, int],
                                                                      bool]:
        """(next state, success) of one action; a blocked move returns the same state."""
        i, j, h = state
        H = self.agent.headings
        if action == MOVE_AHEAD:
            if not self.move_ok[i, j, h]:
                return state, False
            di, dj = heading_step(h, H)
            return (i + di, j + dj, h), True
        if action == ROTATE_LEFT:
            return (i, j, (h - 1) % H), True
        if action == ROTATE_RIGHT:
            return (i, j, (h + 1) % H), True
        if action == END:
            return state, True
        raise ValueError(f"action {action} is not one of 0..{len(ACTIONS) - 1} ({ACTIONS})")

    def room_of(self, i: int, j: int) -> int:
        """Index into ``scene.rooms`` of the room containing cell (i, j), or -1."""
        return int(self.room_index[i, j]) if self.in_grid(i, j) else -1

    # ------------------------------------------------------------------ connectivity

    @cached_property
    def components(self) -> np.ndarray:
        """(ni, nj) int: connected component label of each free cell by moves, -1 elsewhere."""
        n = self.ni * self.nj
        src, dst = [], []
        for h in range(self.agent.headings):
            di, dj = heading_step(h, self.agent.headings)
            i, j = np.nonzero(self.move_ok[:, :, h])
            src.append(i * self.nj + j)
            dst.append((i + di) * self.nj + (j + dj))
        src, dst = np.concatenate(src), np.concatenate(dst)
        graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
        _, labels = connected_components(graph, directed=True, connection="strong")
        labels = labels.reshape(self.ni, self.nj)
        return np.where(self.free, labels, -1)

    @cached_property
    def reachable(self) -> np.ndarray:
        """(ni, nj) bool: the free cells of the largest connected component."""
        comp = self.components
        if not (comp >= 0).any():
            return np.zeros_like(self.free)
        counts = np.bincount(comp[comp >= 0])
        return comp == int(np.argmax(counts))

    def reachable_states(self) -> list[tuple[int, int, int]]:
        """Every reachable (i, j, h), in a fixed order."""
        cells = np.argwhere(self.reachable)
        return [(int(i), int(j), h) for i, j in cells for h in range(self.agent.headings)]
