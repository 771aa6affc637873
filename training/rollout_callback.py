"""Rollouts while training: :class:`RolloutEvaluation`, a Lightning callback that evaluates the
policy being trained on held-out houses exactly as ``spoc-eval run --checkpoint`` evaluates a
saved checkpoint, and logs its success rate and SPL, so that a ``ModelCheckpoint`` can keep the
checkpoint that navigates best rather than the one with the lowest validation loss.

    spoc-train fit --config configs/train/cpu.yaml --data.root DATASET_DIR \\
        --trainer.callbacks+=training.rollout_callback.RolloutEvaluation \\
        --trainer.callbacks.houses data/houses/val.jsonl.gz --trainer.callbacks.episodes 200

What is evaluated is what ``spoc-eval run --checkpoint`` would load: the policy's weights and
its checkpoint record (:func:`agents.checkpoint.policy_record`) are written to a temporary
checkpoint file, which the evaluation's own code reads (:func:`eval.evaluate.build_run`,
:func:`eval.inputs.load_eval_houses`, :func:`eval.slots.plan_slots`,
:func:`eval.rollout.rollout`, :func:`eval.metrics.summarize`), so the numbers are those of
:meth:`RolloutEvaluation.eval_config` given to ``spoc-eval run`` for that checkpoint (tested).
The training module itself is never switched out of train mode, and the global random states
are restored after each rollout, so a run with the callback trains the same weights as a run
without it (tested).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from agents.checkpoint import CHECKPOINT_KEY, policy_record
from common.errors import InputError
from eval.config import EvalConfig, validate_config
from eval.evaluate import build_run
from eval.inputs import load_eval_houses
from eval.metrics import summarize
from eval.rollout import rollout
from eval.slots import plan_slots
from training.module import PolicyModule

PREFIX = "rollout/"
METRICS = {"success": "success_rate", "spl": "spl", "reached_goal": "reached_goal_rate",
           "final_distance": "final_distance", "steps": "steps"}
"""Logged name (after :data:`PREFIX`) -> key of :func:`eval.metrics.summarize`: the success
rate, SPL, the rate of episodes that stood in a goal state at some step (success had they
ended there), the mean geodesic metres from the final state to the goal (it falls while the
success rate is still 0) and the mean steps taken."""
SUCCESS = PREFIX + "success"
"""What the checkpoint :meth:`RolloutEvaluation.best_checkpoint` keeps maximises."""
NAME = "RolloutEvaluation"


class RolloutError(InputError):
    """A :class:`RolloutEvaluation` setting that cannot be used; the message names it."""


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, numpy's and torch's global random states (CUDA's where it is in use)
    on exit: building the evaluated policy draws initial weights from torch's."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def write_policy_checkpoint(path: Path, module: PolicyModule, global_step: int) -> Path:
    """The module's policy as ``agents.checkpoint.load_policy`` reads a spoc-train checkpoint:
    its ``policy.*`` weights (on the CPU), its record and the optimizer steps it was trained
    for."""
    state = {f"policy.{k}": v.detach().cpu() for k, v in module.policy.state_dict().items()}
    torch.save({"state_dict": state, CHECKPOINT_KEY: policy_record(module.policy, module.spec),
                "global_step": global_step}, str(path))
    return path


class RolloutEvaluation(Callback):
    """Roll the policy being trained out on held-out houses and log ``rollout/success``,
    ``rollout/spl``, ``rollout/reached_goal``, ``rollout/final_distance`` and
    ``rollout/steps`` (:data:`METRICS`).

    Only global rank 0 rolls out (with ``workers`` processes); the other ranks wait and
    receive its numbers, so every rank logs the same values and a ``ModelCheckpoint``
    monitoring them decides the same on all of them.
    """

    def __init__(self, houses: str = EvalConfig.houses, episodes: int = EvalConfig.episodes,
                 seed: int = EvalConfig.seed, workers: int = EvalConfig.workers,
                 every_n_train_steps: int | None = None,
                 max_steps: int = EvalConfig.max_steps,
                 envs_per_worker: int = EvalConfig.envs_per_worker):
        """
        Args:
            houses: House file of held-out houses (.json, .jsonl, .jsonl.gz), as
                ``spoc-eval run --houses``; houses in the training data are refused.
            episodes: Episodes per rollout, spread evenly over the houses (the same seeded
                set every time, that of ``spoc-eval run --episodes --seed``).
            seed: Seed of the episode set.
            workers: Processes the rollout runs in (1: the training process; 0: one per
                CPU core); the results do not depend on it.
            every_n_train_steps: Roll out every this many optimizer steps (training batches
                without gradient accumulation); None: at the end of every validation.
            max_steps: Episode step limit, as ``spoc-eval run --max_steps``.
            envs_per_worker: Environments each worker steps in lockstep (speed only).
        """
        self.houses, self.episodes, self.seed, self.workers = houses, episodes, seed, workers
        self.every_n_train_steps = every_n_train_steps
        self.max_steps, self.envs_per_worker = max_steps, envs_per_worker
        self._check()
        self._dir: Path | None = None
        self._run: tuple | None = None
        self._last_step: int | None = None

    def _check(self) -> None:
        n = self.every_n_train_steps
        if n is not None and n < 1:
            raise RolloutError(f"{NAME} every_n_train_steps={n}: must be at least 1, or null to "
                               "roll out at the end of every validation")
        for name in ("episodes", "max_steps", "envs_per_worker"):
            if getattr(self, name) < 1:
                raise RolloutError(f"{NAME} {name}={getattr(self, name)}: must be at least 1")
        if self.workers < 0:
            raise RolloutError(f"{NAME} workers={self.workers}: give a number of worker "
                               "processes (1: the training process), or 0 for one per CPU core")
        if self.seed < 0:
            raise RolloutError(f"{NAME} seed={self.seed}: must be >= 0")
        if not Path(self.houses).is_file():
            raise RolloutError(f"{NAME} houses={self.houses}: no such file; give a house file "
                               "of held-out houses, e.g. data/houses/val.jsonl.gz")

    def eval_config(self, checkpoint: str | Path) -> EvalConfig:
        """The ``spoc-eval run`` config that gives the numbers this callback logs for
        ``checkpoint``: ``--checkpoint CKPT --houses --episodes --seed --max_steps``."""
        return EvalConfig(houses=str(self.houses), checkpoint=str(checkpoint),
                          episodes=self.episodes, seed=self.seed, workers=self.workers,
                          envs_per_worker=self.envs_per_worker, max_steps=self.max_steps,
                          videos=0, progress=False)

    def best_checkpoint(self, dirpath: str | Path) -> ModelCheckpoint:
        """A checkpoint callback that keeps the weights of the highest ``rollout/success``
        (ties: the earlier) as ``best-rollout-*.ckpt`` in ``dirpath``, saved when this
        callback rolls out (``spoc-train`` adds it beside its own checkpoints)."""
        return ModelCheckpoint(dirpath=dirpath, filename="best-rollout-{epoch}-{step}",
                               monitor=SUCCESS, mode="max", save_top_k=1,
                               every_n_train_steps=self.every_n_train_steps)

    # ------------------------------------------------------------------------ Lightning hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Check the module and the checkpoint callbacks, and build the evaluation once: its
        rollout settings and its houses (refusing training houses) on every rank, so that bad
        input stops every rank alike."""
        if not isinstance(pl_module, PolicyModule):
            raise RolloutError(f"{NAME}: rolls out a spoc-train policy (training.module."
                               f"PolicyModule), not a {type(pl_module).__name__}; drop it here")
        self._check_checkpoints(trainer)
        self._dir = Path(tempfile.mkdtemp(prefix="spoc-rollout-"))
        ckpt = write_policy_checkpoint(self._dir / "policy.ckpt", pl_module, trainer.global_step)
        cfg = self.eval_config(ckpt)
        validate_config(cfg)
        with preserved_rng():  # build_run loads the policy, drawing initial weights
            spec, settings, train, _ = build_run(cfg)
        train.source = "this run's training houses"
        houses = load_eval_houses(cfg.houses, train, option=f"{NAME} houses")
        self._last_step = None
        self._run = spec, settings, houses, plan_slots(len(houses), cfg.episodes, cfg.seed)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = self._run = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        n, step = self.every_n_train_steps, trainer.global_step
        if n is not None and step % n == 0 and step != self._last_step:
            self._evaluate(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                                ) -> None:
        if self.every_n_train_steps is None and not trainer.sanity_checking:
            self._evaluate(trainer, pl_module)

    # ------------------------------------------------------------------------ the work

    def _check_checkpoints(self, trainer: pl.Trainer) -> None:
        """Refuse a ModelCheckpoint monitoring a rollout metric that saves at other steps than
        the rollouts happen: it would keep weights with a number measured on earlier ones."""
        n = self.every_n_train_steps
        for cb in trainer.checkpoint_callbacks:
            if not str(cb.monitor or "").startswith(PREFIX):
                continue
            steps, epochs = cb._every_n_train_steps, cb._every_n_epochs
            timed = cb._train_time_interval is not None
            if n is None and (steps or timed):
                fix = "drop its every_n_train_steps / train_time_interval (save at validation)"
            elif n is not None and (timed or epochs or not steps or steps % n):
                fix = f"give it every_n_train_steps: {n} (or a multiple) and no every_n_epochs"
            else:
                continue
            raise RolloutError(f"ModelCheckpoint(monitor={cb.monitor}) saves at other steps "
                               f"than {NAME} (every_n_train_steps={n}) rolls out; {fix}")

    def rollout_metrics(self, trainer: pl.Trainer, pl_module: PolicyModule) -> dict[str, float]:
        """Roll the module's current policy out (global rank 0) and return the metrics, the
        same on every rank. The global random states are left as they were."""
        metrics: dict[str, float] | str | None = None
        if trainer.is_global_zero:
            spec, settings, houses, slots = self._run
            with preserved_rng():
                write_policy_checkpoint(self._dir / "policy.ckpt", pl_module, trainer.global_step)
                outcomes = rollout(spec, houses, slots, settings, self.workers)
            results = [o.result for o in outcomes if o.result is not None]
            summary = summarize(results)
            metrics = {PREFIX + name: float(summary[key]) for name, key in METRICS.items()}
            if not results:
                metrics = (f"{NAME} houses={self.houses}: zero valid episodes out of "
                           f"{len(slots)}; check the houses and the policy's goals")
        metrics = trainer.strategy.broadcast(metrics, src=0)
        if isinstance(metrics, str):
            raise RolloutError(metrics)
        return metrics

    def _evaluate(self, trainer: pl.Trainer, pl_module: PolicyModule) -> None:
        """Roll out and log: to ``trainer.callback_metrics`` (what a ModelCheckpoint reads;
        the progress bar shows the success rate) and to every logger at the optimizer step."""
        self._last_step = trainer.global_step
        metrics = self.rollout_metrics(trainer, pl_module)
        for name, value in metrics.items():
            pl_module.log(name, value, logger=False, prog_bar=name == SUCCESS)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
