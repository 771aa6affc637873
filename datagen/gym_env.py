"""The navigation tasks as a Gymnasium environment, ``spoc/Nav-v0`` (registered by name when
:mod:`sim` is imported; see docs/gymnasium.md).

:class:`NavEnv` draws its episodes the way datagen and the evaluation do: a house from the
house file, then :func:`datagen.episodes.sample_episode` (task by the mix, target, start), so
the oracle's goal set gives the shortest path length and the geodesic distance at every
state. Its actions are :data:`sim.lattice.ACTIONS`; ``end`` terminates the episode and is
scored by the task's success test (:func:`datagen.tasks.objectnav_success`,
:func:`datagen.tasks.roomnav_success`), as in the evaluation; ``max_steps`` truncates it.

Reward per step (defaults after habitat-lab's navigation reward: success 2.5, slack 0.01)::

    reward = -step_penalty
             + progress_weight * (geodesic metres to the goal before - after)   # a motion
             + success_reward * success                                         # ``end``

``info`` holds the ingredients of SPL (Anderson et al. 2018): ``success``,
``shortest_path_length`` and ``path_length`` in metres, so that at the end of an episode
``spl = success * shortest / max(path, shortest)`` (``eval.metrics.spl``).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from common.errors import InputError
from datagen.constants import POSE_DIGITS, TASK_OBJECTNAV, TASKS
from datagen.episodes import Episode, HouseContext, HouseFile, sample_episode
from datagen.navgraph import MOVE_UNITS
from datagen.oracle import Oracle
from datagen.tasks import TaskConfig, objectnav_success, roomnav_success
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv
from sim.interface import Pose, action_index
from sim.lattice import ACTIONS, END, MOVE_AHEAD, AgentConfig

SEED_BOUND = 2**32
"""Episode seeds are drawn in ``[0, SEED_BOUND)`` from the environment's generator."""


class NavEnv(gymnasium.Env):
    """ObjectNav and RoomNav episodes in the embedded simulator, one per ``reset``.

    Observations (a ``Dict``): ``rgb`` (H, W, 3) uint8; ``goal``, an index into
    :attr:`goals` (``task/target`` names, :meth:`datagen.tasks.TaskConfig.goals`); ``task``, an
    index into :data:`datagen.constants.TASKS`; with ``depth=True``, ``depth`` (H, W) float32
    metres along the optical axis; with ``odometry=True``, ``odometry`` (3,) float32: the
    agent's displacement from its start pose in the start's frame (metres to the right,
    metres forward) and the degrees it has turned to the right, in [-180, 180).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, houses: str | os.PathLike, render_mode: str | None = None,
                 camera: CameraConfig = CameraConfig(), agent: AgentConfig = AgentConfig(),
                 tasks: TaskConfig | None = None, max_steps: int = 500, depth: bool = False,
                 odometry: bool = False, success_reward: float = 2.5, step_penalty: float = 0.01,
                 progress_weight: float = 1.0, sample_attempts: int = 10, cache_houses: int = 4):
        """
        Args:
            houses: a house file (``.jsonl.gz``, ``.jsonl`` or one house in ``.json``); every
                house is checked here, and a bad file is one :class:`InputError` line.
            render_mode: None or ``"rgb_array"`` (:meth:`render` returns the current frame).
            camera: the camera; its ``height`` and ``width`` set the frames' resolution.
            agent: the lattice agent (grid, headings, radius).
            tasks: tasks, targets and success thresholds (default :class:`TaskConfig`).
            max_steps: actions after which an episode is truncated; episodes whose expert path
                is longer are not drawn (as in datagen and the evaluation).
            depth: add ``depth`` to the observations.
            odometry: add ``odometry`` to the observations.
            success_reward: reward of an ``end`` that passes the success test.
            step_penalty: reward subtracted at every step.
            progress_weight: reward per metre of geodesic distance to the goal gained.
            sample_attempts: draws of (house, episode seed) per reset before giving up.
            cache_houses: houses whose scenes, goal sets and oracles are kept in memory.
        """
        check_options(render_mode, max_steps, sample_attempts, cache_houses,
                      success_reward, step_penalty, progress_weight)
        self.house_file = HouseFile.scan(houses)
        self.render_mode = render_mode
        self.tasks = tasks if tasks is not None else TaskConfig()
        self.max_steps, self.sample_attempts = int(max_steps), int(sample_attempts)
        self.success_reward, self.step_penalty = float(success_reward), float(step_penalty)
        self.progress_weight = float(progress_weight)
        self.depth, self.odometry = bool(depth), bool(odometry)
        self.actions = ACTIONS
        self.goals = tuple(self.tasks.goals())
        self.sim = EmbeddedEnv(camera, agent, cache_houses=cache_houses)
        self._contexts: OrderedDict[int, HouseContext] = OrderedDict()
        self._cache_size = int(cache_houses)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.observation_space = observation_space(camera, len(self.goals), self.depth,
                                                   self.odometry)
        self.ctx: HouseContext | None = None
        self.episode: Episode | None = None
        self.oracle: Oracle | None = None
        self.start: Pose | None = None
        self._goal = self._task = 0
        self.steps, self.path_length, self.distance = 0, 0.0, 0.0
        self.collided = self.success = False
        self._over = True

    # ----------------------------------------------------------------------- episodes

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Draw a house and an episode from the environment's generator (seeded by ``seed``)
        and place the agent at its start. Returns (observation, info)."""
        super().reset(seed=seed)
        self.ctx, self.episode = self._draw()
        self.oracle = self.ctx.oracle(self.episode.task, self.episode.target)
        self.start = Pose(*self.ctx.pose(self.episode.start))
        self.sim.reset(self.ctx.record.house, self.start)
        self._goal = self.goals.index(self.episode.goal)
        self._task = TASKS.index(self.episode.task)
        self.steps, self.path_length, self.collided, self.success = 0, 0.0, False, False
        self.distance = self._metres_to_goal()
        self._over = False
        return self._observation(), self._info()

    def _draw(self) -> tuple[HouseContext, Episode]:
        """A house uniformly from the file and an episode from a drawn seed; redrawn (both)
        when the house has no valid episode for that seed."""
        reason = "no attempt"
        for _ in range(self.sample_attempts):
            house = int(self.np_random.integers(len(self.house_file)))
            seed = int(self.np_random.integers(SEED_BOUND))
            ctx = self._context(house)
            ep = sample_episode(ctx, f"{ctx.record.house_id}-{seed}", seed, self.max_steps)
            if not isinstance(ep, str):
                return ctx, ep
            reason = ep
        raise InputError(f"{self.house_file.path}: no episode found in {self.sample_attempts} "
                         f"draws (the last: {reason}); give houses that hold the tasks' "
                         "targets, or raise max_steps or sample_attempts")

    def _context(self, house: int) -> HouseContext:
        """The scene, navigation table, goal sets and oracles of house ``house`` (cached)."""
        if house not in self._contexts:
            record = self.house_file.read([house])[house]
            self._contexts[house] = HouseContext(record, self.sim, self.tasks)
            while len(self._contexts) > self._cache_size:
                self._contexts.popitem(last=False)
        self._contexts.move_to_end(house)
        return self._contexts[house]

    def step(self, action):
        """Apply one action; returns (observation, reward, terminated, truncated, info)."""
        if self._over:
            raise RuntimeError("step() called before reset() or after the episode ended; "
                               "call reset()")
        a = action_index(int(action))
        self.steps += 1
        reward = -self.step_penalty
        terminated = truncated = False
        if a == END:
            self.collided = False
            self.success = self._success_test()
            reward += self.success_reward * self.success
            terminated = True
        else:
            before, previous = self.sim.state, self.distance
            moved = self.sim.step(a).success
            self.collided = a == MOVE_AHEAD and not moved
            if self.sim.state[:2] != before[:2]:
                table = self.ctx.table
                self.path_length += float(table.metres[table.node(before), 0])
            self.distance = self._metres_to_goal()
            reward += self.progress_weight * (previous - self.distance)
            truncated = self.steps >= self.max_steps
        self._over = terminated or truncated
        return self._observation(), float(reward), terminated, truncated, self._info()

    def _success_test(self) -> bool:
        """The task's success test at the current pose (what the evaluation scores)."""
        ep = self.episode
        if ep.task == TASK_OBJECTNAV:
            return objectnav_success(self.sim.visible_objects(), ep.target,
                                     self.tasks.min_pixels, self.tasks.max_distance)
        return roomnav_success(self.sim.current_room(), ep.target)

    def _metres_to_goal(self) -> float:
        """Geodesic metres from the agent's state to the goal set (the oracle's distance;
        weights count 1e-9 grid steps per action, under 1e-6 m on any path)."""
        node = self.ctx.table.node(self.sim.state)
        return float(self.oracle.dist[node]) / MOVE_UNITS * self.sim.agent.grid

    # ----------------------------------------------------------------------- outputs

    def _observation(self) -> dict[str, np.ndarray]:
        obs = self.sim.observation
        out = {"rgb": obs.rgb.copy(), "goal": np.int64(self._goal), "task": np.int64(self._task)}
        if self.depth:
            out["depth"] = obs.depth.astype(np.float32, copy=True)
        if self.odometry:
            out["odometry"] = odometry(self.start, self.sim.pose)
        return out

    def _info(self) -> dict[str, Any]:
        ep = self.episode
        return {
            "success": bool(self.success),
            "shortest_path_length": float(ep.path.metres),
            "path_length": float(self.path_length),
            "distance_to_goal": float(self.distance),
            "steps": int(self.steps),
            "collided": bool(self.collided),
            "expert": int(self.oracle.expert_action(self.sim.state)),
            "task": ep.task,
            "target": ep.target,
            "goal": ep.goal,
            "house_id": ep.house_id,
            "house_index": int(ep.house_index),
            "episode_seed": int(ep.seed),
        }

    def render(self) -> np.ndarray | None:
        """The current (H, W, 3) uint8 frame with ``render_mode="rgb_array"``, else None."""
        if self.render_mode != "rgb_array" or self.sim.observation is None:
            return None
        return self.sim.observation.rgb.copy()

    def close(self) -> None:
        self._contexts.clear()
        self.ctx = self.oracle = None
        self._over = True
        self.sim.close()


def observation_space(camera: CameraConfig, num_goals: int, depth: bool, odometry: bool
                      ) -> spaces.Dict:
    """The ``Dict`` space of :class:`NavEnv`'s observations."""
    hw = (camera.height, camera.width)
    space = {"rgb": spaces.Box(0, 255, (*hw, 3), np.uint8),
             "goal": spaces.Discrete(num_goals), "task": spaces.Discrete(len(TASKS))}
    if depth:
        space["depth"] = spaces.Box(0.0, np.inf, hw, np.float32)
    if odometry:
        space["odometry"] = spaces.Box(np.array([-np.inf, -np.inf, -180.0], np.float32),
                                       np.array([np.inf, np.inf, 180.0], np.float32),
                                       dtype=np.float32)
    return spaces.Dict(space)


def odometry(start: Pose, pose: Pose) -> np.ndarray:
    """(3,) float32: ``pose`` relative to ``start`` in the start's frame: metres to the right,
    metres forward, degrees turned to the right (``rotate_right`` adds), in [-180, 180),
    rounded to :data:`datagen.constants.POSE_DIGITS` decimals like stored poses."""
    dx, dz, yaw = pose.x - start.x, pose.z - start.z, math.radians(start.yaw)
    right = dx * math.cos(yaw) - dz * math.sin(yaw)
    forward = dx * math.sin(yaw) + dz * math.cos(yaw)
    turned = (pose.yaw - start.yaw + 180.0) % 360.0 - 180.0
    return np.array([round(v, POSE_DIGITS) for v in (right, forward, turned)],
                    dtype=np.float32)


def check_options(render_mode, max_steps, sample_attempts, cache_houses, *rewards) -> None:
    """InputError, naming the option and its value, for an option NavEnv cannot use."""
    modes = NavEnv.metadata["render_modes"]
    if render_mode is not None and render_mode not in modes:
        raise InputError(f"render_mode {render_mode!r} is not supported; use None or one of "
                         f"{modes}")
    for name, value in (("max_steps", max_steps), ("sample_attempts", sample_attempts),
                        ("cache_houses", cache_houses)):
        if not isinstance(value, int | np.integer) or value < 1:
            raise InputError(f"{name}: {value!r} must be an integer >= 1")
    names = ("success_reward", "step_penalty", "progress_weight")
    for name, value in zip(names, rewards):
        if not (isinstance(value, int | float) and math.isfinite(value)):
            raise InputError(f"{name}: {value!r} must be a finite number")
