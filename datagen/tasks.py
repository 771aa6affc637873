"""Tasks, their success tests and their goal sets (every reachable state that succeeds).

- ObjectNav(target type): ``end`` while an instance of the type has at least ``min_pixels``
  pixels in the frame and lies within ``max_distance`` metres (horizontal distance from the
  agent to the object's footprint, the ProcTHOR/RoboTHOR rule).
- RoomNav(target room type): ``end`` inside a room of that type.

ObjectNav goal sets for all target types of a house come from one pass that renders only
the candidate states: states whose cell is within ``max_distance`` of a target-type footprint
that is not entirely under the view's bottom edge, whose horizontal view wedge meets that
footprint and whose view frustum is not entirely to one side of the box. No other state can
succeed (``tests/test_oracle.py`` renders every state to check). Candidates are rendered
ids-only (``Renderer.render_counts``: pixel counts per id, no shading or depth).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from common.errors import InputError
from datagen.constants import (
    OBJECTNAV_TARGETS,
    ROOMNAV_TARGETS,
    TASK_OBJECTNAV,
    TASK_ROOMNAV,
    TASKS,
)
from datagen.navgraph import NavTable
from sim.assets import object_types
from sim.camera import CameraConfig
from sim.interface import VisibleObject
from sim.scene import Scene


@dataclass
class TaskConfig:
    """Which tasks and targets episodes are drawn from, and the success thresholds."""

    mix: dict[str, float] = field(default_factory=lambda: {TASK_OBJECTNAV: 0.8,
                                                           TASK_ROOMNAV: 0.2})
    """Relative frequency of each task (objectnav, roomnav); weights need not sum to 1."""
    objectnav_targets: list[str] = field(default_factory=lambda: list(OBJECTNAV_TARGETS))
    """ObjectNav target object types (default: ProcTHOR's 16)."""
    roomnav_targets: list[str] = field(default_factory=lambda: list(ROOMNAV_TARGETS))
    """RoomNav target room types."""
    min_pixels: int = 50
    """ObjectNav: pixels of the target needed in the final frame to count as visible."""
    max_distance: float = 1.0
    """ObjectNav: metres from the agent to the target's footprint at most."""

    def __post_init__(self):
        validate_tasks(self)

    def targets(self, task: str) -> list[str]:
        """The configured targets of a task."""
        return list(self.objectnav_targets if task == TASK_OBJECTNAV else self.roomnav_targets)

    def goals(self) -> list[str]:
        """The goal vocabulary: ``task/target`` for every task in the mix, in a fixed order."""
        return [goal_name(t, x) for t in TASKS if self.mix.get(t, 0) > 0 for x in self.targets(t)]


def validate_tasks(cfg: TaskConfig) -> None:
    """Raise ValueError naming the bad field and value."""
    for task, w in cfg.mix.items():
        if task not in TASKS:
            raise InputError(f"tasks.mix: unknown task {task!r}; use one of {list(TASKS)}")
        if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
            raise InputError(f"tasks.mix.{task}: weight {w!r} must be a number >= 0")
    if sum(cfg.mix.values()) <= 0:
        raise InputError("tasks.mix: every weight is 0; give at least one task a weight > 0")
    known = set(object_types())
    for t in cfg.objectnav_targets:
        if t not in known:
            raise InputError(f"tasks.objectnav_targets: unknown object type {t!r}; use types "
                             f"from the asset database, e.g. {list(OBJECTNAV_TARGETS)}")
    for t in cfg.roomnav_targets:
        if t not in ROOMNAV_TARGETS:
            raise InputError(f"tasks.roomnav_targets: unknown room type {t!r}; use one of "
                             f"{list(ROOMNAV_TARGETS)}")
    for task in TASKS:
        if cfg.mix.get(task, 0) > 0 and not cfg.targets(task):
            raise InputError(f"tasks.{task}_targets: empty while tasks.mix.{task} > 0")
    if cfg.min_pixels < 1:
        raise InputError(f"tasks.min_pixels: {cfg.min_pixels} must be >= 1")
    if not cfg.max_distance > 0:
        raise InputError(f"tasks.max_distance: {cfg.max_distance} must be > 0 metres")


def goal_name(task: str, target: str) -> str:
    """The goal string of a task and target, e.g. ``objectnav/Mug``."""
    return f"{task}/{target}"


# --------------------------------------------------------------------------- success tests


def within_reach(visible: Mapping[str, VisibleObject], min_pixels: int, max_distance: float
                 ) -> list[VisibleObject]:
    """The objects seen with enough pixels and close enough: what the ObjectNav test accepts."""
    return [v for v in visible.values() if v.pixels >= min_pixels and v.distance <= max_distance]


def objectnav_success(visible: Mapping[str, VisibleObject], target: str, min_pixels: int,
                      max_distance: float) -> bool:
    """Whether an instance of ``target`` is seen with enough pixels and close enough."""
    return any(v.object_type == target for v in within_reach(visible, min_pixels, max_distance))


def roomnav_success(room: tuple[str, str] | None, target: str) -> bool:
    """Whether the agent's (room id, room type) is a room of the target type."""
    return room is not None and room[1] == target


# --------------------------------------------------------------------------- goal sets


def roomnav_goal_sets(scene: Scene, table: NavTable, targets: list[str]) -> dict[str, np.ndarray]:
    """Target room type -> (N,) bool goal mask, for the types present in the house."""
    lat = table.lattice
    room = lat.room_index[table.states[:, 0], table.states[:, 1]]  # (N,)
    types = np.array([r.room_type for r in scene.rooms] + [""])  # index -1 -> ""
    state_type = types[room]
    return {t: state_type == t for t in targets if t in {r.room_type for r in scene.rooms}}


def view_half_angle(camera: CameraConfig) -> float:
    """Half-angle (radians) of the horizontal wedge containing the pitched camera's frustum
    projected on the floor (wider than hfov/2 when pitched down); pi when it covers all."""
    u = (camera.width / 2) / camera.focal
    p = math.radians(camera.pitch)
    forward = min(math.cos(p) - v * math.sin(p) for v in (-camera.height / 2 / camera.focal,
                                                           camera.height / 2 / camera.focal))
    return math.pi if forward <= 1e-9 else math.atan2(u, forward)


def max_down_angle(camera: CameraConfig) -> float:
    """Steepest downward elevation (radians) of any pixel ray: ``pitch + vfov / 2`` (at the
    bottom edge's centre; rays further out in the row are shallower)."""
    return math.radians(camera.pitch + camera.vfov / 2)


def below_view(feet: np.ndarray, top: np.ndarray, xs: np.ndarray, zs: np.ndarray,
               camera: CameraConfig) -> np.ndarray:
    """(C, K) bool: box k is entirely under the bottom of the view from cell c whatever the
    heading (its highest, farthest point is steeper below the eye than any pixel ray).

    feet: (K, 4, 2) footprints; top: (K,) box top heights; xs, zs: (C,) cell positions.
    """
    steepest = max_down_angle(camera)
    if steepest >= math.pi / 2:
        return np.zeros((len(xs), len(top)), dtype=bool)
    far = np.hypot(feet[None, :, :, 0] - xs[:, None, None],
                   feet[None, :, :, 1] - zs[:, None, None]).max(axis=2)  # (C, K)
    return camera.eye_height - top[None, :] > math.tan(steepest) * far + 1e-6


def _in_wedges(corner_angles: np.ndarray, yaw: float, half: float) -> np.ndarray:
    """(K,) bool: whether each convex footprint meets the wedge of half-angle ``half``
    around ``yaw`` (radians, 0 = +z, 90 degrees = +x), given its (K, 4) corner azimuths from
    the viewpoint (``arctan2(dx, dz)``, independent of the heading). Conservative by a small
    margin."""
    if half >= math.pi:
        return np.ones(len(corner_angles), dtype=bool)
    ang = corner_angles - yaw
    ang = (ang + math.pi) % (2 * math.pi) - math.pi  # relative to the view direction
    lo, hi = ang.min(axis=1), ang.max(axis=1)
    margin = 1e-3
    # A footprint straddling the backward direction (or containing the point) counts.
    return (hi - lo > math.pi) | ((hi >= -half - margin) & (lo <= half + margin))


def outside_frustum(corners: np.ndarray, x: float, z: float, yaw: float,
                    camera: CameraConfig) -> np.ndarray:
    """(K,) bool: box k is entirely outside one side plane of the view frustum from (x, z)
    at ``yaw`` (radians) — all its (K, 8, 3) world corners beyond the same image edge — so no
    pixel can see it. The four planes pass through the eye and the image edges (not the
    outermost pixel centres), so the test is conservative."""
    p = math.radians(camera.pitch)
    sy, cy = math.sin(yaw), math.cos(yaw)
    dx, dz = corners[..., 0] - x, corners[..., 2] - z
    u = dx * cy - dz * sy  # right
    v = dx * sy + dz * cy  # forward (level)
    down = camera.eye_height - corners[..., 1]
    zc = math.sin(p) * down + math.cos(p) * v  # pitched camera frame
    yc = math.cos(p) * down - math.sin(p) * v
    a, b, eps = camera.width / 2 / camera.focal, camera.height / 2 / camera.focal, 1e-6
    return ((u > a * zc + eps).all(axis=1) | (-u > a * zc + eps).all(axis=1)
            | (yc > b * zc + eps).all(axis=1) | (-yc > b * zc + eps).all(axis=1))


def box_corners(boxes, rows: np.ndarray) -> np.ndarray:
    """(K, 8, 3) world corners of boxes ``rows``: the footprint at the bottom and at the top."""
    feet = boxes.footprints()[rows]  # (K, 4, 2)
    corners = []
    for sign in (-1, 1):
        y = boxes.center[rows, 1] + sign * boxes.half[rows, 1]  # (K,)
        corners.append(np.stack([feet[..., 0], np.repeat(y[:, None], 4, axis=1),
                                 feet[..., 1]], axis=-1))
    return np.concatenate(corners, axis=1)


def objectnav_goal_sets(scene: Scene, table: NavTable, render_ids: Callable, camera: CameraConfig,
                        targets: list[str], min_pixels: int, max_distance: float,
                        render_counts: Callable | None = None
                        ) -> tuple[dict[str, np.ndarray], int]:
    """Target type -> (N,) bool goal mask for the target types present in the house, and the
    number of frames rendered. ``render_ids(x, z, yaw_deg)`` returns the (H, W) id image;
    ``render_counts(x, z, yaw_deg)``, when given, is used instead and returns the pixel count
    of every id directly (``np.bincount`` of the id image, e.g. ``Renderer.render_counts``)."""
    boxes, lat = scene.boxes, table.lattice
    present = [t for t in targets if t in set(boxes.object_type)]
    goal = {t: np.zeros(len(table), dtype=bool) for t in present}
    tgt = np.flatnonzero(np.isin(np.array(boxes.object_type, dtype=object), present))
    if len(tgt) == 0:
        return goal, 0
    H = lat.agent.headings
    cells = table.states[::H, :2]  # (C, 2): every reachable cell, each with H consecutive nodes
    xs = lat.x0 + cells[:, 0] * lat.agent.grid
    zs = lat.z0 + cells[:, 1] * lat.agent.grid
    dist = boxes.distance_xz(xs[:, None], zs[:, None])[:, tgt]  # (C, K)
    feet, half = boxes.footprints()[tgt], view_half_angle(camera)
    top = boxes.center[tgt, 1] + boxes.half[tgt, 1]
    near = (dist <= max_distance) & ~below_view(feet, top, xs, zs, camera)
    corners = box_corners(boxes, tgt)  # (K, 8, 3)
    goal_rows = [goal[boxes.object_type[tgt[k]]] for k in range(len(tgt))]
    id_of = tgt + 1  # id image value of each target box
    rendered = 0
    for c in np.flatnonzero(near.any(axis=1)):
        x, z = float(xs[c]), float(zs[c])
        ks = np.flatnonzero(near[c])
        corner = np.arctan2(feet[ks, :, 0] - x, feet[ks, :, 1] - z)  # (k, 4), heading-free
        for h in range(H):
            yaw = lat.yaw(h)
            inside = _in_wedges(corner, math.radians(yaw), half)
            inside &= ~outside_frustum(corners[ks], x, z, math.radians(yaw), camera)
            seen = ks[inside]
            if len(seen) == 0:
                continue
            if render_counts is not None:
                counts = render_counts(x, z, yaw)
            else:
                counts = np.bincount(render_ids(x, z, yaw).ravel(), minlength=len(boxes) + 1)
            rendered += 1
            for k in seen[counts[id_of[seen]] >= min_pixels]:
                goal_rows[k][c * H + h] = True
    return goal, rendered


def box_target(task: str, target: str, room_anchors: dict[str, str] | None = None
               ) -> str | None:
    """The object type whose box a goal's policy input shows: an ObjectNav goal's target;
    for a RoomNav goal, the object type that stands for its room type in ``room_anchors``
    (e.g. ``{"Bedroom": "Bed"}``: a room is recognised by what is in it), else None (no
    box)."""
    if task == TASK_OBJECTNAV:
        return target
    return (room_anchors or {}).get(target)
