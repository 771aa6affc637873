"""What ``spoc-eval run`` evaluates: :class:`EvalConfig`, checked in one place
(:func:`validate_config`), with the bad option and its value in the message."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from agents.baselines import BASELINES
from agents.mapper import MapperConfig
from common.errors import InputError
from common.workers import check_workers
from datagen.tasks import TaskConfig
from eval.probes import ProbeConfig
from eval.rollout import stopping_rule_error
from sim.camera import CameraConfig
from sim.lattice import AgentConfig

BACKENDS = ("embedded", "ai2thor")
POLICIES = (*BASELINES, "mapper")
"""What ``--policy`` takes: the baselines of :mod:`agents.baselines` and the map agent."""


class EvalInputError(InputError):
    """Input the evaluation cannot use; the message says which and what to do."""


@dataclass
class EvalConfig:
    """Evaluate a policy (a checkpoint or a baseline) on a fixed, seeded set of episodes."""

    houses: str = "data/houses/val.jsonl.gz"
    """House file of held-out houses (.json, .jsonl, .jsonl.gz); never the training split."""
    out: str = "runs/eval/default"
    """Run directory: eval_info.json, report.md, report.html, plots, videos/."""
    checkpoint: str | None = None
    """A spoc-train checkpoint (.ckpt) or a release folder (``spoc-eval export``, e.g.
    ``models/best``: it acts as its evaluation was measured, from its deploy.json); give this
    or --policy."""
    release_defaults: bool = True
    """With a release folder as --checkpoint: take --end_threshold, --end_threshold_by_task,
    --sample and --detector from its deploy.json where the command line leaves them unset (a
    value given here wins, and the run records it under ``run.release.differs``); false: act
    as the command line alone says."""
    ensemble: list[str] | None = None
    """More checkpoints that act with --checkpoint as one policy, e.g.
    ``--ensemble '[B.ckpt, C.ckpt]'``: each step takes the mean of their action probabilities
    (each keeps its own memory and is told the action taken). They must share its goals,
    camera, agent and inputs; houses in any member's training data are refused."""
    policy: str | None = None
    """A baseline instead of a checkpoint: oracle, random, forward or mapper (the map agent
    of :mod:`agents.map_agent`: RGB-D, odometry and ``--detector``; no learning)."""
    dataset: str | None = None
    """A dataset directory whose info.json sets camera, agent, tasks and goals (so a baseline
    meets the same episodes as a policy trained on that dataset)."""
    episodes: int = 200
    """Number of evaluation episodes (spread evenly over the houses)."""
    seed: int = 0
    """Seed of the episode set (the same for every policy) and of the random baseline."""
    workers: int = 1
    """Worker processes: 1 works in this process, 0 starts one per CPU core; results do not
    depend on it."""
    envs_per_worker: int = 4
    """Environments each worker steps in lockstep (one policy call per step for all)."""
    max_steps: int = 500
    """Episode step limit (SPOC uses 600); an episode that does not call end by then fails."""
    backend: str = "embedded"
    """Simulator backend: embedded or ai2thor."""
    videos: int = 3
    """Episodes filmed for the report, chosen after the run from how they ended (successes,
    ended away from the goal, timed out, in turn) and replayed with the video on; 0 for none."""
    sample_attempts: int = 10
    """Seeds tried per episode slot before it is reported as skipped."""
    sample: bool = False
    """Checkpoints only: draw each action from the policy's softmax (seeded per episode by
    ``seed`` and the episode index, so results do not depend on workers) instead of argmax."""
    end_threshold: float | None = None
    """Checkpoints only: take ``end`` only when the policy gives it at least this probability,
    else its most probable other action (None: argmax, as trained)."""
    end_threshold_by_task: dict[str, float] | None = None
    """Checkpoints only: a threshold per task in place of ``end_threshold`` for that task's
    episodes, e.g. ``'{roomnav: 0.7}'`` beside ``--end_threshold 0.9``."""
    detector: str | None = None
    """Checkpoints trained with the target's box: a detector (``spoc-detector fit``) whose
    box, read from the RGB frame, replaces the simulator's (None: the simulator's). Required
    by ``--policy mapper``, which finds its targets with it."""
    mapper: MapperConfig | None = None
    """``--policy mapper`` only: its settings, e.g. ``--mapper.scan_spacing 2.0`` or
    ``--mapper.room_anchors '{Kitchen: [Fridge]}'`` (None: the defaults of
    :class:`agents.mapper.MapperConfig`)."""
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    """Research probes (:class:`eval.probes.ProbeConfig`), e.g. ``--probe.memory_steps 32``;
    all off by default. A run with a probe on measures a part of the agent; it is not a
    deployable result."""
    progress: bool = True
    """Show a progress bar."""
    camera: CameraConfig | None = None
    """Camera; default: the checkpoint's training camera, else the simulator default."""
    agent: AgentConfig | None = None
    """Agent lattice; default: the checkpoint's training agent, else the default."""
    tasks: TaskConfig | None = None
    """Tasks, targets and success thresholds; default: the checkpoint's dataset's, else the
    defaults. Baselines meet a checkpoint's episode set only with its camera and tasks."""


# --------------------------------------------------------------------------- validation


def validate_config(cfg: EvalConfig) -> None:
    """Raise EvalInputError naming the first bad option and its value."""
    if (cfg.checkpoint is None) == (cfg.policy is None):
        raise EvalInputError("give exactly one of --checkpoint CKPT or --policy "
                             f"{{{','.join(POLICIES)}}}")
    if cfg.policy is not None and cfg.policy not in POLICIES:
        raise EvalInputError(f"--policy {cfg.policy!r} is unknown; use one of "
                             f"{', '.join(POLICIES)}")
    check_workers(cfg.workers)
    for name in ("episodes", "envs_per_worker", "max_steps", "sample_attempts"):
        if getattr(cfg, name) < 1:
            raise EvalInputError(f"--{name} {getattr(cfg, name)} must be at least 1")
    if cfg.seed < 0:
        raise EvalInputError(f"--seed {cfg.seed} must be >= 0")
    if cfg.backend not in BACKENDS:
        raise EvalInputError(f"--backend {cfg.backend!r} is unknown; use one of "
                             f"{', '.join(BACKENDS)}")
    if cfg.videos < 0:
        raise EvalInputError(f"--videos {cfg.videos} must be >= 0")
    stopping_rule = cfg.end_threshold is not None or bool(cfg.end_threshold_by_task)
    if (cfg.sample or stopping_rule) and cfg.checkpoint is None:
        raise EvalInputError("--sample and --end_threshold apply to a --checkpoint policy; "
                             "baselines act as they are defined, so drop them")
    error = stopping_rule_error(cfg.end_threshold, cfg.end_threshold_by_task, cfg.sample)
    if error:
        raise EvalInputError(error)
    if cfg.ensemble and cfg.checkpoint is None:
        raise EvalInputError("--ensemble adds checkpoints to a --checkpoint policy; give "
                             "--checkpoint too (baselines cannot join an ensemble)")
    if cfg.policy == "mapper" and cfg.detector is None:
        raise EvalInputError("--policy mapper finds its targets with a colour detector: give "
                             "--detector DETECTOR.json (`spoc-detector fit`)")
    if cfg.detector is not None and cfg.checkpoint is None and cfg.policy != "mapper":
        raise EvalInputError("--detector applies to a --checkpoint policy trained with the "
                             "target's box, or to --policy mapper; other baselines take no "
                             "box, so drop it")
    if cfg.mapper is not None and cfg.policy != "mapper":
        raise EvalInputError("--mapper.* settings apply to --policy mapper, so drop them")
    if cfg.mapper is not None:
        validate_mapper(cfg.mapper)
    validate_probes(cfg)


def validate_mapper(mapper: MapperConfig) -> None:
    """Raise EvalInputError for a map agent setting out of its range."""
    for name, least, what in (("size", 1, "at least 1 cell"), ("blind", 0, ">= 0"),
                              ("scan_spacing", 0, ">= 0 (0: never)")):
        if getattr(mapper, name) < least:
            raise EvalInputError(f"--mapper.{name} {getattr(mapper, name)} must be {what}")
    for name in ("max_range", "reach", "room_reach"):
        if not getattr(mapper, name) > 0:
            raise EvalInputError(f"--mapper.{name} {getattr(mapper, name)} must be > 0")


def validate_probes(cfg: EvalConfig) -> None:
    """Raise EvalInputError for a probe the evaluated policy has no use for, or a bad value."""
    probe = cfg.probe
    if probe.policy_probes() and cfg.checkpoint is None:
        raise EvalInputError(f"--probe.{probe.policy_probes()[0]} applies to a --checkpoint "
                             "policy (baselines have no memory or blocked-move input), so "
                             "drop it")
    if probe.memory_steps is not None and probe.memory_steps < 1:
        raise EvalInputError(f"--probe.memory_steps {probe.memory_steps}: give a number of "
                             "steps >= 1")
    if probe.mapper_probes() and cfg.policy != "mapper":
        raise EvalInputError(f"--probe.{probe.mapper_probes()[0]} applies to --policy mapper, "
                             "so drop it")
    if probe.map_forget_steps < 0:
        raise EvalInputError(f"--probe.map_forget_steps {probe.map_forget_steps} must be >= 0")
    if not 0 <= probe.appearance <= 1:
        raise EvalInputError(f"--probe.appearance {probe.appearance}: give a fraction of the "
                             "appearance's bounds in [0, 1] (0: off)")
    if probe.appearance and cfg.backend != "embedded":
        raise EvalInputError("--probe.appearance changes the embedded renderer's look; use "
                             "--backend embedded or drop it")
    if probe.oracle_explorer and cfg.mapper is not None and cfg.mapper.explorer:
        raise EvalInputError("--mapper.explorer and --probe.oracle_explorer both pick the "
                             "frontier; give one")


def dataclass_from(cls, values: dict | None):
    """A config dataclass from a dict, ignoring keys it does not have (None: defaults)."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (values or {}).items() if k in known})


def dataset_tasks(info: dict) -> TaskConfig:
    """The TaskConfig a dataset was generated with (its info.json), else the defaults."""
    if isinstance(info.get("config", {}).get("tasks"), dict):
        return dataclass_from(TaskConfig, info["config"]["tasks"])
    t = info.get("tasks", {})
    obj, room = t.get("objectnav", {}), t.get("roomnav", {})
    values = {"objectnav_targets": obj.get("targets"), "roomnav_targets": room.get("targets"),
              "min_pixels": obj.get("min_pixels"), "max_distance": obj.get("max_distance")}
    return dataclass_from(TaskConfig, {k: v for k, v in values.items() if v is not None})
