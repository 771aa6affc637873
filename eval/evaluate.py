"""``spoc-eval run``'s work: build the policy spec and rollout settings of a config
(:func:`build_run`), roll out the seeded episode set and write ``eval_info.json`` and the
report (:func:`evaluate`); and the reading of finished runs for ``compare`` and ``report``."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from agents.mapper import MapperConfig
from common.files import check_out_dir
from datagen.tasks import TaskConfig
from eval.compare import compare_table
from eval.config import EvalConfig, EvalInputError, dataclass_from, dataset_tasks, validate_config
from eval.episode import RolloutSettings
from eval.inputs import (
    TrainingHouses,
    check_backend,
    check_explorer,
    checkpoint_info,
    dataset_info,
    dataset_training_houses,
    ensemble_info,
    load_detector,
    load_eval_houses,
    read_detector,
)
from eval.metrics import aggregate
from eval.report import analysis, read_eval_info, write_eval_info, write_report
from eval.rollout import PolicySpec, rollout
from eval.slots import plan_slots, video_slots
from sim.camera import CameraConfig
from sim.lattice import AgentConfig


def build_run(cfg: EvalConfig):
    """(PolicySpec, RolloutSettings without videos, the checkpoint's training houses, its
    training steps or None) of a config."""
    camera, agent, tasks, goals, train = cfg.camera, cfg.agent, cfg.tasks, None, TrainingHouses()
    detector = None
    steps = None
    anchors: dict[str, str] = {}
    if cfg.checkpoint is not None:
        info = checkpoint_info(cfg.checkpoint)
        steps = info.trained_steps
        data = info.dataset.get("info", {})
        camera = camera or dataclass_from(CameraConfig, data.get("camera"))
        agent = agent or dataclass_from(AgentConfig, data.get("agent"))
        tasks = tasks or dataset_tasks(data)
        goals = list(info.goals)
        for member in [info, *(ensemble_info(path, info) for path in cfg.ensemble or ())]:
            train.ids |= set(member.train_house_ids)
            train.hashes |= set(member.train_house_hashes)
        detector = load_detector(cfg.detector, info) if cfg.detector else None
        anchors = dict(info.config.get("room_anchors") or {})
    elif cfg.dataset is not None:
        data = dataset_info(cfg.dataset)
        camera = camera or dataclass_from(CameraConfig, data.get("camera"))
        agent = agent or dataclass_from(AgentConfig, data.get("agent"))
        tasks = tasks or dataset_tasks(data)
        goals = list(data.get("goals") or []) or None
    tasks = tasks or TaskConfig()
    if cfg.policy == "mapper":
        if (agent or AgentConfig()).headings != 4:
            raise EvalInputError(f"--agent.headings {agent.headings}: the map agent turns in "
                                 "quarter turns; use a dataset or --agent with 4 headings")
        detector = read_detector(cfg.detector, goals or tasks.goals(),
                                 (cfg.mapper or MapperConfig()).room_anchors,
                                 "the training houses")
        if cfg.mapper is not None and cfg.mapper.explorer is not None:
            check_explorer(cfg.mapper.explorer, goals or tasks.goals(), detector)
    spec = PolicySpec(checkpoint=cfg.checkpoint, baseline=cfg.policy,
                      ensemble=tuple(cfg.ensemble or ()), seed=cfg.seed,
                      sample=cfg.sample, end_threshold=cfg.end_threshold,
                      end_threshold_by_task=cfg.end_threshold_by_task or None,
                      probe=cfg.probe)
    settings = RolloutSettings(
        camera=camera or CameraConfig(), agent=agent or AgentConfig(), tasks=tasks,
        backend=cfg.backend, max_steps=cfg.max_steps, envs_per_worker=cfg.envs_per_worker,
        sample_attempts=cfg.sample_attempts, goals=tuple(goals or tasks.goals()),
        detector=detector, room_anchors=anchors,
        mapper=(cfg.mapper or MapperConfig()) if cfg.policy == "mapper" else None)
    return spec, settings, train, steps


def _progress(total: int, enabled: bool):
    return tqdm(total=total, desc="eval episodes", unit="ep", disable=not enabled,
                file=sys.stderr)


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation of ``cfg`` and write its outputs; returns the eval_info dict."""
    validate_config(cfg)
    check_out_dir(cfg.out)
    spec, settings, train, trained_steps = build_run(cfg)
    if cfg.checkpoint is None and cfg.dataset is not None:
        train = dataset_training_houses(cfg.dataset, dataset_info(cfg.dataset))
    houses = load_eval_houses(cfg.houses, train)
    check_backend(settings)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    slots = plan_slots(len(houses), cfg.episodes, cfg.seed)
    settings = replace(settings, run_dir=str(out),
                       video_slots=video_slots(cfg.episodes, cfg.videos))
    t0 = time.perf_counter()
    with _progress(len(slots), cfg.progress) as bar:
        outcomes = rollout(spec, houses, slots, settings, cfg.workers, bar.update)
    seconds = time.perf_counter() - t0
    results = [o.result for o in outcomes if o.result is not None]
    skipped = Counter(o.skipped for o in outcomes if o.skipped is not None)
    if not results:
        raise EvalInputError(f"--houses {cfg.houses}: zero valid episodes out of {len(slots)} "
                             f"(skipped: {dict(skipped)}); check the houses and --tasks")
    info = {
        "run": run_record(cfg, spec, settings, len(houses), seconds, trained_steps),
        "per_episode": [r.row() for r in results],
        "aggregated": aggregate(results, cfg.max_steps),
        "skipped": dict(sorted(skipped.items())),
        "videos": [o.video for o in outcomes if o.video is not None],
    }
    write_eval_info(out, info)
    write_report(out, info)
    return info


def run_record(cfg: EvalConfig, spec, settings, num_houses: int, seconds: float,
               trained_steps: int | None) -> dict:
    """The ``run`` block of eval_info.json: what was evaluated, where and how."""
    return {
        "policy": spec.name, "checkpoint": cfg.checkpoint, "trained_steps": trained_steps,
        "ensemble": list(cfg.ensemble or []) or None,
        "baseline": cfg.policy,
        "houses": cfg.houses, "num_houses": num_houses, "episodes": cfg.episodes,
        "seed": cfg.seed, "sample": cfg.sample,
        "end_threshold": cfg.end_threshold,
        "end_threshold_by_task": cfg.end_threshold_by_task or None, "detector": cfg.detector,
        "room_anchors": dict(settings.room_anchors) or None,
        "mapper": asdict(settings.mapper) if settings.mapper is not None else None,
        "probe": cfg.probe.active() or None,
        "max_steps": cfg.max_steps,
        "backend": cfg.backend, "workers": cfg.workers, "envs_per_worker": cfg.envs_per_worker,
        "seconds": round(seconds, 2), "camera": asdict(settings.camera),
        "agent": asdict(settings.agent), "tasks": asdict(settings.tasks),
    }


def read_runs(runs: list[str]) -> dict[str, dict]:
    """The ``eval_info.json`` of each run directory, checked for what the tables need."""
    out = {}
    for r in runs:
        try:
            info = read_eval_info(Path(r))
            analysis(info)
        except FileNotFoundError as e:
            raise EvalInputError(str(e)) from None
        except (ValueError, KeyError, TypeError) as e:
            raise EvalInputError(f"{r}: unreadable eval_info.json ({type(e).__name__}: {e}); "
                                 "rerun `spoc-eval run` for it") from None
        out[str(r)] = info
    return out


def compare(runs: list[str]) -> str:
    """The side-by-side table of several run directories, with paired tests."""
    return compare_table(read_runs(runs))


def rebuild_reports(runs: list[str]) -> list[Path]:
    """Rewrite report.md, report.html and the plots of finished runs from their eval_info."""
    return [write_report(Path(name), info)[0] for name, info in read_runs(runs).items()]
