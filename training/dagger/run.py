"""DAgger's rounds: round 0 (behaviour cloning or ``--init_checkpoint``), then each round's
rollouts, shards, training and evaluation, and the BC arm beside them; the state of a DAgger
directory (``dagger_info.json``, ``dagger.md``) so that a rerun skips finished rounds."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import yaml

from agents.checkpoint import load_policy
from common.files import check_out_dir, json_bytes, write_atomic
from datagen.constants import FRAMES_VIDEO, INFO_FILE
from eval.config import EvalConfig
from eval.evaluate import evaluate
from eval.inputs import (
    TrainingHouses,
    checkpoint_info,
    load_detector,
    load_eval_houses,
    read_colour_detector,
)
from eval.slots import plan_slots
from sim.house import file_content_hashes
from training.cli import build_cli, last_checkpoint
from training.dagger.config import DaggerConfig, DaggerError, beta_schedule
from training.dagger.rollouts import expert_episodes, mixed_rollouts, round_seed
from training.dagger.shards import (
    DatasetView,
    link_dataset,
    next_shard_index,
    open_view,
    split_labels,
    write_round_shards,
)

INFO_NAME = "dagger_info.json"
TABLE_NAME = "dagger.md"



def train(cfg: DaggerConfig, data: Path, run_dir: Path, max_epochs: int,
          resume: Path | None, keep_as: Path) -> Path:
    """Fit (or continue) a spoc-train run to ``max_epochs``; copy its last.ckpt to ``keep_as``."""
    args = ["fit", "--config", cfg.train_config, *cfg.train_args, "--data.root", str(data),
            "--trainer.default_root_dir", str(run_dir), "--trainer.max_epochs", str(max_epochs)]
    if resume is not None:
        args += ["--ckpt_path", str(resume)]
    with warnings.catch_warnings():  # sys.argv holds spoc-dagger's options, not spoc-train's
        warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        warnings.filterwarnings("ignore", message=".*dirpath has changed.*")
        build_cli(args)
    keep_as.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(last_checkpoint(run_dir), keep_as)
    return keep_as


def checkpoint_epochs(ckpt: Path) -> int:
    """Epochs a spoc-train checkpoint has completed."""
    state = torch.load(str(ckpt), map_location="cpu", weights_only=False)
    loops = state.get("loops", {}).get("fit_loop", {})
    # last.ckpt is saved at an epoch's end, before Lightning counts it "completed"; "processed"
    # is what a resumed fit (and ShardDataModule._epoch) counts.
    done = loops.get("epoch_progress", {}).get("current", {}).get("processed")
    return int(done if done is not None else state.get("epoch", -1) + 1)


def evaluate_round(cfg: DaggerConfig, ckpt: Path, out: Path) -> dict:
    """spoc-eval's aggregate of a checkpoint on the held-out houses."""
    info = evaluate(EvalConfig(houses=cfg.eval_houses, out=str(out), checkpoint=str(ckpt),
                               episodes=cfg.eval_episodes, seed=cfg.eval_seed,
                               workers=cfg.eval_workers, max_steps=cfg.eval_max_steps,
                               end_threshold=cfg.end_threshold,
                               end_threshold_by_task=cfg.end_threshold_by_task,
                               detector=cfg.detector,
                               videos=0, progress=False))
    agg = info["aggregated"]
    return {"success": agg["success_rate"], "success_ci95": agg["success_ci95"],
            "spl": agg["spl"], "eval_dir": str(out)}


# --------------------------------------------------------------------------- rounds


class DaggerRun:
    """The state of a DAgger directory: its config, finished rounds and a pending round."""

    def __init__(self, cfg: DaggerConfig):
        self.cfg, self.out = cfg, Path(cfg.out)
        path = self.out / INFO_NAME
        try:
            saved = json.loads(path.read_text()) if path.is_file() else {}
            dataset = saved["config"]["dataset"] if saved else cfg.dataset
        except (ValueError, KeyError, TypeError) as e:
            raise DaggerError(f"out: {path} is not a readable DAgger record "
                              f"({type(e).__name__}: {e}); use another --out") from None
        if dataset != cfg.dataset:
            raise DaggerError(f"out: {self.out} holds a DAgger run on {dataset}, not "
                              f"{cfg.dataset}; use another --out")
        self.rounds: list[dict] = saved.get("rounds", [])
        self.pending: dict = saved.get("pending", {})

    def save(self) -> None:
        record = {"config": dataclasses.asdict(self.cfg), "betas": beta_schedule(self.cfg),
                  "rounds": self.rounds, "pending": self.pending}
        write_atomic(self.out / INFO_NAME, json_bytes(record))
        write_atomic(self.out / TABLE_NAME, rounds_table(self.rounds).encode())

    def checkpoint(self, arm: str, round_: int) -> Path:
        return self.out / ("bc" if arm == "bc" else "") / "checkpoints" / f"round-{round_}.ckpt"

    def shard_indices(self, root: Path, round_: int, episodes: int) -> list[int]:
        """Shard indices of a round: a pending round's own, else new ones after the last."""
        key = f"{root}:{round_}"
        if key not in self.pending:
            first = next_shard_index(root)
            count = -(-episodes // self.cfg.episodes_per_shard)
            self.pending[key] = list(range(first, first + count))
            self.save()
        return self.pending[key]


def run_round0(run: DaggerRun) -> dict:
    """Behaviour cloning on the dataset (or the given checkpoint), evaluated."""
    cfg, ckpt = run.cfg, run.checkpoint("dagger", 0)
    if cfg.init_checkpoint is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cfg.init_checkpoint, ckpt)
    else:
        train(cfg, Path(cfg.dataset), run.out / "train", cfg.initial_epochs, None, ckpt)
    labels = split_labels(Path(cfg.dataset))
    row = {"round": 0, "beta": None, "new_episodes": 0, "new_labels": 0,
           "total_expert_labels": labels, "rollout_success": None, "shards": [],
           "checkpoint": str(ckpt), "epochs": checkpoint_epochs(ckpt),
           **evaluate_round(cfg, ckpt, run.out / "eval" / "round-0")}
    if cfg.bc_compare:  # the BC arm starts from the same data and checkpoint
        link_dataset(Path(cfg.dataset), run.out / "bc" / "data")
        row.update({"bc_total_expert_labels": labels, "bc_success": row["success"],
                    "bc_spl": row["spl"], "bc_checkpoint": str(ckpt)})
    return row


def run_round(run: DaggerRun, r: int, beta: float) -> dict:
    """One DAgger round (and its BC-arm twin): collect, write, train, evaluate."""
    cfg = run.cfg
    data = Path(cfg.dataset)
    prev = run.checkpoint("dagger", r - 1)
    policy, pinfo = load_policy(prev)
    view = open_view(data, cfg.train_houses, pinfo.goals, cfg.max_steps, cfg.envs)
    settings = dataclasses.replace(view.settings,
                                   room_anchors=dict(pinfo.config.get("room_anchors") or {}))
    if cfg.detector is not None:
        settings = dataclasses.replace(settings, detector=load_detector(cfg.detector, pinfo))
    records = view.houses.read(list(range(len(view.houses))))
    slots = plan_slots(len(records), cfg.episodes_per_round, round_seed(cfg.seed, r))
    episodes, skipped = mixed_rollouts(policy, records, slots, settings, beta, r,
                                       cfg.seed, cfg.sample, cfg.end_threshold,
                                       cfg.end_threshold_by_task)
    if not episodes:
        raise DaggerError(f"round {r}: no rollout episode on {view.houses.path} (skipped: "
                          f"{dict(skipped)}); check the training houses and tasks")
    indices = run.shard_indices(data, r, len(episodes))
    write_round_shards(data, indices, episodes, view.video, cfg.episodes_per_shard, skipped,
                       view.frames)
    new_labels = sum(len(e.episode.path.actions) for e in episodes)
    epochs = checkpoint_epochs(prev) + cfg.epochs_per_round
    ckpt = train(cfg, data, run.out / "train", epochs, prev, run.checkpoint("dagger", r))
    row = {"round": r, "beta": beta, "new_episodes": len(episodes), "new_labels": new_labels,
           "total_expert_labels": split_labels(data),
           "rollout_success": float(np.mean([e.success for e in episodes])),
           "expert_steps": int(sum(sum(a == b for a, b in zip(e.executed, e.episode.path.actions))
                                   for e in episodes)),
           "skipped": dict(skipped), "shards": indices, "checkpoint": str(ckpt),
           "epochs": epochs, "train_config": cfg.train_config, "train_args": cfg.train_args,
           **evaluate_round(cfg, ckpt, run.out / "eval" / f"round-{r}")}
    if cfg.bc_compare:
        row.update(run_bc_round(run, r, view, records, new_labels))
    return row


def run_bc_round(run: DaggerRun, r: int, view: DatasetView, records: dict, labels: int
                 ) -> dict:
    """The BC arm of round r: >= ``labels`` new expert labels, same epochs, same evaluation."""
    cfg, bc_data = run.cfg, run.out / "bc" / "data"
    if not (bc_data / INFO_FILE).exists():
        raise DaggerError(f"bc_compare: {bc_data} was not made at round 0; turn bc_compare on "
                          "from the start (a fresh --out)")
    slots = plan_slots(len(records), 4 * cfg.episodes_per_round + labels,
                       round_seed(cfg.seed, r, stream=1))
    video = view.frames == FRAMES_VIDEO
    episodes = expert_episodes(records, slots, view.settings, r, labels, frames=video)
    indices = run.shard_indices(bc_data, r, len(episodes))
    write_round_shards(bc_data, indices, episodes, view.video, cfg.episodes_per_shard, Counter(),
                       view.frames)
    prev = run.checkpoint("bc", r - 1) if r > 1 else run.checkpoint("dagger", 0)
    epochs = checkpoint_epochs(prev) + cfg.epochs_per_round
    ckpt = train(cfg, bc_data, run.out / "bc" / "train", epochs, prev, run.checkpoint("bc", r))
    result = evaluate_round(cfg, ckpt, run.out / "bc" / "eval" / f"round-{r}")
    return {"bc_new_labels": sum(len(e.episode.path.actions) for e in episodes),
            "bc_total_expert_labels": split_labels(bc_data), "bc_success": result["success"],
            "bc_spl": result["spl"], "bc_checkpoint": str(ckpt)}


def check_inputs(cfg: DaggerConfig) -> None:
    """Fail before any work on an ``--out`` that is a file, a missing dataset, train split or
    training house file, a train config that is no YAML mapping, a checkpoint or detector that
    cannot be used, and evaluation houses that are missing or are training houses."""
    check_out_dir(cfg.out)
    view = open_view(cfg.dataset, cfg.train_houses, [], cfg.max_steps, cfg.envs)
    check_train_config(cfg.train_config)
    if cfg.detector is not None:
        read_colour_detector(cfg.detector)
    train = TrainingHouses(hashes=set(file_content_hashes(view.houses.path).values()),
                           source=f"the training houses of --dataset {cfg.dataset} "
                                  f"({view.houses.path})")
    if cfg.init_checkpoint is not None:
        policy = checkpoint_info(cfg.init_checkpoint, "--init_checkpoint")
        train.hashes.update(policy.train_house_hashes)
        train.ids.update(policy.train_house_ids)
        if cfg.detector is not None:
            load_detector(cfg.detector, policy)
    load_eval_houses(cfg.eval_houses, train, "--eval_houses")


def check_train_config(path: str) -> None:
    """DaggerError unless ``path`` is a YAML file of spoc-train options (a mapping)."""
    if not Path(path).is_file():
        raise DaggerError(f"--train_config {path}: no such file; give a spoc-train config, e.g. "
                          "configs/train/tiny.yaml")
    try:
        options = yaml.safe_load(Path(path).read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DaggerError(f"--train_config {path}: not YAML ({type(e).__name__}); give a "
                          "spoc-train config, e.g. configs/train/tiny.yaml") from None
    if options is not None and not isinstance(options, dict):
        raise DaggerError(f"--train_config {path}: not a mapping of spoc-train options; give a "
                          "spoc-train config, e.g. configs/train/tiny.yaml")


def run_dagger(cfg: DaggerConfig) -> list[dict]:
    """Every round of ``cfg`` not yet in ``DAGGER_DIR/dagger_info.json``; all rows."""
    run = DaggerRun(cfg)
    check_inputs(cfg)
    run.out.mkdir(parents=True, exist_ok=True)
    if not run.rounds:
        run.rounds.append(run_round0(run))
        run.save()
    for r, beta in enumerate(beta_schedule(cfg), start=1):
        if r < len(run.rounds):
            continue
        run.rounds.append(run_round(run, r, beta))
        run.pending = {k: v for k, v in run.pending.items() if not k.endswith(f":{r}")}
        run.save()
    return run.rounds


def rounds_table(rounds: list[dict]) -> str:
    """The markdown table of dagger.md (BC-arm columns when present)."""
    bc = any("bc_success" in row for row in rounds)
    head = ["round", "beta", "new episodes", "new labels", "total labels", "rollout success",
            "eval success", "SPL"] + (["BC labels", "BC success", "BC SPL"] if bc else [])

    def fmt(v, pct=False):
        if v is None:
            return "-"
        return f"{100 * v:.1f}%" if pct else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = ["# DAgger rounds", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for row in rounds:
        cells = [fmt(row["round"]), fmt(row["beta"]), fmt(row["new_episodes"]),
                 fmt(row["new_labels"]), fmt(row["total_expert_labels"]),
                 fmt(row["rollout_success"], True), fmt(row["success"], True), fmt(row["spl"])]
        if bc:
            cells += [fmt(row.get("bc_total_expert_labels")), fmt(row.get("bc_success"), True),
                      fmt(row.get("bc_spl"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
