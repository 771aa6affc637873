"""``spoc-dagger``: DAgger (Ross, Gordon and Bagnell 2011, "A Reduction of Imitation Learning
and Structured Prediction to No-Regret Online Learning", arXiv:1011.0686) on the pipeline's
own stages.

    spoc-dagger --config configs/dagger/tiny.yaml [--rounds 3] [--print_config]

Round 0 is behaviour cloning on the dataset (or ``--init_checkpoint``). Round r = 1..R:

1. roll out the mixture ``beta_r * expert + (1 - beta_r) * policy`` on the TRAINING houses
   (each step executes the expert's action with probability ``beta_r``, a coin seeded per
   episode; episodes are drawn like the evaluation harness draws them, independent of the
   policy);
2. label every visited state with ``Oracle.expert_action`` (defined at any state): a sample's
   ``actions.npy`` holds these labels, its frames are what the agent saw there and its poses
   are the visited poses, so ``actions[t]`` is NOT what was executed at step t;
3. append the episodes to the dataset's ``train`` split as new shards (indices after the
   existing ones, written by :mod:`datagen.shards`: same format, sidecars, info.json refresh
   and atomic writes) with ``source: dagger-<r>`` and ``success`` = the rollout succeeded;
4. continue the spoc-train run on the aggregate (``--ckpt_path`` of round r-1,
   ``epochs_per_round`` more epochs);
5. evaluate on held-out houses with spoc-eval's harness.

``DAGGER_DIR`` (``--out``) receives ``dagger_info.json`` (one row per round: beta, new episodes
and labels, total expert labels in the train split, rollout and evaluation success, SPL,
checkpoint, and the spoc-train config and arguments it trained with: a rerun with more rounds
may pass others), ``dagger.md`` (the same as a table), ``train/`` (the continued spoc-train run),
``checkpoints/round-R.ckpt`` and ``eval/round-R/``. A rerun skips finished rounds.

With ``--bc_compare true`` a behaviour-cloning arm runs beside it: each round it adds fresh
EXPERT episodes (on the same training houses) with at least as many labels as the DAgger round
added, to a copy of the round-0 dataset under ``DAGGER_DIR/bc/data`` (hard links), trains
for the same epochs from the same round-0 checkpoint and is evaluated on the same episodes; its
numbers land in the same rows (``bc_*``), so both arms are compared at equal label counts.

A policy trained with the target's box (``--data.target_box true`` in ``train_args``) can be
rolled out and evaluated as deployed: ``--detector FILE`` gives it the box a ``spoc-detector``
reads from each frame instead of the simulator's, and ``--end_threshold`` (per task:
``--end_threshold_by_task``) overrules its unsure ``end``s, in the rollouts and the
evaluations alike; training reads the simulator's box. A policy trained with RoomNav anchors
(``--data.room_anchors``, carried by its checkpoint) is given its RoomNav goals' anchor boxes
in both, and ``train_args`` must repeat the anchors (a resume refuses others).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tarfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from datagen.constants import INFO_FILE, SHARD_GLOB
from datagen.episodes import Episode, HouseFile, episode_labels, render_frames
from datagen.files import json_bytes, sha256_file, write_atomic
from datagen.oracle import ExpertPath
from datagen.shards import (
    DatasetError,
    VideoConfig,
    _remove_temps,
    complete_sidecar,
    encode_mp4,
    episode_meta,
    read_info,
    refresh_info,
    shard_paths,
    write_episode_sample,
)
from datagen.tasks import TaskConfig
from eval.metrics import EpisodeResult
from eval.rollout import (
    EpisodeRun,
    EpisodeSlot,
    HouseContexts,
    RolloutSettings,
    action_rng,
    batch_obs,
    lockstep,
    plan_slots,
    policy_actions,
    stopping_rule_error,
    wants_boxes,
)
from sim.camera import CameraConfig
from sim.lattice import END, AgentConfig

INFO_NAME = "dagger_info.json"
TABLE_NAME = "dagger.md"
TRAIN_SPLIT = "train"
"""The split DAgger appends to: the one ``ShardDataModule`` trains on."""


class DaggerError(ValueError):
    """A config or dataset DAgger cannot use; the message names the field and the fix."""


# --------------------------------------------------------------------------- config


@dataclass
class DaggerConfig:
    """DAgger rounds: mixed rollouts on training houses, oracle labels, retraining, evaluation."""

    dataset: str = "data/nav"
    """Dataset directory from `spoc-datagen episodes` (train and val splits); DAgger appends
    shards to its train split."""
    out: str = "runs/dagger"
    """DAgger directory: dagger_info.json, dagger.md, train/, checkpoints/, eval/, bc/."""
    train_config: str = "configs/train/tiny.yaml"
    """spoc-train config (LightningCLI YAML) used for round 0 and every round."""
    train_args: list[str] = field(default_factory=list)
    """Extra spoc-train options, e.g. ["--data.batches_per_epoch", "50"]."""
    train_houses: str | None = None
    """Training house file; default: the one info.json's train split was generated from."""
    init_checkpoint: str | None = None
    """Round-0 policy (a spoc-train checkpoint); default: train BC for initial_epochs first."""
    initial_epochs: int = 2
    """Epochs of round-0 behaviour cloning (ignored with init_checkpoint)."""
    rounds: int = 3
    """DAgger rounds R."""
    epochs_per_round: int = 1
    """Training epochs added on the aggregate each round."""
    beta0: float = 0.5
    """Expert-mixing probability of round 1: beta_r = beta0 * beta_decay^(r-1)."""
    beta_decay: float = 0.5
    """Per-round decay of beta."""
    betas: list[float] | None = None
    """Explicit beta per round (overrides beta0/beta_decay); length must be rounds."""
    episodes_per_round: int = 64
    """Rollout episodes (on training houses) per round."""
    episodes_per_shard: int = 32
    """Episodes per written shard."""
    max_steps: int = 300
    """Rollout step limit; an episode that has not ended by then is stored and fails."""
    envs: int = 4
    """Environments stepped in lockstep (one policy call per step for all)."""
    sample: bool = False
    """Sample the policy's actions from its softmax instead of taking the argmax (seeded per
    episode and round, like ``spoc-eval --sample``: independent of ``envs``)."""
    end_threshold: float | None = None
    """The policy's ``end`` only where its probability is at least this, in the rollouts and
    the evaluations (``spoc-eval --end_threshold``; argmax actions only)."""
    end_threshold_by_task: dict[str, float] | None = None
    """A threshold per task in place of ``end_threshold`` for that task's episodes, in the
    rollouts and the evaluations alike (``spoc-eval --end_threshold_by_task``), e.g.
    ``{roomnav: 0.7}`` beside ``end_threshold: 0.9``."""
    detector: str | None = None
    """A policy trained with the target's box reads it with this detector (``spoc-detector
    fit``) in the rollouts and the evaluations, as deployed, instead of from the simulator;
    training still takes the simulator's box (``--data.target_box true`` in train_args)."""
    seed: int = 0
    """Seed of the rollout episodes, the beta coins and policy sampling."""
    eval_houses: str = "data/houses/val.jsonl.gz"
    """Held-out house file for the per-round evaluation."""
    eval_episodes: int = 50
    """Evaluation episodes per round (the same set every round)."""
    eval_seed: int = 0
    """Seed of the evaluation episode set."""
    eval_workers: int = 1
    """Evaluation worker processes."""
    eval_max_steps: int = 500
    """Evaluation step limit."""
    bc_compare: bool = False
    """Also run a BC arm with as many new expert labels per round (see the module docstring)."""

    def __post_init__(self):
        for name in ("rounds", "episodes_per_round", "episodes_per_shard", "max_steps", "envs",
                     "eval_episodes", "eval_workers", "eval_max_steps"):
            if getattr(self, name) < 1:
                raise DaggerError(f"{name}: {getattr(self, name)} must be >= 1")
        for name in ("initial_epochs", "epochs_per_round"):
            if getattr(self, name) < 0:
                raise DaggerError(f"{name}: {getattr(self, name)} must be >= 0")
        if self.betas is not None and len(self.betas) != self.rounds:
            raise DaggerError(f"betas: {self.betas} has {len(self.betas)} values, rounds is "
                              f"{self.rounds}; give one beta per round")
        for r, beta in enumerate(beta_schedule(self), start=1):
            if not 0.0 <= beta <= 1.0:
                raise DaggerError(f"beta of round {r}: {beta} must be in [0, 1] (check beta0, "
                                  "beta_decay, betas)")
        error = stopping_rule_error(self.end_threshold, self.end_threshold_by_task, self.sample)
        if error:
            raise DaggerError(error)


def beta_schedule(cfg: DaggerConfig) -> list[float]:
    """beta_r for r = 1..R: ``cfg.betas``, else ``beta0 * beta_decay ** (r - 1)``."""
    if cfg.betas is not None:
        return [float(b) for b in cfg.betas]
    return [cfg.beta0 * cfg.beta_decay ** (r - 1) for r in range(1, cfg.rounds + 1)]


def round_seed(seed: int, round_: int, stream: int = 0) -> int:
    """A 32-bit seed for one round's episode set (``stream`` 1: the BC arm's)."""
    return int(np.random.SeedSequence([seed, round_, stream]).generate_state(1)[0])


def coin_rng(seed: int, round_: int, slot: int) -> np.random.Generator:
    """The beta coins of one episode (independent of batching)."""
    return np.random.default_rng([seed, round_, slot])


# --------------------------------------------------------------------------- the dataset


@dataclass
class DatasetView:
    """What DAgger needs from a dataset directory."""

    root: Path
    info: dict
    houses: HouseFile
    settings: RolloutSettings
    video: VideoConfig


def open_view(root: str | Path, train_houses: str | None, goals: list[str],
              max_steps: int, envs: int) -> DatasetView:
    """The dataset's info.json, its training houses (sha256 checked) and rollout settings."""
    root = Path(root)
    info = read_info(root)
    entry = info["splits"].get(TRAIN_SPLIT)
    if entry is None:
        raise DaggerError(f"dataset: {root} has no '{TRAIN_SPLIT}' split; generate it with "
                          "`spoc-datagen episodes --split train`")
    houses = HouseFile.scan(train_houses or entry["houses"]["path"])
    if houses.sha256 != entry["houses"]["sha256"]:
        raise DaggerError(f"train_houses: {houses.path} is not the file {root}'s train split "
                          "was generated from (sha256 differs); give that file")
    config = info["config"]
    settings = RolloutSettings(camera=CameraConfig(**info["camera"]),
                               agent=AgentConfig(**info["agent"]),
                               tasks=TaskConfig(**config["tasks"]), max_steps=max_steps,
                               envs_per_worker=envs, goals=tuple(goals))
    return DatasetView(root, info, houses, settings, VideoConfig(**config["video"]))


def next_shard_index(root: Path, split: str = TRAIN_SPLIT) -> int:
    """One past the highest shard index of ``split`` (registered or on disk)."""
    info = read_info(root)
    indices = [int(p.stem.split("-")[1]) for p in (root / split).glob(SHARD_GLOB)]
    indices += [int(p.stem.split("-")[1]) for p in (root / split).glob("shard-*.json")]
    return max([info["splits"][split]["num_shards"] - 1, *indices]) + 1


def split_labels(root: Path, split: str = TRAIN_SPLIT) -> int:
    """Expert labels (steps) in a split, from info.json's shard table."""
    shards = read_info(root)["splits"][split]["shards"]
    return int(sum(s["steps"] for s in shards.values()))


# --------------------------------------------------------------------------- rollouts


@dataclass
class LabelledEpisode:
    """An episode ready for a shard: its meta source, T states/labels, T frames, success."""

    episode: Episode
    """``path.states``: visited states; ``path.actions``: labels; ``path.metres``: shortest."""
    frames: np.ndarray
    """(T, H, W, 3) uint8: what the agent saw at each stored state."""
    success: bool
    executed: list[int] = field(default_factory=list)
    """The actions actually taken, stored as ``executed.npy``: the loader feeds them as the
    previous-action input, as the policy sees its own executed actions at rollout."""
    labels: tuple[np.ndarray, ...] | None = None
    """The per-step labels of :func:`datagen.episodes.episode_labels` at the stored states
    (goal distance, target pixels, target box), as expert samples carry them."""


class Trace:
    """What one mixed rollout visits: states, frames and the oracle's labels there."""

    def __init__(self, run: EpisodeRun, coins: np.random.Generator):
        self.run, self.coins = run, coins
        self.states: list[tuple[int, int, int]] = []
        self.frames: list[np.ndarray] = []
        self.labels: list[int] = []
        self.executed: list[int] = []

    def choose(self, proposed: int, beta: float) -> int:
        """Record the current state and its label; the action to execute (expert w.p. beta)."""
        label = self.run.expert_action()
        self.states.append(self.run.state)
        self.frames.append(self.run.rgb)
        self.labels.append(label)
        action = label if self.coins.random() < beta else proposed
        self.executed.append(action)
        return action

    def finish(self, round_: int, index: int, success: bool) -> LabelledEpisode:
        ep, ctx = self.run.episode, self.run.ctx
        path = ExpertPath(list(self.states), list(self.labels), ep.path.metres)
        out = Episode(f"dagger-{round_}_{index:06d}", ep.house_id, ep.house_index, ep.task,
                      ep.target, ep.seed, path, ep.shortest_steps, source=f"dagger-{round_}",
                      poses=[ctx.pose(s) for s in self.states])
        return LabelledEpisode(out, np.stack(self.frames), bool(success), list(self.executed),
                               episode_labels(ctx, out))


def _feed_back(policy, executed: list[int]) -> None:
    """Make the policy's previous-action input the action that was executed (expert or own):
    ``LSTMPolicy.act`` records its own proposal, which the coin may have overruled."""
    if hasattr(policy, "executed"):
        policy.executed(executed)


def mixed_rollouts(policy, houses: dict, slots: list[EpisodeSlot], settings: RolloutSettings,
                   beta: float, round_: int, seed: int, sample: bool = False,
                   end_threshold: float | None = None,
                   end_threshold_by_task: dict[str, float] | None = None
                   ) -> tuple[list[LabelledEpisode], Counter]:
    """Roll out the beta-mixture on ``slots`` (in lockstep batches); every visited state is
    labelled by the oracle. Returns the episodes in slot order and the skipped slots' reasons.
    The policy's box comes from ``settings.detector`` when it has one."""
    traces: dict[int, Trace] = {}
    done: dict[int, LabelledEpisode] = {}
    skipped: Counter = Counter()

    def started(run: EpisodeRun) -> None:
        if sample:
            run.rng = action_rng(seed, run.slot.index, round_)
        traces[run.slot.index] = Trace(run, coin_rng(seed, round_, run.slot.index))

    def act(runs: list[EpisodeRun | None]) -> list[int]:
        obs = batch_obs(runs, settings.camera, expert=False, boxes=wants_boxes(policy))
        proposed = policy_actions(policy, obs, runs, end_threshold, end_threshold_by_task)
        executed = [traces[r.slot.index].choose(int(p), beta) if r else END
                    for r, p in zip(runs, proposed)]
        _feed_back(policy, executed)
        return executed

    def finished(run: EpisodeRun, result: EpisodeResult) -> None:
        index = run.slot.index
        done[index] = traces.pop(index).finish(round_, index, result.success)

    policy.reset(settings.envs_per_worker)
    lockstep(houses, slots, settings, act, finished,
             lambda slot, reason: skipped.update([reason]), started)
    return [done[k] for k in sorted(done)], skipped


def expert_episodes(houses: dict, slots: list[EpisodeSlot], settings: RolloutSettings,
                    round_: int, labels: int) -> list[LabelledEpisode]:
    """Fresh expert episodes (the BC arm), in slot order, until they hold ``labels`` labels."""
    contexts, out, total = HouseContexts(houses, settings), [], 0
    for slot in slots:
        if total >= labels:
            break
        ep = contexts.sample(slot)
        if isinstance(ep, str) or ep.goal not in settings.goals:
            continue
        ep = dataclasses.replace(ep, episode_id=f"bc-{round_}_{slot.index:06d}")
        ctx = contexts.get(slot.house)
        out.append(LabelledEpisode(ep, render_frames(ctx, ep.path.states), True,
                                   list(ep.path.actions), episode_labels(ctx, ep)))
        total += len(ep.path.actions)
    return out


# --------------------------------------------------------------------------- shards


def write_labelled_shard(root: Path, k: int, episodes: list[LabelledEpisode],
                         video: VideoConfig, skipped: dict | None = None) -> dict:
    """Write ``episodes`` as shard ``k`` of the train split (skipped when already complete),
    then its sidecar and info.json, like :func:`datagen.shards.write_shard`. Its sidecar."""
    tar_path, sidecar_path = shard_paths(root, TRAIN_SPLIT, k)
    done = complete_sidecar(tar_path, sidecar_path)
    if done is not None:
        return done
    _remove_temps(tar_path.parent, tar_path.name)
    tmp = tar_path.with_name(f".{tar_path.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for e in episodes:
                h, w = e.frames.shape[1:3]
                mp4 = encode_mp4(e.frames, h, w, video)
                write_episode_sample(tar, e.episode.episode_id, mp4,
                                     np.array(e.episode.path.actions, dtype=np.int8),
                                     episode_meta(e.episode, TRAIN_SPLIT, e.success),
                                     executed=np.array(e.executed, dtype=np.int8),
                                     labels=e.labels)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sidecar = {"episodes": len(episodes),
               "steps": sum(len(e.episode.path.actions) for e in episodes),
               "sha256": sha256_file(tmp), "skipped": dict(sorted((skipped or {}).items()))}
    os.replace(tmp, tar_path)
    _remove_temps(sidecar_path.parent, sidecar_path.name)
    write_atomic(sidecar_path, json_bytes(sidecar))
    refresh_info(root)
    return sidecar


def write_round_shards(root: Path, indices: list[int], episodes: list[LabelledEpisode],
                       video: VideoConfig, per_shard: int, skipped: Counter) -> None:
    """Episodes in consecutive groups of ``per_shard`` to shards ``indices`` (in order)."""
    for n, k in enumerate(indices):
        write_labelled_shard(root, k, episodes[n * per_shard:(n + 1) * per_shard], video,
                             skipped if n == 0 else None)


def link_dataset(src: Path, dst: Path) -> None:
    """A copy of every shard of a dataset at ``dst`` (hard links where possible)."""
    info = read_info(src)
    for split, entry in info["splits"].items():
        (dst / split).mkdir(parents=True, exist_ok=True)
        for name in entry["shards"]:
            for path in shard_paths(src, split, int(Path(name).stem.split("-")[1])):
                target = dst / split / path.name
                if not target.exists():
                    try:
                        os.link(path, target)
                    except OSError:
                        shutil.copy2(path, target)
    write_atomic(dst / INFO_FILE, json_bytes(info))
    refresh_info(dst)


# --------------------------------------------------------------------------- train and eval


def train(cfg: DaggerConfig, data: Path, run_dir: Path, max_epochs: int,
          resume: Path | None, keep_as: Path) -> Path:
    """Fit (or continue) a spoc-train run to ``max_epochs``; copy its last.ckpt to ``keep_as``."""
    from training.cli import build_cli, last_checkpoint

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
    from eval.cli import EvalConfig, evaluate

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
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / INFO_NAME
        saved = json.loads(path.read_text()) if path.exists() else {}
        if saved and saved["config"]["dataset"] != cfg.dataset:
            raise DaggerError(f"out: {self.out} holds a DAgger run on {saved['config']['dataset']}"
                              f", not {cfg.dataset}; use another --out")
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
    from eval.cli import load_detector
    from training.policy import load_policy

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
    write_round_shards(data, indices, episodes, view.video, cfg.episodes_per_shard, skipped)
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
    episodes = expert_episodes(records, slots, view.settings, r, labels)
    indices = run.shard_indices(bc_data, r, len(episodes))
    write_round_shards(bc_data, indices, episodes, view.video, cfg.episodes_per_shard, Counter())
    prev = run.checkpoint("bc", r - 1) if r > 1 else run.checkpoint("dagger", 0)
    epochs = checkpoint_epochs(prev) + cfg.epochs_per_round
    ckpt = train(cfg, bc_data, run.out / "bc" / "train", epochs, prev, run.checkpoint("bc", r))
    result = evaluate_round(cfg, ckpt, run.out / "bc" / "eval" / f"round-{r}")
    return {"bc_new_labels": sum(len(e.episode.path.actions) for e in episodes),
            "bc_total_expert_labels": split_labels(bc_data), "bc_success": result["success"],
            "bc_spl": result["spl"], "bc_checkpoint": str(ckpt)}


def check_inputs(cfg: DaggerConfig) -> None:
    """Fail before any work on a missing dataset, train split, config, checkpoint or houses."""
    info = read_info(cfg.dataset)
    if TRAIN_SPLIT not in info["splits"]:
        raise DaggerError(f"dataset: {cfg.dataset} has no '{TRAIN_SPLIT}' split; generate it "
                          "with `spoc-datagen episodes --split train`")
    for name in ("train_config", "init_checkpoint"):
        path = getattr(cfg, name)
        if path is not None and not Path(path).is_file():
            raise DaggerError(f"{name}: {path}: no such file")
    if cfg.detector is not None:
        from sim.detect import ColourDetector

        try:
            ColourDetector.load(cfg.detector)
        except ValueError as e:
            raise DaggerError(f"detector: {e}") from None
    HouseFile.scan(cfg.eval_houses)


def run_dagger(cfg: DaggerConfig) -> list[dict]:
    """Every round of ``cfg`` not yet in ``DAGGER_DIR/dagger_info.json``; all rows."""
    run = DaggerRun(cfg)
    check_inputs(cfg)
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


# --------------------------------------------------------------------------- command line


def build_parser():
    from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(prog="spoc-dagger", description=DaggerConfig.__doc__)
    parser.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
    parser.add_class_arguments(DaggerConfig, as_group=False, instantiate=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    from datagen.houses.io import HouseError
    from eval.cli import EvalInputError

    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    values = {k: args[k] for k in DaggerConfig.__dataclass_fields__}
    try:
        rounds = run_dagger(DaggerConfig(**values))
    except (DaggerError, DatasetError, HouseError, EvalInputError) as e:
        print(f"spoc-dagger: error: {e}", file=sys.stderr)
        return 2
    print(rounds_table(rounds), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
