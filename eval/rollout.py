"""Rollouts of a policy on held-out houses: a fixed episode set, batched environments, workers.

The evaluation set is planned from ``(seed, number of houses, episodes)`` alone
(:func:`eval.slots.plan_slots`): slot ``k`` belongs to one house and draws its episode from
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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from agents.baselines import make_baseline
from agents.ensemble import PolicyEnsemble
from agents.map_agent import MapPolicy
from agents.mapper import MapperConfig
from agents.release import load_any
from common.workers import exit_with_parent, worker_count
from datagen.constants import TASKS
from eval.episode import EpisodeRun, HouseContexts, RolloutSettings
from eval.metrics import EpisodeResult
from eval.probes import OracleExplorer, ProbeConfig
from eval.slots import EpisodeSlot
from sim.camera import CameraConfig
from sim.detect import BOX_FEATURES
from sim.env import make_env
from sim.house import HouseRecord
from sim.lattice import ACTIONS, END

ACTION_STREAM = 0x5A3F
"""Tags the action-sampling seed sequence apart from the episode seeds (seed, index, attempt)."""


# --------------------------------------------------------------------------- what to run


@dataclass(frozen=True)
class PolicySpec:
    """How a worker builds its copy of the policy: a checkpoint (a file or a release folder) or
    a baseline name."""

    checkpoint: str | None = None
    baseline: str | None = None
    ensemble: tuple[str, ...] = ()
    """More checkpoints that act with ``checkpoint`` as one policy
    (:class:`agents.ensemble.PolicyEnsemble`)."""
    seed: int = 0
    sample: bool = False
    """Draw a checkpoint policy's actions from its softmax, per episode from
    :func:`action_rng` (else argmax)."""
    end_threshold: float | None = None
    """Take ``end`` only at this probability or more, else the most probable other action."""
    end_threshold_by_task: dict[str, float] | None = None
    """Per-task thresholds that replace ``end_threshold`` for that task's episodes."""
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    """Research probes (:class:`eval.probes.ProbeConfig`)."""

    @property
    def name(self) -> str:
        return self.baseline or str(self.checkpoint)

    def build(self, settings: RolloutSettings | None = None):
        """The policy: the checkpoint's (an ensemble with ``ensemble``), the map agent of
        ``settings`` with this spec's probes, or a baseline of :mod:`agents.baselines`."""
        if self.checkpoint is not None:
            policy, _ = load_any(self.checkpoint)
            if not self.ensemble:
                return policy
            return PolicyEnsemble([policy, *(load_any(p)[0] for p in self.ensemble)])
        if self.baseline == "mapper":
            return map_agent(settings, self.probe)
        return make_baseline(self.baseline, len(ACTIONS), self.seed)


def map_agent(settings: RolloutSettings, probe: ProbeConfig):
    """The map agent of the rollout ``settings`` (camera, agent, tasks, goals, detector, its
    ``MapperConfig``), with the map agent's research probes of ``probe`` switched in."""
    if settings is None or settings.detector is None:
        raise ValueError("the map agent needs rollout settings with a detector")
    return MapPolicy(settings.camera, settings.agent, settings.tasks, settings.goals,
                     settings.detector, settings.mapper or MapperConfig(),
                     explorer=OracleExplorer() if probe.oracle_explorer else None,
                     forget_steps=probe.map_forget_steps,
                     simulator_detections=probe.simulator_detections)


@dataclass(frozen=True)
class Outcome:
    """What became of one slot: a result, or the reason it was skipped."""

    index: int
    result: EpisodeResult | None = None
    skipped: str | None = None
    video: str | None = None
    """Path of the episode video relative to the run directory, if filmed."""


# --------------------------------------------------------------------------- one worker


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
    :class:`eval.probes.Privileged` or None; a probe's)."""
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
        if not spec.probe.blocked_input:
            del obs["collided"]
        memory = spec.probe.memory_steps
        if memory is not None:
            obs["forget"] = torch.tensor([r is not None and r.steps > 0
                                          and r.steps % memory == 0 for r in runs])
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
    """Outcomes of every slot, in slot order, with ``workers`` processes (1: in this one;
    0: one per core)."""
    workers = worker_count(workers)
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
    ctx.set_forkserver_preload(["eval.rollout"])
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
