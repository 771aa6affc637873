"""Episode sampling: per house, draw tasks and starts, solve them with the oracle, render them.

A :class:`HouseContext` holds what every episode of a house shares (scene, lattice, navigation
table, renderer, goal sets, oracles), so the per-house goal-set cost is paid once.
:func:`sample_episode` draws one episode from a seed; :func:`render_frames` (or, one at a time,
:func:`iter_frames`) renders the frames the agent saw before each action.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from common.files import sha256_file
from datagen.constants import (
    POSE_DIGITS,
    SOURCE_EXPERT,
    SOURCE_NOISY,
    TASK_OBJECTNAV,
    TASK_ROOMNAV,
    TASKS,
)
from datagen.navgraph import MOTIONS, MOVE_UNITS, NavTable
from datagen.oracle import ExpertPath, Oracle
from datagen.tasks import (
    TaskConfig,
    box_corners,
    goal_name,
    objectnav_goal_sets,
    outside_frustum,
    roomnav_goal_sets,
)
from sim.detect import BOX_FEATURES, target_box, target_table
from sim.env import EmbeddedEnv
from sim.house import HouseRecord, iter_house_lines, parse_house_line, read_house
from sim.house_check import HouseError
from sim.lattice import END

# --------------------------------------------------------------------------- house files


@dataclass(frozen=True)
class HouseFile:
    """A house file's identity: its path, sha256 and the line index of each house."""

    path: str
    sha256: str
    lines: tuple[int, ...]

    @classmethod
    def scan(cls, path: str | os.PathLike) -> HouseFile:
        """Read and check the whole file once (HouseError when missing, corrupt, empty or
        holding a line that is not a valid house of either schema), so a bad file fails
        before anything is written or registered."""
        lines = []
        for i, text in iter_house_lines(path):
            read_house(parse_house_line(text, path, i), path, i, owned=True)
            lines.append(i)
        if not lines:
            raise HouseError(path, None, "<file>", "no houses", "the house file is empty")
        return cls(str(path), sha256_file(path), tuple(lines))

    def __len__(self) -> int:
        return len(self.lines)

    def parse(self, line: int, text: str) -> HouseRecord:
        """The checked schema-1.0.0 house of one line's text."""
        rec = read_house(parse_house_line(text, self.path, line), self.path, line, owned=True)
        # A stable id also keys EmbeddedEnv's scene cache (never id(dict)).
        rec.house.setdefault("metadata", {}).setdefault("houseId", rec.house_id)
        return rec

    def read(self, positions: list[int]) -> dict[int, HouseRecord]:
        """Position (0..len-1) -> checked schema-1.0.0 house, parsing only those lines."""
        wanted = {self.lines[p]: p for p in positions}
        out = {}
        for i, text in iter_house_lines(self.path):
            if i in wanted:
                out[wanted[i]] = self.parse(i, text)
                if len(out) == len(wanted):
                    break
        return out


# --------------------------------------------------------------------------- houses


@dataclass
class HouseStats:
    """Where a house's time went."""

    goal_frames: int = 0
    """Frames rendered to find ObjectNav goal sets."""
    goal_seconds: float = 0.0
    """Seconds spent on goal sets (rendering and graph search)."""
    setup_seconds: float = 0.0
    """Seconds spent building the scene, lattice and navigation table."""


class HouseContext:
    """Per-house state shared by its episodes; goal sets and oracles are built on first use."""

    def __init__(self, record: HouseRecord, env: EmbeddedEnv, tasks: TaskConfig):
        t0 = time.perf_counter()
        self.record, self.env, self.tasks = record, env, tasks
        self.scene, self.lattice = env.load(record.house)
        self.renderer = env.renderer
        self.table = NavTable.build(self.lattice)
        self._goals: dict[str, dict[str, np.ndarray]] = {}
        self._oracles: dict[tuple[str, str], Oracle] = {}
        self.stats = HouseStats(setup_seconds=time.perf_counter() - t0)

    def goal_sets(self, task: str) -> dict[str, np.ndarray]:
        """Target -> (N,) bool goal mask, for the configured targets present in the house."""
        if task not in self._goals:
            t0 = time.perf_counter()
            if task == TASK_ROOMNAV:
                self._goals[task] = roomnav_goal_sets(self.scene, self.table,
                                                      self.tasks.roomnav_targets)
            else:
                # Ids-only pixel counts: no shading, depth or id image (same ids as render).
                self._goals[task], n = objectnav_goal_sets(
                    self.scene, self.table, self.renderer.render_ids, self.env.camera,
                    self.tasks.objectnav_targets, self.tasks.min_pixels, self.tasks.max_distance,
                    render_counts=self.renderer.render_counts)
                self.stats.goal_frames += n
            self.stats.goal_seconds += time.perf_counter() - t0
        return self._goals[task]

    def oracle(self, task: str, target: str) -> Oracle:
        """The oracle of one task and target (its goal set must be non-empty)."""
        key = (task, target)
        if key not in self._oracles:
            t0 = time.perf_counter()
            self._oracles[key] = Oracle(self.table, self.goal_sets(task)[target])
            self.stats.goal_seconds += time.perf_counter() - t0
        return self._oracles[key]

    def pose(self, state: tuple[int, int, int]) -> tuple[float, float, float]:
        """World (x, z, yaw degrees) of a lattice state."""
        x, z = self.lattice.position(state[0], state[1])
        return float(x), float(z), float(self.lattice.yaw(state[2]))


# --------------------------------------------------------------------------- episodes


@dataclass
class Episode:
    """One expert episode, before rendering: T states and T actions (the last is END).

    With action noise (:func:`noisy_path`), ``path`` holds the states actually visited and the
    expert's LABEL at each, and ``executed`` the actions taken (which differ where noise was
    injected); ``shortest_steps`` and ``path.metres`` stay those of the noiseless expert.
    """

    episode_id: str
    house_id: str
    house_index: int
    task: str
    target: str
    seed: int
    path: ExpertPath
    shortest_steps: int
    source: str = SOURCE_EXPERT
    poses: list[tuple[float, float, float]] = field(default_factory=list)
    executed: list[int] | None = None
    """Actions taken at each state (noisy episodes only; None: the labels were taken)."""

    @property
    def goal(self) -> str:
        return goal_name(self.task, self.target)

    @property
    def start(self) -> tuple[int, int, int]:
        return self.path.states[0]


def draw_task(tasks: TaskConfig, rng: np.random.Generator) -> str:
    """A task drawn by the configured mix weights."""
    names = [t for t in TASKS if tasks.mix.get(t, 0) > 0]
    w = np.array([tasks.mix[t] for t in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def sample_episode(ctx: HouseContext, episode_id: str, seed: int, max_steps: int,
                   action_noise: float = 0.0) -> Episode | str:
    """An expert episode drawn from ``seed``, or the reason (a short key) it was skipped.

    The task follows the mix; the target is uniform over the configured targets present in
    the house with a reachable goal; the start is uniform over reachable non-goal states.
    ``action_noise`` > 0 makes a noise-injected episode (:func:`noisy_path`) from the same
    draws: the noiseless episode of the same seed is identical to ``action_noise`` = 0.
    """
    rng = np.random.default_rng(seed)
    task = draw_task(ctx.tasks, rng)
    if len(ctx.table) == 0:
        return "house_without_free_space"
    goals = ctx.goal_sets(task)
    if not goals:
        return f"{task}/no_target_in_house"
    targets = [t for t in ctx.tasks.targets(task) if t in goals and goals[t].any()]
    if not targets:
        return f"{task}/no_reachable_goal"
    target = targets[int(rng.integers(len(targets)))]
    starts = np.flatnonzero(~goals[target])
    if len(starts) == 0:
        return f"{task}/every_state_is_a_goal"
    start = ctx.table.state(int(starts[rng.integers(len(starts))]))
    oracle = ctx.oracle(task, target)
    steps = oracle.distance(start)
    if not np.isfinite(steps):
        return f"{task}/no_reachable_goal"
    path = oracle.path(start)
    if len(path.actions) > max_steps:
        return "longer_than_max_steps"
    ep = Episode(episode_id, ctx.record.house_id, ctx.record.index, task, target, int(seed),
                 path, len(path.actions))
    if action_noise > 0:
        noisy = noisy_path(ctx, oracle, start, rng, action_noise, max_steps)
        if noisy is None:
            return "longer_than_max_steps"
        states, labels, ep.executed = noisy
        ep.path, ep.source = ExpertPath(states, labels, path.metres), SOURCE_NOISY
    ep.poses = [ctx.pose(s) for s in ep.path.states]
    return ep


def noisy_path(ctx: HouseContext, oracle: Oracle, start: tuple[int, int, int],
               rng: np.random.Generator, noise: float, max_steps: int
               ) -> tuple[list[tuple[int, int, int]], list[int], list[int]] | None:
    """The expert driven with injected noise (DART, Laskey et al. 2017): at each state the
    label is the oracle's action, and with probability ``noise`` a uniformly drawn OTHER
    motion is executed instead (a blocked move leaves the agent in place). The visited
    states are the off-path states a learner reaches by its own mistakes, each labelled with
    the way back. Returns (states, labels, executed actions), or None past ``max_steps``.
    """
    states, labels, executed = [], [], []
    s = start
    while len(labels) < max_steps:
        label = oracle.expert_action(s)
        states.append(s)
        labels.append(label)
        if label == END:
            executed.append(END)
            return states, labels, executed
        action = label
        if rng.random() < noise:
            others = [m for m in MOTIONS if m != label]
            action = others[int(rng.integers(len(others)))]
        executed.append(action)
        s = ctx.lattice.step(s, action)[0]
    return None


def iter_frames(ctx: HouseContext, states: list[tuple[int, int, int]]) -> Iterator[np.ndarray]:
    """The (H, W, 3) uint8 RGB frame at each state, rendered when asked for (so a consumer
    that encodes each frame right away reads it while it is still in cache)."""
    for s in states:
        yield ctx.renderer.render_rgb(*ctx.pose(s))


def render_frames(ctx: HouseContext, states: list[tuple[int, int, int]]) -> np.ndarray:
    """(T, H, W, 3) uint8: the RGB frame at each state."""
    cam = ctx.env.camera
    out = np.empty((len(states), cam.height, cam.width, 3), dtype=np.uint8)
    for t, rgb in enumerate(iter_frames(ctx, states)):
        out[t] = rgb
    return out


def stored_pose(pose: tuple[float, float, float]) -> tuple[float, float, float]:
    """(x, z, yaw) as meta.json stores it (:data:`POSE_DIGITS` decimals)."""
    return tuple(round(v, POSE_DIGITS) for v in pose)


def episode_labels(ctx: HouseContext, ep: Episode
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-step labels of an episode besides the action: (T,) float32 geodesic metres from
    each state to the goal set (the oracle's shortest path: 0 at a goal state); (T,) int32 the
    most pixels any one instance of the ObjectNav target fills in that state's frame, at any
    distance (-1 throughout for a task without a target object); and (T, 6) float32 the
    target's box in that frame (:func:`sim.detect.target_box`, zeros where no target pixel is
    in view and for RoomNav). Both come from one ids-only render of the pose as meta.json
    stores it (skipped where every target instance is outside the view frustum), so the box is
    the one the loader would render there (``--data.target_box``)."""
    oracle = ctx.oracle(ep.task, ep.target)
    nodes = [ctx.table.node(s) for s in ep.path.states]
    # weights are MOVE_UNITS per grid step plus 1 per action: the actions add < 1e-6 m
    dist = (oracle.dist[nodes] / MOVE_UNITS * ctx.lattice.agent.grid).astype(np.float32)  # (T,)
    pixels = np.full(len(nodes), -1, dtype=np.int32)
    box = np.zeros((len(nodes), BOX_FEATURES), dtype=np.float32)
    if ep.task == TASK_OBJECTNAV:
        boxes = ctx.scene.boxes
        table = target_table(boxes.object_type, ep.target)
        rows = np.flatnonzero(table[1:])
        corners = box_corners(boxes, rows)  # (K, 8, 3)
        for t, s in enumerate(ep.path.states):
            x, z, yaw = stored_pose(ctx.pose(s))
            if outside_frustum(corners, x, z, math.radians(yaw), ctx.env.camera).all():
                pixels[t] = 0  # no instance can reach a pixel: no need to render
                continue
            ids = ctx.renderer.render_ids(x, z, yaw)
            counts = np.bincount(ids.ravel(), minlength=len(table))
            pixels[t] = counts[rows + 1].max(initial=0)
            box[t] = target_box(ids, table, counts)
    return dist, pixels, box
