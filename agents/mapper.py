"""The map agent's map: an occupancy map built from depth and odometry, in the frame the
agent started in (:class:`EpisodeMap`), and the agent's settings (:class:`MapperConfig`).
The agent that acts on it is :class:`agents.map_agent.MapPolicy`.

The map tracks the agent's pose (the lattice's moves are exact: one cell ahead unless blocked,
a quarter turn per rotation) and lifts every depth pixel into that frame: points at floor
height mark their cell as seen floor, points between the agent's floor clearance and its
height mark every cell whose centre is within the agent's radius (plus a margin) as blocked;
a blocked move marks the cell ahead blocked. Paths are breadth-first distances over the cells
not known to be blocked (unseen cells count as free until seen otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from common.errors import InputError
from sim.camera import CameraConfig
from sim.lattice import MOVE_AHEAD, ROTATE_LEFT, ROTATE_RIGHT, AgentConfig, heading_step

ROOM_ANCHORS = {"Bedroom": ("Bed",), "Bathroom": ("Toilet",), "Kitchen": ("Fridge",),
                "LivingRoom": ("Sofa",)}
"""The object types a RoomNav goal looks for, per room type: each is in 98-99% of the rooms
of its type in 100 training houses and in no other room type's (Sofa: 83%, 3 others)."""


@dataclass(frozen=True)
class MapperConfig:
    """The map agent's settings (metres unless said)."""

    size: int = 256
    """Cells per side of the map, centred on the start (64 m at 0.25 m)."""
    margin: float = 0.03
    """Added to the agent's radius when marking cells near an obstacle point blocked."""
    max_range: float = 8.0
    """Depth points further than this (horizontally) are not mapped."""
    blind: float = 0.9
    """Cells within this of a cell the agent stood on count as seen for exploration (the
    pitched camera never sees the floor this close)."""
    reach: float = 0.99
    """``end`` when the detected target's nearest point is within this share of the task's
    ``max_distance`` (ObjectNav; a point on the object is at least as far as its footprint,
    so this stays inside the success test)."""
    room_reach: float = 0.5
    """The same share for a RoomNav goal's anchor object: smaller ends deeper in its room."""
    extra_pixels: int = 4
    """``end`` needs the task's ``min_pixels`` plus this many detected pixels."""
    room_anchors: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(ROOM_ANCHORS))
    """The object types a RoomNav goal looks for, per room type (``end`` near any)."""
    scan_spacing: float = 1.5
    """Look all four ways (turns cost no path length) at the start and wherever the agent
    stands this far from every place it looked all four ways before; 0: never."""
    explorer: str | None = None
    """A fitted explorer (``spoc-explorer fit``'s ``explorer.pt``) that picks which frontier
    to walk to; None: the nearest frontier."""


def turn_towards(heading: int, want: int) -> int:
    """The rotation that brings ``heading`` closer to ``want`` (right when opposite)."""
    return ROTATE_LEFT if (want - heading) % 4 == 3 else ROTATE_RIGHT


class EpisodeMap:
    """One episode's map, pose and target memory in the agent's start frame."""

    def __init__(self, camera: CameraConfig, agent: AgentConfig, cfg: MapperConfig):
        if agent.headings != 4:
            raise InputError(f"agent.headings: the map agent moves on 4 headings, not "
                             f"{agent.headings}")
        self.camera, self.agent, self.cfg = camera, agent, cfg
        n = cfg.size
        self.floor = np.zeros((n, n), bool)  # seen floor
        self.blocked = np.zeros((n, n), bool)
        self.explored = np.zeros((n, n), bool)  # seen floor, blocked or within the blind disc
        self.targets = np.zeros((0, 2))  # (M, 2) remembered target points, metres
        self.tried = np.zeros((n, n), bool)  # approach cells the target was not seen from
        self.visited = np.zeros((n, n), bool)  # cells it stood on
        self.explore_goal: np.ndarray | None = None  # the explorer's frontier cells, kept
        self.privileged = None  # the oracle's labels (eval.probes.Privileged), probes only
        self.context = np.zeros((0, n, n), bool)  # (K, n, n) where each context type was seen
        self.cell = (n // 2, n // 2)
        self.heading = 0
        self.looked: dict[tuple[int, int], set[int]] = {}  # headings seen from each cell
        from sim.render import level_rays  # the renderer's rays; compiled on first import

        dx, dy, dz = level_rays(camera)
        self.rays = (dx.ravel(), dy.ravel(), dz.ravel())
        r = int(math.ceil(cfg.blind / agent.grid))
        ii, jj = np.mgrid[-r:r + 1, -r:r + 1]
        self.blind_disc = (ii ** 2 + jj ** 2) * agent.grid ** 2 <= cfg.blind ** 2
        self._stood(self.cell)

    def forgotten(self) -> EpisodeMap:
        """A new map at the same pose (the memory probe, :class:`eval.probes.ProbeConfig`)."""
        fresh = EpisodeMap(self.camera, self.agent, self.cfg)
        fresh.explored[:] = False
        fresh.visited[:] = False
        fresh.privileged = self.privileged
        fresh.cell, fresh.heading = self.cell, self.heading
        fresh._stood(fresh.cell)
        return fresh

    # ----------------------------------------------------------------- pose

    def centre(self, cell: tuple[int, int]) -> np.ndarray:
        """Metres of a cell's centre in the start frame."""
        c = self.cfg.size // 2
        return (np.asarray(cell, float) - c) * self.agent.grid

    def ahead(self) -> tuple[int, int]:
        di, dj = heading_step(self.heading, self.agent.headings)
        return self.cell[0] + di, self.cell[1] + dj

    def moved(self, action: int, blocked: bool) -> None:
        """Update the pose after ``action`` (``blocked``: a move that did not happen)."""
        if action == ROTATE_LEFT:
            self.heading = (self.heading - 1) % 4
        elif action == ROTATE_RIGHT:
            self.heading = (self.heading + 1) % 4
        elif action == MOVE_AHEAD:
            a = self.ahead()
            if blocked:
                if self._inside(a):
                    self.blocked[a] = True
                    self.explored[a] = True
            elif self._inside(a):
                self.cell = a
                self.blocked[a] = False
                self._stood(a)

    def _inside(self, cell) -> bool:
        return 0 <= cell[0] < self.cfg.size and 0 <= cell[1] < self.cfg.size

    def _stood(self, cell) -> None:
        self.visited[cell] = True
        r = self.blind_disc.shape[0] // 2
        i0, j0 = cell[0] - r, cell[1] - r
        sl, disc = self._clip(i0, j0, self.blind_disc)
        self.explored[sl] |= disc

    def _clip(self, i0, j0, patch):
        n = self.cfg.size
        a0, b0 = max(i0, 0), max(j0, 0)
        a1, b1 = min(i0 + patch.shape[0], n), min(j0 + patch.shape[1], n)
        return (slice(a0, a1), slice(b0, b1)), patch[a0 - i0:a1 - i0, b0 - j0:b1 - j0]

    # ----------------------------------------------------------------- perception

    def lift(self, depth: np.ndarray, pixels: np.ndarray | None = None):
        """(x, z, height) in metres in the start frame of the depth pixels (all, or the flat
        indices ``pixels``), the nearest ``max_range`` only."""
        dx, dy, dz = self.rays
        d = depth.ravel().astype(np.float64)
        if pixels is not None:
            d, dx, dy, dz = d[pixels], dx[pixels], dy[pixels], dz[pixels]
        right, down, fwd = d * dx, d * dy, d * dz
        keep = np.isfinite(d) & (d > 0) & (np.hypot(right, fwd) <= self.cfg.max_range)
        yaw = math.radians(self.heading * 90.0)
        fx, fz, rx, rz = math.sin(yaw), math.cos(yaw), math.cos(yaw), -math.sin(yaw)
        x0, z0 = self.centre(self.cell)
        x = x0 + right * rx + fwd * fx
        z = z0 + right * rz + fwd * fz
        return x[keep], z[keep], self.camera.eye_height - down[keep]

    def integrate(self, depth: np.ndarray) -> None:
        """Mark the floor and obstacles the depth frame shows."""
        self.looked.setdefault(self.cell, set()).add(self.heading)
        x, z, height = self.lift(depth)
        g, c, n = self.agent.grid, self.cfg.size // 2, self.cfg.size
        on_floor = height <= self.agent.floor_clearance
        fi = np.round(x[on_floor] / g).astype(int) + c
        fj = np.round(z[on_floor] / g).astype(int) + c
        ok = (fi >= 0) & (fi < n) & (fj >= 0) & (fj < n)
        self.floor[fi[ok], fj[ok]] = True
        self.explored[fi[ok], fj[ok]] = True
        solid = (height > self.agent.floor_clearance) & (height < self.agent.height)
        ox, oz = x[solid] / g, z[solid] / g
        reach = (self.agent.radius + self.cfg.margin) / g
        base_i, base_j = np.floor(ox).astype(int), np.floor(oz).astype(int)
        for di in (0, 1):
            for dj in (0, 1):
                ci, cj = base_i + di, base_j + dj
                near = (ci - ox) ** 2 + (cj - oz) ** 2 <= reach ** 2
                ci, cj = ci[near] + c, cj[near] + c
                ok = (ci >= 0) & (ci < n) & (cj >= 0) & (cj < n)
                self.blocked[ci[ok], cj[ok]] = True
                self.explored[ci[ok], cj[ok]] = True
        self.blocked[self.cell] = False  # it stands there

    def remember(self, x: np.ndarray, z: np.ndarray, keep: int = 64) -> None:
        """Add target points (metres, start frame), at most ``keep`` per frame."""
        if len(x) > keep:
            pick = np.linspace(0, len(x) - 1, keep).round().astype(int)
            x, z = x[pick], z[pick]
        self.targets = np.concatenate([self.targets, np.stack([x, z], axis=1)])[-4096:]

    # ----------------------------------------------------------------- planning

    def distances(self, goals: np.ndarray) -> np.ndarray:
        """Breadth-first steps from every cell to the nearest goal cell over the cells not
        known to be blocked (-1: unreachable), on the window around the seen area."""
        n = self.cfg.size
        known = self.explored | goals
        known[self.cell] = True
        rows, cols = np.flatnonzero(known.any(1)), np.flatnonzero(known.any(0))
        i0, i1 = max(rows[0] - 2, 0), min(rows[-1] + 3, n)
        j0, j1 = max(cols[0] - 2, 0), min(cols[-1] + 3, n)
        free = ~self.blocked[i0:i1, j0:j1]
        front = goals[i0:i1, j0:j1] & free
        dist = np.full(free.shape, -1, np.int32)
        dist[front] = 0
        seen = front.copy()
        d = 0
        while front.any():
            d += 1
            grow = np.zeros_like(front)
            grow[1:] |= front[:-1]
            grow[:-1] |= front[1:]
            grow[:, 1:] |= front[:, :-1]
            grow[:, :-1] |= front[:, 1:]
            front = grow & free & ~seen
            seen |= front
            dist[front] = d
        out = np.full((n, n), -1, np.int32)
        out[i0:i1, j0:j1] = dist
        return out

    def steps_from_agent(self) -> np.ndarray:
        """Breadth-first steps from the agent's cell to every cell (-1: unreachable)."""
        here = np.zeros_like(self.floor)
        here[self.cell] = True
        return self.distances(here)

    def step_towards(self, dist: np.ndarray) -> int | None:
        """The action along the distance field from the agent's cell, or None if no goal is
        reachable or the agent stands on one."""
        here = dist[self.cell]
        if here <= 0:
            return None
        best = []
        for h in range(4):
            di, dj = heading_step(h, 4)
            nb = (self.cell[0] + di, self.cell[1] + dj)
            if self._inside(nb) and 0 <= dist[nb] < here:
                best.append(h)
        if not best:
            return None
        if self.heading in best:
            return MOVE_AHEAD
        return turn_towards(self.heading, best[0])

    def frontier(self) -> np.ndarray:
        """Unexplored cells next to seen floor: where exploring goes next."""
        seen = self.floor & ~self.blocked
        near = np.zeros_like(seen)
        near[1:] |= seen[:-1]
        near[:-1] |= seen[1:]
        near[:, 1:] |= seen[:, :-1]
        near[:, :-1] |= seen[:, 1:]
        return near & ~self.explored

    def approach(self, reach: float) -> np.ndarray:
        """Cells within ``reach`` of a remembered target point, not blocked and not tried."""
        n, g, c = self.cfg.size, self.agent.grid, self.cfg.size // 2
        out = np.zeros((n, n), bool)
        if not len(self.targets):
            return out
        lo = np.floor((self.targets.min(0) - reach) / g).astype(int) + c
        hi = np.ceil((self.targets.max(0) + reach) / g).astype(int) + c
        lo, hi = np.clip(lo, 0, n - 1), np.clip(hi, 0, n - 1)
        ii, jj = np.mgrid[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1]
        cells = np.stack([ii.ravel(), jj.ravel()], 1)
        metres = (cells - c) * g
        d2 = ((metres[:, None, :] - self.targets[None, ::max(1, len(self.targets) // 256), :])
              ** 2).sum(-1).min(1)
        hit = cells[d2 <= reach ** 2]
        out[hit[:, 0], hit[:, 1]] = True
        return out & ~self.blocked & ~self.tried

    def scan_turn(self, spacing: float) -> int | None:
        """A turn towards a heading not yet looked at from this cell, where the agent stands
        ``spacing`` metres from every cell it has looked all four ways from; else None."""
        looked = self.looked.get(self.cell, set())
        if len(looked) == 4:
            return None
        here = np.asarray(self.cell)
        far = all(np.hypot(*(here - c)) * self.agent.grid >= spacing
                  for c, seen in self.looked.items() if len(seen) == 4)
        if not far:
            return None
        left, right = (self.heading - 1) % 4, (self.heading + 1) % 4
        return ROTATE_RIGHT if right not in looked or left in looked else ROTATE_LEFT

    def face_target(self) -> int | None:
        """A rotation towards the nearest remembered target point, or None when facing it."""
        x0, z0 = self.centre(self.cell)
        d = self.targets - [x0, z0]
        k = int(np.argmin((d ** 2).sum(1)))
        want = int(round(math.degrees(math.atan2(d[k, 0], d[k, 1])) / 90.0)) % 4
        return None if want == self.heading else turn_towards(self.heading, want)
