"""Rollouts of a policy on held-out houses: a fixed episode set, batched environments, workers.

The evaluation set is planned from ``(seed, number of houses, episodes)`` alone
(:func:`plan_slots`): slot ``k`` belongs to one house and draws its episode from
:func:`datagen.episodes.sample_episode` with seeds derived from ``(seed, k, attempt)``; an
attempt that yields no valid episode (no reachable goal, expert path longer than the step
limit) is retried with the next attempt seed, up to ``sample_attempts`` times. The policy
plays no part, so every policy meets the same episodes.

Each worker process steps a batch of ``envs_per_worker`` environments in lockstep and calls
``policy.act`` once per step for the whole batch; a slot whose episode ends takes the next
episode of the worker's share. The batch keeps its shape (idle slots are padded), every
per-episode quantity is a pure function of the episode, and outcomes are sorted by slot, so
results are identical for any number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_lib
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from datagen.constants import TASK_OBJECTNAV, TASKS
from datagen.episodes import Episode, HouseContext, sample_episode
from datagen.houses.io import HouseRecord
from datagen.tasks import (
    TaskConfig,
    goal_name,
    objectnav_success,
    roomnav_success,
    within_reach,
)
from datagen.workers import exit_with_parent
from eval.mapper import MapperConfig
from eval.metrics import NOTHING, EpisodeResult, spl
from eval.report import video_name
from sim.camera import CameraConfig
from sim.detect import BOX_FEATURES, ColourDetector, box_target, target_box, target_table
from sim.env import EmbeddedEnv, Env, Pose, make_env
from sim.lattice import ACTIONS, END, MOVE_AHEAD, AgentConfig

State = tuple[int, int, int]

ACTION_STREAM = 0x5A3F
"""Tags the action-sampling seed sequence apart from the episode seeds (seed, index, attempt)."""


# --------------------------------------------------------------------------- the episode set


@dataclass(frozen=True)
class EpisodeSlot:
    """One planned evaluation episode: its index, the house it is drawn in, its seeds."""

    index: int
    house: int
    """Position of the house in the house file (0-based)."""
    seed: int
    """The evaluation seed; attempt ``a`` samples from :func:`episode_seed` (seed, index, a)."""


def episode_seed(seed: int, index: int, attempt: int) -> int:
    """A 32-bit seed for one sampling attempt of one slot (independent streams)."""
    return int(np.random.SeedSequence([seed, index, attempt]).generate_state(1)[0])


def plan_slots(num_houses: int, episodes: int, seed: int) -> list[EpisodeSlot]:
    """``episodes`` slots spread evenly over the houses, house-major (slots of a house are
    consecutive, so a worker's share touches few houses)."""
    per_house = [episodes // num_houses + (h < episodes % num_houses) for h in range(num_houses)]
    houses = [h for h, n in enumerate(per_house) for _ in range(n)]
    return [EpisodeSlot(k, h, seed) for k, h in enumerate(houses)]


def video_slots(episodes: int, videos: int) -> frozenset[int]:
    """Slots whose episodes are filmed: ``videos`` of them, evenly spread over the set."""
    if videos <= 0 or episodes <= 0:
        return frozenset()
    return frozenset(int(k) for k in np.linspace(0, episodes - 1, min(videos, episodes)).round())


# --------------------------------------------------------------------------- settings


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
    ``PolicyConfig.room_anchors``; :func:`sim.detect.box_target`)."""
    mapper: MapperConfig | None = None
    """The map agent's settings (``--policy mapper``)."""


@dataclass(frozen=True)
class PolicySpec:
    """How a worker builds its copy of the policy: a checkpoint or a baseline name."""

    checkpoint: str | None = None
    baseline: str | None = None
    ensemble: tuple[str, ...] = ()
    """More checkpoints that act with ``checkpoint`` as one policy
    (:class:`training.policy.PolicyEnsemble`)."""
    seed: int = 0
    sample: bool = False
    """Draw a checkpoint policy's actions from its softmax, per episode from
    :func:`action_rng` (else argmax)."""
    blocked_input: bool = True
    """Pass the policy ``collided`` (its last move was blocked); False withholds it."""
    end_threshold: float | None = None
    """Take ``end`` only at this probability or more, else the most probable other action."""
    end_threshold_by_task: dict[str, float] | None = None
    """Per-task thresholds that replace ``end_threshold`` for that task's episodes."""
    memory_steps: int | None = None
    """Clear the policy's recurrent state every this many steps of an episode (``forget``)."""

    @property
    def name(self) -> str:
        return self.baseline or str(self.checkpoint)

    def build(self, settings: RolloutSettings | None = None):
        if self.checkpoint is not None:
            from training.policy import PolicyEnsemble, load_policy

            policy, _ = load_policy(self.checkpoint)
            if not self.ensemble:
                return policy
            return PolicyEnsemble([policy, *(load_policy(p)[0] for p in self.ensemble)])
        from eval.baselines import make_baseline

        return make_baseline(self.baseline, len(ACTIONS), self.seed, settings)


@dataclass(frozen=True)
class Outcome:
    """What became of one slot: a result, or the reason it was skipped."""

    index: int
    result: EpisodeResult | None = None
    skipped: str | None = None
    video: str | None = None
    """Path of the episode video relative to the run directory, if filmed."""


# --------------------------------------------------------------------------- one episode


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


class EpisodeVideo:
    """Frames of one episode: the egocentric view beside a top-down map with the path so far."""

    def __init__(self, path: Path, ctx: HouseContext):
        from eval.report import VideoWriter  # PyAV is imported only when filming

        self.writer, self.ctx = VideoWriter(path), ctx
        self.trail: list[tuple[float, float]] = []

    def add(self, rgb: np.ndarray, pose: Pose) -> None:
        from eval.report import video_frame
        from sim.topdown import topdown_image

        if not self.trail or self.trail[-1] != (pose.x, pose.z):
            self.trail.append((pose.x, pose.z))
        top = topdown_image(self.ctx.scene, self.ctx.lattice, path=self.trail, pose=pose)
        self.writer.add(video_frame(rgb, top))

    def close(self) -> None:
        self.writer.close()


class EpisodeRun:
    """One episode in progress in one environment."""

    def __init__(self, env: Env, ctx: HouseContext, episode: Episode, slot: EpisodeSlot,
                 settings: RolloutSettings):
        self.env, self.ctx, self.episode, self.slot = env, ctx, episode, slot
        self.oracle = ctx.oracle(episode.task, episode.target)
        self.goal = settings.goals.index(goal_name(episode.task, episode.target))
        self.steps, self.path_length, self.collisions = 0, 0.0, 0
        self.first, self.collided, self.reached_goal = True, False, False
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
            self.video = EpisodeVideo(Path(settings.run_dir) / self.video_name, ctx)
            self.video.add(self.rgb, env.pose)

    def _lattice_state(self) -> State:
        pose, lat = self.env.pose, self.ctx.lattice
        return (*lat.cell_of(pose.x, pose.z), lat.heading_of(pose.yaw))

    def expert_action(self) -> int:
        return self.oracle.expert_action(self.state)

    def privileged(self):
        """The episode's start state and the oracle's moves per cell (a probe's input)."""
        if self._privileged is None:
            from training.explorer import Privileged, oracle_cell_moves

            self._privileged = Privileged(self.start_state, oracle_cell_moves(self))
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


# --------------------------------------------------------------------------- one worker


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


def wants_boxes(policy) -> bool:
    """Whether a policy takes the target's box (``PolicyConfig.target_box``)."""
    return bool(getattr(getattr(policy, "cfg", None), "target_box", False))


def batch_obs(runs: list[EpisodeRun | None], camera: CameraConfig, expert: bool,
              boxes: bool = False, depth: bool = False, ids: bool = False,
              oracle: bool = False) -> dict:
    """The policy's input for one step; idle slots are padded (black frame, goal 0, no box).
    ``expert`` adds the oracle's actions, ``boxes`` the target's box (``target_box`` (B, 6)),
    ``depth`` the depth frames (``depth`` (B, H, W) float32 metres; idle slots zeros), ``ids``
    the simulator's instance ids (``ids`` (B, H, W) int32, 0 = structure) with each row's
    object types (``object_types``: a list of B lists, id k + 1 is object k; privileged),
    ``oracle`` each row's start state and oracle distances (``privileged``: a list of B
    :class:`training.explorer.Privileged` or None; a probe's)."""
    blank = np.zeros((camera.height, camera.width, 3), np.uint8)
    live = [r is not None for r in runs]
    obs = {
        "rgb": torch.from_numpy(np.stack([r.rgb if r else blank for r in runs])),  # (B,H,W,3)
        "goal": torch.tensor([r.goal if r else 0 for r in runs], dtype=torch.long),  # (B,)
        "first": torch.tensor([r.first if r else True for r in runs], dtype=torch.bool),
        "seed": torch.tensor([r.episode.seed if r else 0 for r in runs], dtype=torch.long),
        "collided": torch.tensor([r.collided if r else False for r in runs], dtype=torch.bool),
    }
    if boxes:
        none = np.zeros(BOX_FEATURES, np.float32)
        obs["target_box"] = torch.from_numpy(np.stack([r.target_box() if r else none
                                                       for r in runs]))  # (B, 6)
    if depth:
        flat = np.zeros((camera.height, camera.width), np.float32)
        obs["depth"] = torch.from_numpy(np.stack([r.env.observation.depth if r else flat
                                                  for r in runs]))  # (B, H, W)
    if ids:
        none = np.zeros((camera.height, camera.width), np.int32)
        obs["ids"] = torch.from_numpy(np.stack([r.env.observation.ids if r else none
                                                for r in runs]))  # (B, H, W)
        obs["object_types"] = [r.ctx.scene.boxes.object_type if r else [] for r in runs]
    if oracle:
        obs["privileged"] = [r.privileged() if r else None for r in runs]
    if expert:
        obs["expert"] = torch.tensor([r.expert_action() if ok else END
                                      for r, ok in zip(runs, live)], dtype=torch.long)
    return obs


def lockstep(houses: dict[int, HouseRecord], slots: list[EpisodeSlot], settings: RolloutSettings,
             act: Callable[[list[EpisodeRun | None]], list[int]],
             finished: Callable[[EpisodeRun, EpisodeResult], None],
             skipped: Callable[[EpisodeSlot, str], None],
             started: Callable[[EpisodeRun], None] = lambda run: None) -> None:
    """Run ``slots`` on ``settings.envs_per_worker`` environments stepped in lockstep.

    A free row starts the next slot (``started`` sees the new run; a slot without a valid
    episode goes to ``skipped`` with the reason); ``act`` returns the action each row executes
    (anything for empty rows); an ended episode goes to ``finished`` and its row takes the next
    slot. The caller resets its policy for the batch first.
    """
    contexts = HouseContexts(houses, settings)
    envs = [make_env(settings.backend, camera=settings.camera, agent=settings.agent)
            for _ in range(settings.envs_per_worker)]
    todo = deque(slots)
    runs: list[EpisodeRun | None] = [None] * len(envs)

    def refill(b: int) -> None:
        runs[b] = None
        while todo and runs[b] is None:
            slot = todo.popleft()
            run = contexts.start(slot, envs[b])
            if isinstance(run, str):
                skipped(slot, run)
            else:
                started(run)
                runs[b] = run

    try:
        for b in range(len(envs)):
            refill(b)
        with torch.no_grad():
            while any(r is not None for r in runs):
                actions = act(runs)
                for b, run in enumerate(runs):
                    result = None if run is None else run.advance(int(actions[b]), settings)
                    if result is not None:
                        finished(run, result)
                        refill(b)
    finally:
        for env in envs:
            env.close()


def run_slots(spec: PolicySpec, houses: dict[int, HouseRecord], slots: list[EpisodeSlot],
              settings: RolloutSettings, tick: Callable[[int], None] = lambda n: None
              ) -> list[Outcome]:
    """Evaluate ``spec``'s policy on ``slots`` with one batch of environments (one process)."""
    policy = spec.build(settings)
    expert, boxes = bool(getattr(policy, "uses_expert", False)), wants_boxes(policy)
    depth = bool(getattr(policy, "uses_depth", False))
    ids = bool(getattr(policy, "uses_ids", False))
    oracle = bool(getattr(policy, "uses_oracle", False))
    outcomes: list[Outcome] = []

    def started(run: EpisodeRun) -> None:
        if spec.sample:
            run.rng = action_rng(spec.seed, run.slot.index)

    def act(runs: list[EpisodeRun | None]) -> list[int]:
        obs = batch_obs(runs, settings.camera, expert, boxes, depth, ids, oracle)
        if not spec.blocked_input:
            del obs["collided"]
        if spec.memory_steps is not None:
            obs["forget"] = torch.tensor([r is not None and r.steps > 0
                                          and r.steps % spec.memory_steps == 0 for r in runs])
        return policy_actions(policy, obs, runs, spec.end_threshold, spec.end_threshold_by_task)

    def finished(run: EpisodeRun, result: EpisodeResult) -> None:
        video = run.video_name if run.video is not None else None
        outcomes.append(Outcome(run.slot.index, result=result, video=video))
        tick(1)

    def skipped(slot: EpisodeSlot, reason: str) -> None:
        outcomes.append(Outcome(slot.index, skipped=reason))
        tick(1)

    policy.reset(settings.envs_per_worker)
    lockstep(houses, slots, settings, act, finished, skipped, started)
    return sorted(outcomes, key=lambda o: o.index)


def action_rng(seed: int, index: int, *stream: int) -> np.random.Generator:
    """The generator episode ``index`` samples its policy actions from (``PolicySpec.sample``):
    a function of the episode alone, so results do not depend on workers or batch rows
    (``stream`` keeps other users' draws apart, e.g. a DAgger round)."""
    return np.random.default_rng([seed, index, *stream, ACTION_STREAM])


def stopping_rule_error(end_threshold: float | None, by_task: dict[str, float] | None,
                        sample: bool) -> str | None:
    """Why ``--end_threshold`` / ``--end_threshold_by_task`` (the stopping rule of
    :func:`policy_actions`) cannot be used as given, or None: each threshold in (0, 1], tasks
    known, and argmax actions (no ``sample``)."""
    if end_threshold is not None and not 0 < end_threshold <= 1:
        return f"--end_threshold {end_threshold} must be in (0, 1]"
    for task, value in (by_task or {}).items():
        if task not in TASKS:
            return f"--end_threshold_by_task: unknown task {task!r}; use {' or '.join(TASKS)}"
        if not 0 < value <= 1:
            return f"--end_threshold_by_task: {task}: {value} must be in (0, 1]"
    if sample and (end_threshold is not None or by_task):
        return "--end_threshold applies to argmax actions; drop --sample"
    return None


def policy_actions(policy, obs: dict, runs: list, end_threshold: float | None = None,
                   by_task: dict[str, float] | None = None) -> list[int]:
    """One action per row: drawn from the policy's softmax with the run's generator where the
    run has one (``EpisodeRun.rng``), else the argmax; with ``end_threshold``, an argmax
    ``end`` below that probability becomes the most probable other action (``by_task``: a
    threshold per task, in place of ``end_threshold`` for that task's runs). The actions
    taken are fed back to the policy as its previous actions."""
    rngs = [run.rng if run is not None else None for run in runs]
    thresholds = [end_threshold if run is None or not by_task
                  else by_task.get(run.episode.task, end_threshold) for run in runs]
    if all(t is None for t in thresholds) and not any(rng is not None for rng in rngs):
        return policy.act(obs).tolist()
    actions, logits = policy.act(obs, return_logits=True)
    probs = logits.double().softmax(-1).cpu().numpy()  # (B, A)
    out = actions.tolist()
    for b, (rng, threshold) in enumerate(zip(rngs, thresholds)):
        if rng is not None:
            out[b] = int(rng.choice(len(probs[b]), p=probs[b] / probs[b].sum()))
        elif threshold is not None and out[b] == END and probs[b][END] < threshold:
            others = probs[b].copy()
            others[END] = -1.0
            out[b] = int(np.argmax(others))
    policy.executed(out)
    return out


# --------------------------------------------------------------------------- workers


def _worker_main(spec: PolicySpec, houses: dict[int, HouseRecord], slots: list[EpisodeSlot],
                 settings: RolloutSettings, worker: int, channel) -> None:
    exit_with_parent()
    torch.set_num_threads(1)  # one process per core
    try:
        outcomes = run_slots(spec, houses, slots, settings, lambda n: channel.put(("tick", n)))
        channel.put(("done", worker, outcomes))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        channel.put(("error", worker, traceback.format_exc()))


class WorkerError(RuntimeError):
    """A rollout worker failed; the message carries its traceback."""


def _collect(procs: list, channel, tick: Callable[[int], None]) -> list[Outcome]:
    pending, outcomes = set(range(len(procs))), []
    while pending:
        try:
            msg = channel.get(timeout=1.0)
        except queue_lib.Empty:
            dead = [w for w in pending if not procs[w].is_alive()]
            if dead:
                raise WorkerError(f"rollout worker {dead[0]} died (exit code "
                                  f"{procs[dead[0]].exitcode}) without a result") from None
            continue
        if msg[0] == "tick":
            tick(msg[1])
        elif msg[0] == "done":
            outcomes += msg[2]
            pending.discard(msg[1])
        else:
            raise WorkerError(f"rollout worker {msg[1]} failed:\n{msg[2]}")
    return outcomes


def rollout(spec: PolicySpec, houses: dict[int, HouseRecord], slots: list[EpisodeSlot],
            settings: RolloutSettings, workers: int = 1,
            tick: Callable[[int], None] = lambda n: None) -> list[Outcome]:
    """Outcomes of every slot, in slot order, with ``workers`` processes (1: in this one)."""
    bounds = np.linspace(0, len(slots), workers + 1).round().astype(int)
    shares = [slots[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if len(shares) <= 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return run_slots(spec, houses, slots, settings, tick)
        finally:
            torch.set_num_threads(threads)
    ctx = mp.get_context("forkserver")  # a fresh server (no torch threads) forks the workers
    ctx.set_forkserver_preload(["eval.rollout", "eval.baselines", "training.policy"])
    channel = ctx.Queue()
    procs = []
    for w, share in enumerate(shares):
        mine = {s.house: houses[s.house] for s in share}
        procs.append(ctx.Process(target=_worker_main, args=(spec, mine, share, settings, w,
                                                            channel), daemon=True))
        procs[-1].start()
    try:
        outcomes = _collect(procs, channel, tick)
    finally:
        for p in procs:
            if p.is_alive():
                p.join(timeout=5.0)
            if p.is_alive():
                p.terminate()
    return sorted(outcomes, key=lambda o: o.index)

