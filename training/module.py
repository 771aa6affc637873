"""The LightningModule: a thin adapter that trains ``training.policy`` by behaviour cloning.

Masked cross-entropy against the expert's actions (optionally class-weighted), AdamW with a
linear warm-up, a constant rate and an optional linear decay (warm-up / stable / decay),
accuracy and per-action accuracy logged. Checkpoints carry a plain-dict record
(policy config, action and goal vocabularies, resolution, training houses, dataset info) so
``training.policy.load_policy`` rebuilds the policy from the checkpoint path alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from training.policy import CHECKPOINT_KEY, PolicyConfig, make_policy, policy_record


def lr_factor(step: int, warmup_steps: int, decay_start: int | None, decay_steps: int) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based): warm-up, stable, decay.

    Linear warm-up to 1 over ``warmup_steps``, then constant; with ``decay_start`` set, linear
    decay from 1 at ``decay_start`` to 0 at ``decay_start + decay_steps`` and 0 after. The rate
    before ``decay_start`` does not depend on the decay, so a decay can be branched off any
    checkpoint of a constant-rate run (``--ckpt_path``) and gives the same run up to there.
    """
    factor = min(1.0, (step + 1) / max(1, warmup_steps))
    if decay_start is not None and step >= decay_start:
        factor *= max(0.0, 1.0 - (step - decay_start) / decay_steps)
    return factor


def class_weights(counts: list[int], mode: str) -> torch.Tensor | None:
    """Cross-entropy weights: None, or inverse frequency normalised to mean 1 over seen classes."""
    if mode == "none":
        return None
    counts_t = torch.as_tensor(counts, dtype=torch.float32)
    weights = torch.where(counts_t > 0, 1.0 / counts_t.clamp(min=1), torch.zeros_like(counts_t))
    return weights * (counts_t > 0).sum() / weights.sum()


class PolicyModule(pl.LightningModule):
    """Behaviour cloning of the navigation policy on expert episode chunks."""

    def __init__(
        self,
        policy: PolicyConfig | None = None,
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        decay_start: int | None = None,
        decay_steps: int = 0,
        class_weighting: Literal["none", "inverse_freq"] = "none",
        dataset_spec: dict | None = None,
    ):
        """
        Args:
            policy: Policy architecture; vocabulary sizes and resolution are taken from the data.
            lr: AdamW learning rate.
            weight_decay: AdamW weight decay.
            warmup_steps: Steps of linear learning-rate warm-up.
            decay_start: Optimizer step at which the rate starts to decay linearly to 0
                (None: constant after warm-up).
            decay_steps: Length of that decay in optimizer steps (> 0 when decay_start is set).
            class_weighting: 'inverse_freq' weights the loss by inverse action frequency in train.
            dataset_spec: Set by the CLI from the datamodule (``ShardDataModule.spec``).
        """
        super().__init__()
        if decay_start is not None and (decay_start < 0 or decay_steps <= 0):
            raise ValueError(f"model.decay_start={decay_start}, model.decay_steps={decay_steps}: "
                             "the decay needs decay_start >= 0 and decay_steps > 0 "
                             "(or leave decay_start unset for a constant rate)")
        if dataset_spec is None:
            raise ValueError("model.dataset_spec: missing; build PolicyModule with "
                             "dataset_spec=ShardDataModule(...).spec (the CLI links it)")
        self.save_hyperparameters()
        self.spec = dataset_spec
        self.actions = list(dataset_spec["actions"])
        cfg = replace(policy or PolicyConfig(), num_actions=len(self.actions),
                      num_goals=len(dataset_spec["goals"]),
                      image_size=tuple(dataset_spec["image_size"]))
        self.policy = make_policy(cfg)
        weights = class_weights(dataset_spec.get("train_action_counts") or [1] * len(self.actions),
                                class_weighting)
        self.register_buffer("loss_weights", weights, persistent=False)
        self.skipped_total = 0

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.policy(batch)  # (B, L, A)

    def _predict(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Masked loss, predictions (N,) and targets (N,) over the unpadded steps."""
        logits = self.policy(batch)  # (B, L, A)
        mask = batch["mask"]  # (B, L)
        flat_logits, target = logits[mask].float(), batch["actions"][mask]  # (N, A), (N,)
        loss = F.cross_entropy(flat_logits, target, weight=self.loss_weights)
        return loss, flat_logits.argmax(-1), target

    def _action_counts(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(2, A): correct predictions and occurrences of each expert action."""
        num = len(self.actions)
        total = torch.bincount(target, minlength=num)
        correct = torch.bincount(target[pred == target], minlength=num)
        return torch.stack([correct, total])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, pred, target = self._predict(batch)
        bsz = batch["goals"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bsz)
        self.log("train/acc", (pred == target).float().mean(), prog_bar=True, batch_size=bsz)
        correct, total = self._action_counts(pred, target)
        for i, name in enumerate(self.actions):
            if total[i] > 0:
                self.log(f"train/acc_{name}", correct[i] / total[i], batch_size=bsz)
        self.skipped_total += int(batch.get("num_skipped", 0))
        self.log("data/skipped_total", float(self.skipped_total))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(2, len(self.actions), dtype=torch.long, device=self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, pred, target = self._predict(batch)
        n = int(target.numel())
        self.log("val/loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        self._val_counts += self._action_counts(pred, target)

    def on_validation_epoch_end(self) -> None:
        counts = self.trainer.strategy.reduce(self._val_counts, reduce_op="sum")  # (2, A)
        correct, total = counts.float()
        self.log("val/acc", correct.sum() / total.sum().clamp(min=1), prog_bar=True)
        for i, name in enumerate(self.actions):
            self.log(f"val/acc_{name}", correct[i] / total[i].clamp(min=1))

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.AdamW(self.policy.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
        hp = self.hparams  # a closure is not saved in the checkpoint: a resume can add a decay
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, hp.warmup_steps, hp.decay_start, hp.decay_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = policy_record(self.policy, self.spec)
