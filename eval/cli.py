"""``spoc-eval``: evaluate a policy on held-out houses and compare runs.

    spoc-eval run --checkpoint CKPT --houses data/houses/val.jsonl.gz --episodes 200 \\
        --seed 0 --out runs/eval/NAME --workers 2
    spoc-eval run --policy oracle --houses data/houses/val.jsonl.gz --out runs/eval/oracle
    spoc-eval compare runs/eval/NAME runs/eval/oracle   # side by side, paired tests
    spoc-eval report runs/eval/NAME                     # rebuild its report from eval_info

Options take dashes or underscores (``--max-steps`` = ``--max_steps``). Bad input (a file
that is not a spoc-train checkpoint, training houses, no valid episode) prints one line and
exits with status 2.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from datagen.tasks import TaskConfig
from eval.mapper import MapperConfig
from sim.camera import CameraConfig
from sim.cliargs import underscore_options
from sim.lattice import AgentConfig

EXIT_BAD_INPUT = 2
BACKENDS = ("embedded", "ai2thor")


class EvalInputError(ValueError):
    """Input the evaluation cannot use; the message says which and what to do."""


@dataclass
class EvalConfig:
    """Evaluate a policy (a checkpoint or a baseline) on a fixed, seeded set of episodes."""

    houses: str = "data/houses/val.jsonl.gz"
    """House file of held-out houses (.json, .jsonl, .jsonl.gz); never the training split."""
    out: str = "runs/eval/default"
    """Run directory: eval_info.json, report.md, report.html, plots, videos/."""
    checkpoint: str | None = None
    """A spoc-train checkpoint (.ckpt); give this or --policy."""
    ensemble: list[str] | None = None
    """More checkpoints that act with --checkpoint as one policy, e.g.
    ``--ensemble '[B.ckpt, C.ckpt]'``: each step takes the mean of their action probabilities
    (each keeps its own memory and is told the action taken). They must share its goals,
    camera, agent and inputs; houses in any member's training data are refused."""
    policy: str | None = None
    """A baseline instead of a checkpoint: oracle, random, forward or mapper (the map agent
    of :mod:`eval.mapper`: RGB-D, odometry and ``--detector``; no learning)."""
    dataset: str | None = None
    """A dataset directory whose info.json sets camera, agent, tasks and goals (so a baseline
    meets the same episodes as a policy trained on that dataset)."""
    episodes: int = 200
    """Number of evaluation episodes (spread evenly over the houses)."""
    seed: int = 0
    """Seed of the episode set (the same for every policy) and of the random baseline."""
    workers: int = 1
    """Worker processes (one per core); results do not depend on it."""
    envs_per_worker: int = 4
    """Environments each worker steps in lockstep (one policy call per step for all)."""
    max_steps: int = 500
    """Episode step limit (SPOC uses 600); an episode that does not call end by then fails."""
    backend: str = "embedded"
    """Simulator backend: embedded or ai2thor."""
    videos: int = 3
    """Episodes filmed for the report (evenly spread over the set); 0 for none."""
    sample_attempts: int = 10
    """Seeds tried per episode slot before it is reported as skipped."""
    sample: bool = False
    """Checkpoints only: draw each action from the policy's softmax (seeded per episode by
    ``seed`` and the episode index, so results do not depend on workers) instead of argmax."""
    blocked_input: bool = True
    """Checkpoints only: tell the policy when its last move was blocked (as in training).
    ``false`` withholds it (an ablation of the policy's blocked-move input)."""
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
    :class:`eval.mapper.MapperConfig`)."""
    memory_steps: int | None = None
    """Checkpoints only, a probe: clear the policy's recurrent state every this many steps of
    an episode (its previous action is kept), as a training chunk of that length starts
    mid-episode; how much worse it gets says how far back the policy uses its memory (None:
    the whole episode, as deployed)."""
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
    from eval.baselines import BASELINES
    from eval.rollout import stopping_rule_error

    if (cfg.checkpoint is None) == (cfg.policy is None):
        raise EvalInputError("give exactly one of --checkpoint CKPT or --policy "
                             f"{{{','.join(BASELINES)}}}")
    if cfg.policy is not None and cfg.policy not in BASELINES:
        raise EvalInputError(f"--policy {cfg.policy!r} is unknown; use one of "
                             f"{', '.join(BASELINES)}")
    for name in ("episodes", "workers", "envs_per_worker", "max_steps", "sample_attempts"):
        if getattr(cfg, name) < 1:
            raise EvalInputError(f"--{name} {getattr(cfg, name)} must be at least 1")
    if cfg.backend not in BACKENDS:
        raise EvalInputError(f"--backend {cfg.backend!r} is unknown; use one of "
                             f"{', '.join(BACKENDS)}")
    if cfg.videos < 0:
        raise EvalInputError(f"--videos {cfg.videos} must be >= 0")
    stopping_rule = cfg.end_threshold is not None or bool(cfg.end_threshold_by_task)
    if (cfg.sample or not cfg.blocked_input or stopping_rule) and cfg.checkpoint is None:
        raise EvalInputError("--sample, --blocked_input and --end_threshold apply to a "
                             "--checkpoint policy; baselines act as they are defined, so drop them")
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
    if cfg.mapper is not None and cfg.mapper.explorer and cfg.mapper.oracle_explorer:
        raise EvalInputError("--mapper.explorer and --mapper.oracle_explorer both pick the "
                             "frontier; give one")
    if cfg.memory_steps is not None and (cfg.checkpoint is None or cfg.memory_steps < 1):
        raise EvalInputError(f"--memory_steps {cfg.memory_steps}: give a number of steps >= 1, "
                             "with a --checkpoint policy (baselines have no memory to clear)")


def _dataclass_from(cls, values: dict | None):
    """A config dataclass from a dict, ignoring keys it does not have (None: defaults)."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (values or {}).items() if k in known})


def dataset_tasks(info: dict) -> TaskConfig:
    """The TaskConfig a dataset was generated with (its info.json), else the defaults."""
    if isinstance(info.get("config", {}).get("tasks"), dict):
        return _dataclass_from(TaskConfig, info["config"]["tasks"])
    t = info.get("tasks", {})
    obj, room = t.get("objectnav", {}), t.get("roomnav", {})
    values = {"objectnav_targets": obj.get("targets"), "roomnav_targets": room.get("targets"),
              "min_pixels": obj.get("min_pixels"), "max_distance": obj.get("max_distance")}
    return _dataclass_from(TaskConfig, {k: v for k, v in values.items() if v is not None})


def dataset_info(root: str) -> dict:
    """The info.json of a spoc-datagen dataset directory (EvalInputError if unusable)."""
    from datagen.shards import DatasetError, read_info

    try:
        return read_info(Path(root))
    except (DatasetError, OSError, ValueError) as e:
        raise EvalInputError(f"--dataset {root}: {e}") from None


def checkpoint_info(path: str, option: str = "--checkpoint"):
    """The checkpoint's PolicyInfo, checked against this simulator (EvalInputError, naming
    ``option``, if not)."""
    from datagen.constants import DATASET_VERSION
    from sim.lattice import ACTIONS
    from training.policy import load_policy

    if not Path(path).is_file():
        raise EvalInputError(f"{option} {path}: no such file")
    try:
        _, info = load_policy(path)
    except Exception as e:  # noqa: BLE001 - any failure means "not a usable checkpoint"
        msg = " ".join(str(e).split())[:300]
        raise EvalInputError(f"{option} {path}: not a spoc-train policy checkpoint of this "
                             f"version ({type(e).__name__}: {msg}); retrain or pick another "
                             "file") from None
    version = info.dataset.get("info", {}).get("version")
    if version != DATASET_VERSION:
        raise EvalInputError(f"{option} {path}: trained on dataset version {version!r}, "
                             f"this evaluation needs {DATASET_VERSION!r}; regenerate and retrain")
    if list(info.actions) != list(ACTIONS):
        raise EvalInputError(f"{option} {path}: action vocabulary {list(info.actions)} "
                             f"differs from the simulator's {list(ACTIONS)}")
    return info


# --------------------------------------------------------------------------- houses


def house_split(record) -> str | None:
    """The split a house was generated for (``metadata.generator.split``), if recorded."""
    gen = record.house.get("metadata", {}).get("generator", {})
    return gen.get("split") if isinstance(gen, dict) else None


def file_split(path: Path) -> str | None:
    """The split a ``houses/{split}.jsonl.gz`` file is, when ``meta.json`` beside it lists it."""
    import json

    meta = path.parent / "meta.json"
    name = path.name.split(".")[0]
    if not meta.is_file():
        return None
    try:
        splits = json.loads(meta.read_text()).get("splits", {})
    except (OSError, ValueError):
        return None
    return name if name in splits else None


def load_eval_houses(path: str, train_house_ids: set[str]) -> dict:
    """Position -> HouseRecord of every house in the file; refuses training houses."""
    from datagen.episodes import HouseFile

    hfile = HouseFile.scan(path)
    records = hfile.read(list(range(len(hfile))))
    if file_split(Path(path)) == "train":
        raise EvalInputError(f"--houses {path}: this is the train split (meta.json); evaluate "
                             "on held-out houses, e.g. val.jsonl.gz or test.jsonl.gz")
    for pos, rec in records.items():
        if house_split(rec) == "train":
            raise EvalInputError(f"--houses {path}: house {pos} ({rec.house_id}) was generated "
                                 "for the train split; evaluate on held-out houses")
    seen = sorted({rec.house_id for rec in records.values()} & train_house_ids)
    if seen:
        raise EvalInputError(f"--houses {path}: {len(seen)} house(s) appear in the checkpoint's "
                             f"training data (e.g. {seen[0]}); evaluate on held-out houses")
    return records


# --------------------------------------------------------------------------- run


def build_run(cfg: EvalConfig):
    """(PolicySpec, RolloutSettings without videos, training house ids, the checkpoint's
    training steps or None) of a config."""
    from eval.rollout import PolicySpec, RolloutSettings

    camera, agent, tasks, goals, train_ids = cfg.camera, cfg.agent, cfg.tasks, None, set()
    detector = None
    steps = None
    anchors: dict[str, str] = {}
    if cfg.checkpoint is not None:
        info = checkpoint_info(cfg.checkpoint)
        steps = info.trained_steps
        data = info.dataset.get("info", {})
        camera = camera or _dataclass_from(CameraConfig, data.get("camera"))
        agent = agent or _dataclass_from(AgentConfig, data.get("agent"))
        tasks = tasks or dataset_tasks(data)
        goals, train_ids = list(info.goals), set(info.train_house_ids)
        for path in cfg.ensemble or ():
            train_ids |= set(ensemble_info(path, info).train_house_ids)
        detector = load_detector(cfg.detector, info) if cfg.detector else None
        anchors = dict(info.config.get("room_anchors") or {})
    elif cfg.dataset is not None:
        data = dataset_info(cfg.dataset)
        camera = camera or _dataclass_from(CameraConfig, data.get("camera"))
        agent = agent or _dataclass_from(AgentConfig, data.get("agent"))
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
                      sample=cfg.sample, blocked_input=cfg.blocked_input,
                      end_threshold=cfg.end_threshold,
                      end_threshold_by_task=cfg.end_threshold_by_task or None,
                      memory_steps=cfg.memory_steps)
    settings = RolloutSettings(
        camera=camera or CameraConfig(), agent=agent or AgentConfig(), tasks=tasks,
        backend=cfg.backend, max_steps=cfg.max_steps, envs_per_worker=cfg.envs_per_worker,
        sample_attempts=cfg.sample_attempts, goals=tuple(goals or tasks.goals()),
        detector=detector, room_anchors=anchors,
        mapper=(cfg.mapper or MapperConfig()) if cfg.policy == "mapper" else None)
    return spec, settings, train_ids, steps


def ensemble_info(path: str, first):
    """The PolicyInfo of an ``--ensemble`` checkpoint, checked against the ``--checkpoint``'s
    (``first``): the same goals, camera, agent and target-box input."""
    info = checkpoint_info(path, "--ensemble")
    if list(info.goals) != list(first.goals):
        raise EvalInputError(f"--ensemble {path}: its goal vocabulary differs from "
                             "--checkpoint's; ensemble policies trained on the same goals")
    for key in ("camera", "agent"):
        mine, theirs = (i.dataset.get("info", {}).get(key) for i in (info, first))
        if mine != theirs:
            raise EvalInputError(f"--ensemble {path}: trained with {key} {mine}, --checkpoint "
                                 f"with {theirs}; ensemble policies trained with the same {key}")
    for key in ("target_box", "room_anchors"):
        if (info.config.get(key) or None) != (first.config.get(key) or None):
            raise EvalInputError(f"--ensemble {path}: {key}={info.config.get(key)} differs "
                                 f"from --checkpoint's; the members must take the same inputs")
    return info


def load_detector(path: str, info):
    """The ``--detector`` of a checkpoint trained with the target's box (EvalInputError if
    the file is no detector, the policy takes no box or the detector lacks its targets or its
    RoomNav anchors)."""
    if not info.config.get("target_box"):
        raise EvalInputError(f"--detector {path}: the checkpoint's policy takes no target box "
                             "(train it with --data.target_box true), so drop --detector")
    return read_detector(path, info.goals, info.config.get("room_anchors") or {},
                         "the policy's training data")


def read_detector(path: str, goals, room_anchors: dict, fit_on: str):
    """A ColourDetector file with a colour for every ObjectNav target in ``goals`` and every
    RoomNav anchor (``room_anchors``: room type -> a type or several; EvalInputError
    otherwise)."""
    from sim.detect import ColourDetector

    try:
        detector = ColourDetector.load(path)
    except ValueError as e:
        raise EvalInputError(f"--detector {e}") from None
    targets = {g.split("/", 1)[1] for g in goals if g.startswith("objectnav/")}
    for anchors in room_anchors.values():
        targets |= {anchors} if isinstance(anchors, str) else set(anchors)
    missing = sorted(targets - set(detector.centre))
    if missing:
        raise EvalInputError(f"--detector {path}: has no colour for {', '.join(missing)}; fit "
                             f"it on {fit_on} with `spoc-detector fit` (its --types for the "
                             "RoomNav anchors)")
    return detector


def check_explorer(path: str, goals, detector) -> None:
    """EvalInputError unless ``path`` is an explorer (``spoc-explorer fit``) that knows every
    goal evaluated and whose context types ``detector`` has colours for."""
    from training.explorer import Explorer

    try:
        explorer = Explorer.load(path)
    except ValueError as e:
        raise EvalInputError(f"--mapper.explorer {e}") from None
    missing = sorted(set(goals) - set(explorer.goals))
    if missing:
        raise EvalInputError(f"--mapper.explorer {path}: field 'goals' lacks {', '.join(missing)}"
                             "; fit it on data collected with this evaluation's goals")
    missing = sorted(set(explorer.context) - set(detector.centre))
    if missing:
        raise EvalInputError(f"--mapper.explorer {path}: its context types {', '.join(missing)} "
                             "have no colour in --detector; give the detector it was fitted with")


def check_backend(settings) -> None:
    """Start and close one environment of a non-embedded backend, so that a simulator that
    cannot run here fails once, with its own message, before any work."""
    from sim.env import make_env

    if settings.backend == "embedded":
        return
    try:
        make_env(settings.backend, camera=settings.camera, agent=settings.agent).close()
    except Exception as e:  # noqa: BLE001 - the backend's message says what to do
        raise EvalInputError(f"--backend {settings.backend}: {' '.join(str(e).split())}"
                             ) from None


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="eval episodes", unit="ep", disable=not enabled,
                file=sys.stderr)


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation of ``cfg`` and write its outputs; returns the eval_info dict."""
    from eval.metrics import aggregate
    from eval.report import write_eval_info, write_report
    from eval.rollout import plan_slots, rollout, video_slots

    validate_config(cfg)
    spec, settings, train_ids, trained_steps = build_run(cfg)
    houses = load_eval_houses(cfg.houses, train_ids)
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
        "seed": cfg.seed, "sample": cfg.sample, "blocked_input": cfg.blocked_input,
        "end_threshold": cfg.end_threshold,
        "end_threshold_by_task": cfg.end_threshold_by_task or None, "detector": cfg.detector,
        "room_anchors": dict(settings.room_anchors) or None,
        "mapper": asdict(settings.mapper) if settings.mapper is not None else None,
        "memory_steps": cfg.memory_steps,
        "max_steps": cfg.max_steps,
        "backend": cfg.backend, "workers": cfg.workers, "envs_per_worker": cfg.envs_per_worker,
        "seconds": round(seconds, 2), "camera": asdict(settings.camera),
        "agent": asdict(settings.agent), "tasks": asdict(settings.tasks),
    }


def read_runs(runs: list[str]) -> dict[str, dict]:
    """The ``eval_info.json`` of each run directory, checked for what the tables need."""
    from eval.report import analysis, read_eval_info

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
    from eval.report import compare_table

    return compare_table(read_runs(runs))


def rebuild_reports(runs: list[str]) -> list[Path]:
    """Rewrite report.md, report.html and the plots of finished runs from their eval_info."""
    from eval.report import write_report

    return [write_report(Path(name), info)[0] for name, info in read_runs(runs).items()]


# --------------------------------------------------------------------------- parser


def build_parser():
    """The ``spoc-eval`` parser: ``run`` (typed from EvalConfig) and ``compare``."""
    from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(prog="spoc-eval", description=__doc__.strip().splitlines()[0])
    sub = parser.add_subcommands(dest="command")
    run = ArgumentParser(description=EvalConfig.__doc__)
    run.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
    run.add_class_arguments(EvalConfig, as_group=False)
    sub.add_subcommand("run", run, help=EvalConfig.__doc__)
    cmp = ArgumentParser(description="Print success, SPL and CI of several runs side by side, "
                         "each paired with the one before it (exact McNemar test).")
    cmp.add_argument("runs", nargs="+", help="Run directories written by `spoc-eval run`.")
    sub.add_subcommand("compare", cmp, help="Print several runs side by side.")
    rep = ArgumentParser(description="Rebuild report.md, report.html and the plots of finished "
                         "runs from their eval_info.json.")
    rep.add_argument("runs", nargs="+", help="Run directories written by `spoc-eval run`.")
    sub.add_subcommand("report", rep, help="Rebuild the reports of finished runs.")
    return parser


def _fail(message: str) -> int:
    print(f"spoc-eval: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> None:
    from datagen.houses.io import HouseError

    parser = build_parser()
    args = parser.parse_args(underscore_options(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "compare":
            print(compare(args.compare.runs))
            return
        if args.command == "report":
            for path in rebuild_reports(args.report.runs):
                print(path)
            return
        init = parser.instantiate_classes(args)
        values = {k: v for k, v in vars(init.run).items() if k not in ("config", "__path__")}
        info = evaluate(EvalConfig(**values))
    except (EvalInputError, HouseError) as e:
        raise SystemExit(_fail(str(e))) from None
    agg = info["aggregated"]
    lo, hi = agg["success_ci95"]
    print(f"{agg['num_episodes']} episodes: success {100 * agg['success_rate']:.1f}% "
          f"[{100 * lo:.1f}, {100 * hi:.1f}], SPL {agg['spl']:.3f} -> {values['out']}")


if __name__ == "__main__":
    main()
