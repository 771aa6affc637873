"""``spoc-eval run``'s work: take a release folder's settings (:func:`with_release`), build the
policy spec and rollout settings of a config (:func:`build_run`), roll out the seeded episode
set, film a few of its episodes (:func:`film`) and write ``eval_info.json`` and the report
(:func:`evaluate`); and the reading of finished runs for ``compare`` and ``report``."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

from tqdm import tqdm

from agents.mapper import MapperConfig
from agents.release import DEPLOY
from common.files import check_out_dir, sha256_file
from datagen.tasks import TaskConfig
from eval.compare import compare_runs, with_reference
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
    release_of,
)
from eval.metrics import aggregate, episode_results, outcomes
from eval.report import read_eval_info, write_eval_info, write_report, write_reports
from eval.rollout import PolicySpec, rollout, stopping_rule_error
from eval.slots import plan_slots
from eval.video import choose_videos
from sim.appearance import AppearanceConfig
from sim.camera import CameraConfig
from sim.lattice import AgentConfig


def with_release(cfg: EvalConfig) -> tuple[EvalConfig, dict | None]:
    """``cfg`` with the deploy.json settings of a release folder given as --checkpoint where
    the command line leaves them unset (at their defaults: None, or false for --sample), none
    of them with ``release_defaults`` false; and the ``run.release`` record: the folder, its
    settings and each one the run acts otherwise with (``differs``), also said on stderr.
    ``--sample true`` given for a release measured with argmax keeps its stopping rule out
    (it applies to argmax actions). A checkpoint file: ``cfg`` as it is and None."""
    release = release_of(cfg.checkpoint) if cfg.checkpoint is not None else None
    if release is None:
        return cfg, None
    deploy = release.deploy
    error = stopping_rule_error(deploy.end_threshold, deploy.end_threshold_by_task,
                                deploy.sample)
    if error:
        raise EvalInputError(f"--checkpoint {release.root / DEPLOY}: {error.replace('--', '')}")
    settings = {"end_threshold": deploy.end_threshold,
                "end_threshold_by_task": deploy.end_threshold_by_task, "sample": deploy.sample,
                "detector": None if deploy.detector is None else str(release.detector_path)}
    if cfg.release_defaults:
        fill = {name: value for name, value in settings.items() if unset(getattr(cfg, name))}
        if cfg.sample and not deploy.sample:  # sampling asked for: no argmax stopping rule
            fill.pop("end_threshold", None)
            fill.pop("end_threshold_by_task", None)
        cfg = replace(cfg, **fill)
    differs = {name: {"release": value, "run": getattr(cfg, name)}
               for name, value in settings.items()
               if not same_setting(name, value, getattr(cfg, name))}
    for name, values in differs.items():
        print(f"--{name} {values['run']}: the release {release.root} was measured with "
              f"{values['release']} ({DEPLOY}); this run records that it differs",
              file=sys.stderr)
    return cfg, {"path": str(release.root), "settings": settings,
                 "defaults": cfg.release_defaults, "differs": differs or None}


def unset(value) -> bool:
    """Whether an option is at its default, so a release's setting may fill it."""
    return value is None or value is False or value == {}


def same_setting(name: str, release, run) -> bool:
    """Whether a run's value of a release setting is the release's: no threshold per task and
    an empty mapping are the same; detector files are the same when their bytes are."""
    if name == "end_threshold_by_task":
        return (release or None) == (run or None)
    if name == "detector" and release is not None and run is not None:
        return Path(run).is_file() and sha256_file(Path(run)) == sha256_file(Path(release))
    return release == run


def build_run(cfg: EvalConfig):
    """(PolicySpec, RolloutSettings without videos, the checkpoint's training houses, its
    training steps or None) of a config."""
    camera, agent, tasks, goals, train = cfg.camera, cfg.agent, cfg.tasks, None, TrainingHouses()
    detector = None
    steps = None
    anchors: dict[str, str] = {}
    if cfg.checkpoint is not None:
        info = checkpoint_info(cfg.checkpoint, releases=True)
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
        mapper=(cfg.mapper or MapperConfig()) if cfg.policy == "mapper" else None,
        appearance=(AppearanceConfig.uniform(cfg.probe.appearance)
                    if cfg.probe.appearance else None))
    return spec, settings, train, steps


def _progress(total: int, enabled: bool):
    return tqdm(total=total, desc="eval episodes", unit="ep", disable=not enabled,
                file=sys.stderr)


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation of ``cfg`` and write its outputs; returns the eval_info dict."""
    validate_config(cfg)
    cfg, release = with_release(cfg)
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
    settings = replace(settings, run_dir=str(out))
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
        "run": run_record(cfg, spec, settings, len(houses), seconds, trained_steps, release),
        "per_episode": [r.row() for r in results],
        "aggregated": aggregate(results, cfg.max_steps),
        "skipped": dict(sorted(skipped.items())),
        "videos": film(spec, houses, slots, settings, results, cfg.videos),
    }
    write_eval_info(out, info)
    write_report(out, info)
    return info


def film(spec: PolicySpec, houses, slots: list, settings, results: list, count: int
         ) -> list[str]:
    """Replay the ``count`` episodes :func:`eval.video.choose_videos` picks from ``results``
    (successes and failures) with their videos on, in this process, and return the videos'
    names in that order. An episode is a function of its seeds, so the replay is the episode
    evaluated; one that does not end as it did (a backend that is not deterministic) loses its
    video, with a warning."""
    chosen = choose_videos(results, count, settings.max_steps)
    if not chosen:
        return []
    by_index = {r.episode: r for r in results}
    replays = rollout(spec, houses, [slots[k] for k in chosen],
                      replace(settings, video_slots=frozenset(chosen)))
    names = {}
    for o in replays:
        if o.video is None:
            continue
        if o.result == by_index[o.index]:
            names[o.index] = o.video
        else:
            (Path(settings.run_dir) / o.video).unlink(missing_ok=True)
            print(f"episode {o.index}: its replay ended otherwise; no video", file=sys.stderr)
    return [names[k] for k in chosen if k in names]


def run_record(cfg: EvalConfig, spec, settings, num_houses: int, seconds: float,
               trained_steps: int | None, release: dict | None = None) -> dict:
    """The ``run`` block of eval_info.json: what was evaluated, where and how (``release``:
    :func:`with_release`'s record, for a release folder)."""
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
        "release": release,
    }


def read_runs(runs: list[str]) -> dict[str, dict]:
    """The ``eval_info.json`` of each run directory, checked for what the tables need (its
    rows and how they ended, without the bootstrap intervals, which take a while)."""
    out = {}
    for r in runs:
        try:
            info = read_eval_info(Path(r))
            outcomes(episode_results(info), int(info["run"]["max_steps"]))
        except FileNotFoundError as e:
            raise EvalInputError(str(e)) from None
        except (ValueError, KeyError, TypeError) as e:
            raise EvalInputError(f"{r}: unreadable eval_info.json ({type(e).__name__}: {e}); "
                                 "rerun `spoc-eval run` for it") from None
        out[str(r)] = info
    return out


def compare(runs: list[str], reference: str | None = None, out: str | None = None) -> str:
    """The narrow table of runs each paired with ``reference`` (default: the first run; one
    not among ``runs`` is read too), after writing compare.md and compare.json to ``out``."""
    if out is not None:
        check_out_dir(out)
    paths, reference = with_reference(runs, reference)
    return compare_runs(read_runs(paths), reference, out)


def rebuild_reports(runs: list[str], baselines: list[str] | None = None) -> list[Path]:
    """Rewrite report.md, report.html and the plots of finished runs from their eval_info,
    each paired with ``baselines`` when given."""
    return write_reports(read_runs(runs), read_runs(baselines) if baselines else None)
