"""One evaluation episode in one environment (:class:`EpisodeRun`): its start, each step's
bookkeeping (path length, collisions, whether it stood in a goal state), its final success
test and its video; and the per-house contexts (goal sets, oracles) episodes are drawn from
(:class:`HouseContexts`)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from agents.detector import ColourDetector
from agents.mapper import MapperConfig
from datagen.constants import TASK_OBJECTNAV
from datagen.episodes import Episode, HouseContext, sample_episode
from datagen.tasks import (
    TaskConfig,
    box_target,
    goal_name,
    objectnav_success,
    roomnav_success,
    within_reach,
)
from eval.metrics import NOTHING, EpisodeResult, spl
from eval.probes import Privileged, oracle_cell_moves
from eval.slots import EpisodeSlot, episode_seed
from eval.video import EpisodeVideo, video_name
from sim.appearance import APPEARANCE_STREAM, Appearance, AppearanceConfig, draw_appearance
from sim.camera import CameraConfig
from sim.detect import target_box, target_table
from sim.env import EmbeddedEnv
from sim.house import HouseRecord
from sim.interface import Env, Pose
from sim.lattice import END, MOVE_AHEAD, AgentConfig

State = tuple[int, int, int]


@dataclass(frozen=True)
class RolloutSettings:
    """What every worker needs besides the policy and its episodes."""

    camera: CameraConfig = CameraConfig()
    agent: AgentConfig = AgentConfig()
    tasks: TaskConfig = field(default_factory=TaskConfig)
    backend: str = "embedded"
    max_steps: int = 500
    envs_per_worker: int = 4
    sample_attempts: int = 10
    goals: tuple[str, ...] = ()
    """The policy's goal vocabulary: ``obs["goal"]`` indexes into it."""
    run_dir: str | None = None
    """Run directory the episode videos go under (None: no videos)."""
    video_slots: frozenset[int] = frozenset()
    detector: ColourDetector | None = None
    """Where the target's box comes from: this detector reading the frame, else the
    simulator's instance ids (:meth:`EpisodeRun.target_box`)."""
    room_anchors: dict[str, str] = field(default_factory=dict)
    """The object type boxed for each RoomNav room type (the policy's
    ``PolicyConfig.room_anchors``; :func:`datagen.tasks.box_target`)."""
    mapper: MapperConfig | None = None
    """The map agent's settings (``--policy mapper``)."""
    appearance: AppearanceConfig | None = None
    """``--probe.appearance``'s: each episode rendered under a look drawn from it by
    :func:`episode_look` (None: the houses' own)."""


def episode_look(config: AppearanceConfig, slot: EpisodeSlot) -> Appearance:
    """The look ``--probe.appearance`` renders an episode under: a pure function of the
    evaluation seed and the episode's index, so every policy meets the same looks."""
    return draw_appearance(config, np.random.default_rng([slot.seed, slot.index,
                                                           APPEARANCE_STREAM]))


class FinalView(NamedTuple):
    """What the final frame shows (:func:`final_test`); the last three are None for RoomNav."""

    success: bool
    """The task's success test at the final pose (the datagen rule)."""
    target_distance: float | None
    """Metres to the nearest target instance in view with at least ``min_pixels``, at any
    distance (None if there is none)."""
    target_pixels: int | None
    """The most pixels of any one target instance in the frame."""
    stopped_at: str | None
    """The type of the object with the most pixels among those within ``max_distance`` with at
    least ``min_pixels``; :data:`eval.metrics.NOTHING` if none."""


def final_test(env: Env, task: str, target: str, tasks: TaskConfig) -> FinalView:
    """The success test and, for ObjectNav, what the agent stopped in front of."""
    if task != TASK_OBJECTNAV:
        return FinalView(roomnav_success(env.current_room(), target), None, None, None)
    visible = env.visible_objects()
    targets = [v for v in visible.values() if v.object_type == target]
    seen = [v.distance for v in targets if v.pixels >= tasks.min_pixels]
    near = within_reach(visible, tasks.min_pixels, tasks.max_distance)
    front = max(near, key=lambda v: v.pixels).object_type if near else NOTHING
    return FinalView(objectnav_success(visible, target, tasks.min_pixels, tasks.max_distance),
                     min(seen) if seen else None, max((v.pixels for v in targets), default=0),
                     front)


class EpisodeRun:
    """One episode in progress in one environment."""

    def __init__(self, env: Env, ctx: HouseContext, episode: Episode, slot: EpisodeSlot,
                 settings: RolloutSettings):
        self.env, self.ctx, self.episode, self.slot = env, ctx, episode, slot
        self.oracle = ctx.oracle(episode.task, episode.target)
        self.goal = settings.goals.index(goal_name(episode.task, episode.target))
        self.steps, self.path_length, self.collisions = 0, 0.0, 0
        self.first, self.collided, self.reached_goal = True, False, False
        if settings.appearance is not None:
            env.appearance = episode_look(settings.appearance, slot)
        self.rgb = env.reset(ctx.record.house, Pose(*ctx.pose(episode.start))).rgb
        self.state = self.start_state = self._lattice_state()
        self._privileged = None
        self.boxed_type = box_target(episode.task, episode.target, settings.room_anchors)
        self.is_target = target_table(ctx.scene.boxes.object_type, self.boxed_type)
        self.detector = settings.detector
        self.video = None
        self.rng: np.random.Generator | None = None
        """Action sampling generator (``PolicySpec.sample``), set by the worker."""
        if settings.run_dir is not None and slot.index in settings.video_slots:
            self.video_name = video_name(slot.index)
            self.video = EpisodeVideo(Path(settings.run_dir) / self.video_name, ctx,
                                      episode.task, episode.target, self.oracle.goal)
            self.video.add(self.rgb, env.pose)

    def _lattice_state(self) -> State:
        pose, lat = self.env.pose, self.ctx.lattice
        return (*lat.cell_of(pose.x, pose.z), lat.heading_of(pose.yaw))

    def expert_action(self) -> int:
        return self.oracle.expert_action(self.state)

    def privileged(self):
        """The episode's start state and the oracle's moves per cell (a probe's input)."""
        if self._privileged is None:
            moves = oracle_cell_moves(self.ctx.table, self.oracle)
            self._privileged = Privileged(self.start_state, moves)
        return self._privileged

    def target_box(self) -> np.ndarray:
        """(6,) the target's box in the current frame (:func:`sim.detect.target_box`): the
        detector's from the RGB frame where the settings give one, else from the ids."""
        if self.detector is not None:
            return self.detector.box(self.rgb, self.boxed_type)
        return target_box(self.env.observation.ids, self.is_target)

    def advance(self, action: int, settings: RolloutSettings) -> EpisodeResult | None:
        """Apply one action; the episode's result when it is over (``end`` or the limit)."""
        self.steps += 1
        self.first = False
        if self.video is not None:
            self.video.act(action)
        if action == END:
            return self._finish(settings, ended=True)
        before = self.state
        result = self.env.step(action)
        self.rgb, self.state = result.observation.rgb, self._lattice_state()
        self.reached_goal = self.reached_goal or self.oracle.is_goal(self.state)
        self.collided = action == MOVE_AHEAD and not result.success
        self.collisions += self.collided
        if self.state[:2] != before[:2]:
            self.path_length += float(self.ctx.table.metres[self.ctx.table.node(before), 0])
        if self.video is not None:
            self.video.add(self.rgb, self.env.pose)
        if self.steps >= settings.max_steps:
            return self._finish(settings, ended=False)
        return None

    def _finish(self, settings: RolloutSettings, ended: bool) -> EpisodeResult:
        ep = self.episode
        view = final_test(self.env, ep.task, ep.target, settings.tasks)
        success = ended and view.success
        if self.video is not None:
            self.video.close()
        shortest = float(ep.path.metres)
        return EpisodeResult(
            episode=self.slot.index, house_id=ep.house_id, task=ep.task, target=ep.target,
            success=bool(success), spl=spl(success, shortest, self.path_length),
            steps=self.steps, path_length=self.path_length, shortest_length=shortest,
            final_distance=float(self.oracle.path(self.state).metres),
            collisions=int(self.collisions), seed=ep.seed, num_rooms=len(self.ctx.scene.rooms),
            reached_goal=bool(self.reached_goal or success),
            target_in_view=None if ep.task != TASK_OBJECTNAV else view.target_distance is not None,
            target_view_distance=view.target_distance, target_pixels=view.target_pixels,
            stopped_at=view.stopped_at)


class HouseContexts:
    """Per-house contexts (goal sets, oracles) of the embedded world, least recently used."""

    def __init__(self, houses: dict[int, HouseRecord], settings: RolloutSettings, size: int = 4):
        self.houses, self.settings, self.size = houses, settings, size
        self.env = EmbeddedEnv(settings.camera, settings.agent, cache_houses=size)
        self._cache: OrderedDict[int, HouseContext] = OrderedDict()

    def get(self, house: int) -> HouseContext:
        if house not in self._cache:
            self._cache[house] = HouseContext(self.houses[house], self.env, self.settings.tasks)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(house)
        return self._cache[house]

    def sample(self, slot: EpisodeSlot) -> Episode | str:
        """The slot's episode (the first valid attempt), or the last attempt's skip reason."""
        ctx, reason = self.get(slot.house), "no_attempt"
        for attempt in range(self.settings.sample_attempts):
            seed = episode_seed(slot.seed, slot.index, attempt)
            ep = sample_episode(ctx, f"eval-{slot.index:05d}", seed, self.settings.max_steps)
            if not isinstance(ep, str):
                return ep
            reason = ep
        return reason

    def start(self, slot: EpisodeSlot, env: Env) -> EpisodeRun | str:
        """The slot's episode started in ``env``, or why the slot is skipped (including a goal
        the policy has no embedding for)."""
        ep = self.sample(slot)
        if isinstance(ep, str):
            return ep
        if ep.goal not in self.settings.goals:
            return "goal_not_in_policy_vocabulary"
        return EpisodeRun(env, self.get(slot.house), ep, slot, self.settings)
