"""A map-building agent: the classical (modular) baseline for the learned policies.

It reads what a robot with an RGB-D camera and wheel odometry has: the RGB frame, the depth
frame and its own actions (with ``collided``, whether its last move was blocked). Nothing
privileged: no house layout, no instance ids, no oracle. Per episode it

- tracks its pose in the frame it started in (the lattice's moves are exact: one cell ahead
  unless blocked, a quarter turn per rotation), and lifts every depth pixel into that frame:
  points at floor height mark their cell as seen floor, points between the agent's floor
  clearance and its height mark every cell whose centre is within the agent's radius (plus a
  margin) as blocked; a blocked move marks the cell ahead blocked;
- finds the target with a colour detector (:class:`agents.detector.ColourDetector`, the one the
  box policies deploy with): the largest region of the target type's pixels above the floor,
  lifted by its depth, is remembered as target points (a RoomNav goal looks for its room
  type's anchor objects, ``MapperConfig.room_anchors``);
- takes ``end`` when the target's region in the current frame has enough pixels and its
  nearest point is within reach; else walks to the nearest cell within reach of a remembered
  target point and turns to face it; else explores: walks to the nearest frontier (an unseen
  cell next to seen floor, beyond the camera's blind disc around every cell it has stood on),
  or to the one a fitted explorer picks (``MapperConfig.explorer``, :mod:`agents.explorer`);
  with no frontier left it turns until it has looked all four ways from where it stands, then
  takes ``end``.

Paths are breadth-first distances over the cells not known to be blocked (unseen cells count
as free until seen otherwise), recomputed every step (:class:`agents.mapper.EpisodeMap`).
"""

from __future__ import annotations

import numpy as np
import torch

from agents.detector import ColourDetector
from agents.explorer import Explorer
from agents.mapper import EpisodeMap, MapperConfig
from common.errors import InputError
from datagen.constants import TASK_OBJECTNAV
from datagen.tasks import TaskConfig
from sim.camera import CameraConfig
from sim.detect import largest_region, target_table
from sim.lattice import END, ROTATE_RIGHT, AgentConfig


def is_objectnav(goal: str) -> bool:
    return goal.split("/", 1)[0] == TASK_OBJECTNAV



class MapPolicy:
    """The map agent behind the policy contract of :mod:`agents.baselines`: one
    :class:`EpisodeMap` per batch row, started again on each row's ``first`` step. It reads
    ``obs["depth"]`` (``uses_depth``) besides the RGB frame, ``goal`` and ``collided``."""

    uses_expert = False
    uses_depth = True

    def __init__(self, camera: CameraConfig, agent: AgentConfig, tasks: TaskConfig,
                 goals: tuple[str, ...], detector: ColourDetector,
                 cfg: MapperConfig = MapperConfig(), explorer=None, forget_steps: int = 0,
                 simulator_detections: bool = False):
        """``explorer``: what picks the frontier (anything with ``choose(map, goal, steps)``;
        None: the fitted one of ``cfg.explorer``, else the nearest frontier). The research
        probes of :class:`eval.probes.ProbeConfig` set the rest: ``forget_steps`` starts the
        map (and the target memory) again every this many steps, keeping the pose;
        ``simulator_detections`` finds the target in the simulator's instance ids instead of
        with the detector (privileged); an explorer with ``uses_oracle`` reads the oracle's
        labels (privileged)."""
        self.camera, self.agent, self.tasks, self.cfg = camera, agent, tasks, cfg
        self.goals, self.detector = tuple(goals), detector
        missing = sorted({t for g in self.goals for t in self.sought(g)} - set(detector.centre))
        if missing:
            raise InputError(f"the detector has no colour for {', '.join(missing)}; fit it with "
                             "`spoc-detector fit --types` naming them")
        if explorer is None and cfg.explorer is not None:
            explorer = Explorer.load(cfg.explorer)
        self.explorer = explorer
        self.context_types: tuple[str, ...] = tuple(getattr(explorer, "context", ()))
        """Object types noted on the map for the explorer."""
        self.forget_steps = forget_steps
        self.uses_ids = simulator_detections
        self.uses_oracle = bool(getattr(explorer, "uses_oracle", False))
        self.maps: list[EpisodeMap | None] = []
        self.last: list[int | None] = []
        self.steps: list[int] = []

    def sought(self, goal: str) -> tuple[str, ...]:
        """The object types a goal looks for: its target, or its room type's anchors."""
        task, target = goal.split("/", 1)
        if task == TASK_OBJECTNAV:
            return (target,)
        return tuple(self.cfg.room_anchors.get(target, ()))

    def reset(self, batch_size: int) -> None:
        self.maps = [None] * batch_size
        self.last = [None] * batch_size
        self.steps = [0] * batch_size

    def act(self, obs: dict) -> torch.Tensor:
        """(B,) LongTensor of actions."""
        rgb, depth = obs["rgb"].numpy(), obs["depth"].numpy()
        ids = obs["ids"].numpy() if self.uses_ids else None
        goals, first = obs["goal"].tolist(), obs["first"].tolist()
        collided = obs["collided"].tolist()
        actions = []
        for b in range(len(goals)):
            if first[b] or self.maps[b] is None:
                self.maps[b] = EpisodeMap(self.camera, self.agent, self.cfg)
                if self.uses_oracle:
                    self.maps[b].privileged = obs["privileged"][b]
                self.steps[b] = 0
            elif self.last[b] is not None:
                self.maps[b].moved(self.last[b], bool(collided[b]))
            self.steps[b] += 1
            if self.forget_steps and self.steps[b] % self.forget_steps == 0:
                self.maps[b] = self.maps[b].forgotten()
            seen = None if ids is None else (ids[b], obs["object_types"][b])
            action = self.decide(self.maps[b], rgb[b], depth[b], self.goals[goals[b]], seen)
            self.last[b] = action
            actions.append(action)
        return torch.tensor(actions, dtype=torch.long)  # (B,)

    def decide(self, m: EpisodeMap, rgb: np.ndarray, depth: np.ndarray, goal: str,
               seen: tuple | None = None) -> int:
        """One step of one episode: map the frame, then end, approach or explore (``seen``:
        the simulator's ids and object types, for ``simulator_detections``)."""
        m.integrate(depth)
        if self.context_types:
            self.note_context(m, rgb, depth)
        sought = self.sought(goal)
        reach = self.cfg.reach if is_objectnav(goal) else self.cfg.room_reach
        if any([self.detected(m, rgb, depth, t, reach, seen) for t in sought]):
            return END  # (a list: every type seen is remembered)
        if not len(m.targets) and self.cfg.scan_spacing > 0:
            turn = m.scan_turn(self.cfg.scan_spacing)
            if turn is not None:
                return turn
        if len(m.targets):
            goals = m.approach(self.tasks.max_distance * reach)
            if goals[m.cell]:
                turn = m.face_target()
                if turn is not None:
                    return turn
                m.tried[m.cell] = True  # facing it from here did not show it within reach
                goals[m.cell] = False
            action = m.step_towards(m.distances(goals))
            if action is not None:
                return action
        return self.explore(m, goal)

    def explore(self, m: EpisodeMap, goal: str) -> int:
        """Walk to a frontier: the explorer's pick (kept until none of its cells is a frontier
        any more or it cannot be reached), else the nearest; with none left, look around from
        here, then ``end``."""
        front = m.frontier()
        if self.explorer is not None:
            if m.explore_goal is not None:
                m.explore_goal &= front
            if m.explore_goal is None or not m.explore_goal.any():
                m.explore_goal = self.explorer.choose(m, goal, m.steps_from_agent())
            if m.explore_goal is not None:
                action = m.step_towards(m.distances(m.explore_goal))
                if action is not None:
                    return action
                m.explore_goal = None
        action = m.step_towards(m.distances(front))
        if action is None and len(m.looked.get(m.cell, ())) < 4:
            return ROTATE_RIGHT  # nothing left to explore from what it saw: look around first
        return END if action is None else action

    def above_floor(self, m: EpisodeMap, depth: np.ndarray) -> np.ndarray:
        """(H, W) bool: the pixels whose depth puts them above the agent's floor clearance."""
        return self.camera.eye_height - depth * m.rays[1].reshape(depth.shape) \
            > self.agent.floor_clearance

    def note_context(self, m: EpisodeMap, rgb: np.ndarray, depth: np.ndarray) -> None:
        """Mark the cells under each context type's detected pixels (the detector's
        ``min_pixels`` or more, above the floor) in ``m.context``."""
        if len(m.context) != len(self.context_types):
            m.context = np.zeros((len(self.context_types), *m.floor.shape), bool)
        above = self.above_floor(m, depth)
        g, c, n = self.agent.grid, self.cfg.size // 2, self.cfg.size
        for k, t in enumerate(self.context_types):
            pixels = np.flatnonzero(self.detector.mask(rgb, t) & above)
            if len(pixels) < self.detector.min_pixels[t]:
                continue
            x, z, _ = m.lift(depth, pixels[::4])
            i, j = np.round(x / g).astype(int) + c, np.round(z / g).astype(int) + c
            ok = (i >= 0) & (i < n) & (j >= 0) & (j < n)
            m.context[k, i[ok], j[ok]] = True

    def detected(self, m: EpisodeMap, rgb: np.ndarray, depth: np.ndarray, sought: str,
                 reach: float, seen: tuple | None = None) -> bool:
        """Remember the largest detected region of ``sought``; True when it is within reach
        with enough pixels to take ``end``. ``seen`` (ids, object types): the simulator's
        pixels of that type instead of the detector's."""
        if seen is None:
            mask = self.detector.mask(rgb, sought)
            least = self.detector.min_pixels[sought]
        else:
            ids, types = seen
            mask, least = target_table(types, sought)[ids], 1
        mask &= self.above_floor(m, depth)  # no target lies flat on the floor
        found = largest_region(mask, least)
        if found is None:
            return False
        regions, k, pixels = found
        x, z, _ = m.lift(depth, np.flatnonzero(regions.ravel() == k))
        if not len(x):
            return False
        m.remember(x, z)
        x0, z0 = m.centre(m.cell)
        nearest = float(np.sqrt((x - x0) ** 2 + (z - z0) ** 2).min())
        enough = pixels >= self.tasks.min_pixels + self.cfg.extra_pixels
        return enough and nearest <= self.tasks.max_distance * reach
