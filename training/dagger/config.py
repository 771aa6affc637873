"""DAgger's config (:class:`DaggerConfig`, checked on construction) and its beta schedule."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import InputError
from common.workers import check_workers
from eval.rollout import stopping_rule_error


class DaggerError(InputError):
    """A config or dataset DAgger cannot use; the message names the field and the fix."""


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
    """Evaluation worker processes, as ``spoc-eval run --workers``: 1 works in this process,
    0 starts one per CPU core; results do not depend on it."""
    eval_max_steps: int = 500
    """Evaluation step limit."""
    bc_compare: bool = False
    """Also run a BC arm with as many new expert labels per round (see the module docstring)."""

    def __post_init__(self):
        for name in ("rounds", "episodes_per_round", "episodes_per_shard", "max_steps", "envs",
                     "eval_episodes", "eval_max_steps"):
            if getattr(self, name) < 1:
                raise DaggerError(f"{name}: {getattr(self, name)} must be >= 1")
        check_workers(self.eval_workers, "--eval_workers")
        for name in ("initial_epochs", "epochs_per_round", "seed", "eval_seed"):
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
