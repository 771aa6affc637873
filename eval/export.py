"""``spoc-eval export``: a release folder (:mod:`agents.release`) from a training checkpoint,
the act-time settings its evaluation was measured with, its detector and that evaluation's
``eval_info.json``, with a model card rendered from them (:func:`model_card`).

The evaluation must be of these settings: :func:`check_evaluation` refuses an
``eval_info.json`` whose run acted otherwise (another stopping rule, detector, anchors,
camera, training step or a probe), so the card's numbers are those the release reproduces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from agents.release import (
    CARD,
    DEPLOY,
    DETECTOR,
    MAX_MB,
    POLICY,
    WEIGHTS,
    DeploySettings,
    write_release,
)
from common.files import check_out_dir, sha256_file
from eval.compare import acting, md_table, pct
from eval.config import EvalConfig, EvalInputError, dataclass_from, dataset_tasks
from eval.inputs import checkpoint_policy, load_detector
from eval.metrics import episode_results, outcomes, summarize
from eval.report import read_eval_info
from eval.rollout import stopping_rule_error
from sim.camera import CameraConfig
from sim.lattice import AgentConfig

CARD_TEXT = ("data", "recipe", "training_time", "limits")
"""The card's free-text fields an export must be given (on the command line or in a
``--config`` YAML)."""


@dataclass
class ExportConfig:
    """Write a release folder: a checkpoint's policy as published (weights.pt, policy.json,
    deploy.json, detector.json, model_card.md), which `spoc-eval run --checkpoint FOLDER` runs
    as its evaluation was measured."""

    checkpoint: str | None = None
    """The spoc-train checkpoint (.ckpt) to release (or a release folder to write again)."""
    out: str | None = None
    """The release folder to write, e.g. ``models/best``; written whole under a temporary
    name, then renamed."""
    eval_info: str | None = None
    """The evaluation the card reports: an ``eval_info.json`` (gzipped or not) or its run
    directory, run with this checkpoint and the settings below."""
    detector: str | None = None
    """The detector (``spoc-detector fit``) the evaluation gave the policy its box with;
    copied into the release as detector.json."""
    end_threshold: float | None = None
    """The evaluation's --end_threshold (None: argmax)."""
    end_threshold_by_task: dict[str, float] | None = None
    """The evaluation's --end_threshold_by_task, e.g. ``'{roomnav: 0.7}'``."""
    sample: bool = False
    """The evaluation's --sample."""
    room_anchors: dict[str, str] | None = None
    """The RoomNav anchors the checkpoint was trained with (its --data.room_anchors), to check:
    refused when the checkpoint's differ (None: not checked; the anchors always travel in
    policy.json's config)."""
    name: str | None = None
    """The card's title (default: the --out folder's name)."""
    description: str = ""
    """What the agent is, in a sentence or two: the card's first paragraph."""
    data: str = ""
    """What it was trained on: houses, datasets and the commands that made them."""
    recipe: str = ""
    """How it was trained: the commands, or the recipe script that runs them."""
    training_time: str = ""
    """How long the training took, and on what machine."""
    eval_houses: str = ""
    """How to make the evaluation's house file (the spoc-houses command); optional."""
    limits: str = ""
    """What the agent cannot do, and where its numbers do not transfer."""
    force: bool = False
    """Replace an existing --out folder."""
    max_mb: float = MAX_MB
    """Refuse a release larger than this many MB (10^6 bytes)."""


def validate_export(cfg: ExportConfig) -> None:
    """Raise EvalInputError naming the first bad option and its value."""
    for name in ("checkpoint", "out", "eval_info"):
        if getattr(cfg, name) is None:
            raise EvalInputError(f"--{name} is required: spoc-eval export --checkpoint CKPT "
                                 "--eval_info EVAL_INFO --out FOLDER (docs/models.md)")
    error = stopping_rule_error(cfg.end_threshold, cfg.end_threshold_by_task, cfg.sample)
    if error:
        raise EvalInputError(error)
    for name in CARD_TEXT:
        if not getattr(cfg, name).strip():
            raise EvalInputError(f"--{name} is empty; the model card says it: give it on the "
                                 "command line or in a --config YAML (models/best-card.yaml)")
    if not cfg.max_mb > 0:
        raise EvalInputError(f"--max_mb {cfg.max_mb} must be > 0")
    check_out_dir(cfg.out)


def deploy_settings(cfg: ExportConfig) -> DeploySettings:
    """The release's deploy.json settings: the export's act-time options."""
    return DeploySettings(end_threshold=cfg.end_threshold,
                          end_threshold_by_task=cfg.end_threshold_by_task or None,
                          sample=cfg.sample,
                          detector=DETECTOR if cfg.detector is not None else None)


def export(cfg: ExportConfig) -> Path:
    """Check the inputs of ``cfg``, render the card and write the release folder; returns it."""
    validate_export(cfg)
    policy, info = checkpoint_policy(cfg.checkpoint, releases=True)
    anchors = info.config.get("room_anchors") or {}
    if cfg.room_anchors is not None and dict(cfg.room_anchors) != anchors:
        raise EvalInputError(f"--room_anchors {cfg.room_anchors}: the checkpoint "
                             f"{cfg.checkpoint} was trained with {anchors or 'none'}; give the "
                             "checkpoint trained with them")
    if cfg.detector is not None:
        load_detector(cfg.detector, info)
    evaluation = read_evaluation(cfg.eval_info)
    check_evaluation(evaluation["run"], cfg, info)
    card = model_card(cfg, info, policy, evaluation)
    return write_release(cfg.out, policy, info, deploy_settings(cfg), card,
                                cfg.detector, cfg.force, cfg.max_mb)


# ----------------------------------------------------------------------- the evaluation


def read_evaluation(path: str) -> dict:
    """The eval_info of ``--eval_info`` with its rows read (EvalInputError if unusable)."""
    try:
        info = read_eval_info(Path(path))
        results = episode_results(info)
        outcomes(results, int(info["run"]["max_steps"]))
    except FileNotFoundError as e:
        raise EvalInputError(f"--eval_info {e}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EvalInputError(f"--eval_info {path}: unreadable eval_info.json "
                             f"({type(e).__name__}: {e}); give one written by `spoc-eval run`"
                             ) from None
    if not results:
        raise EvalInputError(f"--eval_info {path}: field 'per_episode' is empty")
    return info


def probes_of(run: dict) -> dict:
    """The probes a run record says were on, in either form (``probe``, or the older
    top-level ``blocked_input`` and ``memory_steps``)."""
    probes = dict(run.get("probe") or {})
    if run.get("blocked_input") is False:
        probes["blocked_input"] = False
    if run.get("memory_steps") is not None:
        probes["memory_steps"] = run["memory_steps"]
    return probes


def check_evaluation(run: dict, cfg: ExportConfig, info) -> None:
    """EvalInputError unless the evaluation ``run`` (its eval_info's ``run`` record) acted as
    the release will: a single checkpoint with these training steps, no probe, the same
    stopping rule, sampling, detector, anchors, camera, agent and tasks."""
    where = f"--eval_info {cfg.eval_info}"
    if run.get("checkpoint") is None or run.get("ensemble"):
        raise EvalInputError(f"{where}: field 'run.checkpoint' is {run.get('checkpoint')} with "
                             f"ensemble {run.get('ensemble')}; give the evaluation of the one "
                             "checkpoint released")
    if probes_of(run):
        raise EvalInputError(f"{where}: field 'run.probe' is {probes_of(run)}: a measurement, "
                             "not a deployable result; give an evaluation without probes")
    steps = run.get("trained_steps")
    if steps is not None and info.trained_steps is not None and steps != info.trained_steps:
        raise EvalInputError(f"{where}: field 'run.trained_steps' is {steps}, --checkpoint "
                             f"{cfg.checkpoint} has {info.trained_steps}; give the evaluation "
                             "of this checkpoint")
    data = info.dataset.get("info", {})
    expected = {
        "end_threshold": cfg.end_threshold,
        "end_threshold_by_task": cfg.end_threshold_by_task or None,
        "sample": cfg.sample,
        "room_anchors": info.config.get("room_anchors") or None,
        "camera": asdict(dataclass_from(CameraConfig, data.get("camera"))),
        "agent": asdict(dataclass_from(AgentConfig, data.get("agent"))),
        "tasks": asdict(dataset_tasks(data)),
    }
    for key, want in expected.items():
        got = run.get(key)
        if key in ("end_threshold_by_task", "room_anchors"):
            got = got or None
        if isinstance(want, dict) and isinstance(got, dict):  # fields of this version only
            got = {k: v for k, v in got.items() if k in want}
            want = {k: v for k, v in want.items() if k in got}
        if got != want:
            raise EvalInputError(f"{where}: field 'run.{key}' is {got}, the release's is {want}; "
                                 "export with the settings the evaluation ran with, or give "
                                 "the evaluation of these")
    recorded = run.get("detector")
    if (recorded is None) != (cfg.detector is None):
        raise EvalInputError(f"{where}: field 'run.detector' is {recorded}, --detector is "
                             f"{cfg.detector}; give the detector the evaluation ran with")
    if recorded is not None and Path(recorded).is_file() \
            and sha256_file(Path(recorded)) != sha256_file(Path(cfg.detector)):
        raise EvalInputError(f"{where}: field 'run.detector' is {recorded}, whose bytes differ "
                             f"from --detector {cfg.detector}; give the detector the "
                             "evaluation ran with")


# ----------------------------------------------------------------------- the model card


def result_row(label: str, summary: dict) -> list[str]:
    """A card table row: episodes, success and SPL with their 95% intervals."""
    lo, hi = summary["success_ci95"]
    spl_lo, spl_hi = summary["spl_ci95"]
    return [label, str(summary["num_episodes"]),
            f"{pct(summary['success_rate'])}% [{pct(lo)}, {pct(hi)}]",
            f"{summary['spl']:.3f} [{spl_lo:.3f}, {spl_hi:.3f}]"]


def evaluation_section(evaluation: dict, path: str) -> list[str]:
    """The card's evaluation: the episode set, success and SPL with their intervals overall
    and per task, and how the failures ended."""
    run, results = evaluation["run"], episode_results(evaluation)
    rows = [result_row("all", summarize(results))]
    for task in sorted({r.task for r in results}):
        rows.append(result_row(task, summarize([r for r in results if r.task == task])))
    ended = outcomes(results, int(run["max_steps"]))
    return [
        f"{len(results)} episodes in {run.get('num_houses')} held-out houses "
        f"(`{run.get('houses')}`, episode seed {run.get('seed')}, at most {run['max_steps']} "
        f"steps, the {run.get('backend', 'embedded')} simulator), per-episode results in "
        f"`{path}`. Success with its 95% Wilson interval; SPL (Anderson et al. 2018) with its "
        "95% bootstrap interval:", "",
        md_table(["task", "episodes", "success [95% CI]", "SPL [95% CI]"], rows), "",
        f"Failures: {pct(ended['ended_away'])}% of the episodes called `end` away from the "
        f"goal and {pct(ended['timed_out'])}% ran out of steps; {pct(ended['left_goal'])}% "
        "had stood at the goal before (stopping failures, counted in the other two).",
    ]


def policy_lines(info, policy) -> list[str]:
    """The card's table of what the policy is and takes."""
    cfg = info.config
    params = sum(t.numel() for t in policy.state_dict().values())
    size = sum(t.numel() * t.element_size() for t in policy.state_dict().values())
    camera = info.dataset.get("info", {}).get("camera", {})
    parts = [f"{cfg.get('name', 'lstm')}: a CNN (channels "
             f"{'/'.join(str(c) for c in cfg.get('channels', []))}"
             f"{', FiLM-conditioned on the goal' if cfg.get('goal_film') else ''}) on "
             f"{info.image_size[0]}x{info.image_size[1]} frames, an LSTM of "
             f"{cfg.get('hidden_dim')} units, a linear head over the actions"]
    inputs = [f"RGB {camera.get('height')}x{camera.get('width')}", "the goal",
              "the previous action"]
    if cfg.get("blocked_input"):
        inputs.append("whether the last move was blocked")
    if cfg.get("target_box"):
        inputs.append("the target's box")
    if cfg.get("room_anchors"):
        inputs.append("for RoomNav, the box of its room type's anchor ("
                      + ", ".join(f"{k}: {v}" for k, v in cfg["room_anchors"].items()) + ")")
    tasks = sorted({g.split("/", 1)[0] for g in info.goals})
    goals = "; ".join(f"{t}: " + ", ".join(g.split("/", 1)[1] for g in info.goals
                                            if g.startswith(f"{t}/")) for t in tasks)
    hashes = len(info.train_house_hashes)
    rows = [
        ["policy", parts[0]],
        ["inputs", ", ".join(inputs)],
        ["actions", ", ".join(info.actions)],
        ["goals", goals],
        ["parameters", f"{params:,} ({size / 1e6:.1f} MB of float32 in {WEIGHTS})"],
        ["trained", f"{info.trained_steps:,} optimizer steps" if info.trained_steps is not None
         else "not recorded"],
        ["training houses", f"{len(info.train_house_ids)} house ids and {hashes} content "
         f"hashes in {POLICY}; evaluation refuses those houses"],
        ["dataset", f"`{info.dataset.get('root')}`, version "
         f"{info.dataset.get('info', {}).get('version')}"],
    ]
    return [md_table(["field", "value"], rows)]


def model_card(cfg: ExportConfig, info, policy, evaluation: dict) -> str:
    """model_card.md of a release: the agent, how to run it, its evaluation with intervals,
    its data, recipe, training time and limits."""
    run = evaluation["run"]
    folder = Path(cfg.out).name
    name = cfg.name or folder
    deploy = deploy_settings(cfg)
    how = acting({"checkpoint": cfg.out, **asdict(deploy),
                  "room_anchors": info.config.get("room_anchors") or None})
    steps = run["max_steps"]
    command = (f"spoc-eval run --checkpoint {cfg.out} --houses {run.get('houses')} \\\n"
               f"    --episodes {run.get('episodes')} --seed {run.get('seed')}"
               + (f" --max_steps {steps}" if steps != EvalConfig.max_steps else "")
               + f" --out runs/eval/{folder}")
    files = [WEIGHTS, POLICY, DEPLOY, *([DETECTOR] if cfg.detector else []), CARD]
    lines = [f"# {name}", ""]
    if cfg.description.strip():
        lines += [cfg.description.strip(), ""]
    lines += [
        f"A released navigation policy of spoc-pipeline: {', '.join(f'`{f}`' for f in files)} "
        "(the format: `docs/models.md`). The weights load with "
        "`torch.load(weights_only=True)`; no pickled code runs.", "",
        "## Run it", "",
        "```bash", command, f"spoc-eval compare {cfg.eval_info} runs/eval/{folder}", "```", "",
        f"It acts as it was measured ({how}), from `{DEPLOY}`; an option given on the "
        "command line wins, and the run records under `run.release.differs` that it acted "
        "otherwise. `spoc-eval compare` pairs the new run with the published one episode by "
        "episode: a release acts as the checkpoint it was exported from, so the rows are the "
        "same wherever the simulator is the one they were measured with.",
    ]
    if cfg.eval_houses.strip():
        lines += ["", "The evaluation's houses:", "", cfg.eval_houses.strip()]
    if info.config.get("target_box") and not cfg.detector:
        lines += ["", "It was measured with the simulator's box of the target (privileged), "
                  "not a detector's: not a deployable agent."]
    lines += ["", "## Evaluation", "", *evaluation_section(evaluation, cfg.eval_info),
              "", "## Model", "", *policy_lines(info, policy),
              "", "## Training data", "", cfg.data.strip(),
              "", "## Recipe", "", cfg.recipe.strip(),
              "", "## Training time", "", cfg.training_time.strip(),
              "", "## Limits", "", cfg.limits.strip(), ""]
    return "\n".join(lines)
