"""The LightningModule: a thin adapter that trains ``agents.policy`` by behaviour cloning.

Masked cross-entropy against the expert's actions (optionally class-weighted; optionally plus
auxiliary losses on the shards' per-step labels: target in view, metres to the goal), AdamW with a
linear warm-up, a constant rate and an optional linear decay (warm-up / stable / decay),
accuracy logged per step and per-action accuracy per epoch (no training step waits for the
device). Checkpoints carry a plain-dict record (policy config, action and goal vocabularies,
resolution, training houses, dataset info) so ``agents.checkpoint.load_policy`` rebuilds the
policy from the checkpoint path alone.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from agents.checkpoint import CHECKPOINT_KEY, policy_record, policy_state
from agents.policy import PolicyConfig, make_policy
from common.errors import InputError
from training.data.augment import apply_colour
from training.pretrain.encoder import load_encoder


class CheckpointError(InputError):
    """A checkpoint given to a run (``--ckpt_path``, ``model.init_checkpoint``,
    ``model.encoder_init``) that it cannot use; the message names the option and the file."""


class ModelOptionError(InputError):
    """A model option that cannot be used with the others or with the data."""


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


def target_min_pixels(spec: dict) -> int:
    """The ObjectNav success test's ``min_pixels`` of the training dataset (info.json)."""
    try:
        return int(spec["dataset"]["info"]["tasks"]["objectnav"]["min_pixels"])
    except (KeyError, TypeError):
        raise ModelOptionError("model.aux_visible_weight: the dataset's info.json has no "
                               "tasks.objectnav.min_pixels; regenerate it with `spoc-datagen "
                               "episodes` or set model.aux_visible_weight to 0") from None


def register_data_counters(module: pl.LightningModule) -> None:
    """Give a training module the running counts :func:`log_data_counters` logs."""
    module.register_buffer("skipped_total", torch.zeros((), dtype=torch.long), persistent=False)
    module.register_buffer("lost_total", torch.zeros((), dtype=torch.long), persistent=False)


def log_data_counters(module: pl.LightningModule, batch: dict) -> None:
    """Add a training batch's ``num_skipped`` (bad samples skipped) and ``num_lost`` (episodes
    a shard fell short of its info.json count) to the module's running counts and log both
    (``data/skipped_total``, ``data/lost_episodes``)."""
    if "num_skipped" in batch:
        module.skipped_total += batch["num_skipped"]
    if "num_lost" in batch:
        module.lost_total += batch["num_lost"]
    module.log("data/skipped_total", module.skipped_total.float())
    module.log("data/lost_episodes", module.lost_total.float())


AUX_HEADS = ("visible_head.", "distance_head.", "room_head.")
"""Policy parameters used only by training's auxiliary losses (acting never reads them)."""


def load_policy_weights(policy: torch.nn.Module, path: str) -> list[str]:
    """Copy a spoc-train checkpoint's policy weights into ``policy`` (``model.init_checkpoint``);
    returns the auxiliary-head parameters the checkpoint lacks, which keep their fresh values
    (its auxiliary heads that ``policy`` lacks are dropped). Anything else that differs
    raises one line naming the file, the parameter and the fix."""
    where = f"model.init_checkpoint {path}"
    if not Path(path).is_file():
        raise CheckpointError(f"{where}: not found; give a spoc-train .ckpt")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure means "not a usable checkpoint"
        msg = " ".join(str(e).split())[:300]
        raise CheckpointError(f"{where}: unreadable ({type(e).__name__}: {msg}); give a "
                              "spoc-train .ckpt") from e
    if not isinstance(ckpt, dict) or CHECKPOINT_KEY not in ckpt:
        raise CheckpointError(f"{where}: no '{CHECKPOINT_KEY}' record; give a checkpoint "
                              "written by spoc-train")
    theirs = policy_state(ckpt)
    own = policy.state_dict()
    fix = "; start from a checkpoint of the same architecture (model.policy, data.target_box)"
    for key, value in own.items():
        if key not in theirs:
            if not key.startswith(AUX_HEADS):
                raise CheckpointError(f"{where}: has no {key}{fix}")
        elif theirs[key].shape != value.shape:
            raise CheckpointError(f"{where}: {key} is {tuple(theirs[key].shape)}, this run's "
                                  f"{tuple(value.shape)}{fix}")
    extra = [k for k in theirs if k not in own and not k.startswith(AUX_HEADS)]
    if extra:
        raise CheckpointError(f"{where}: has {extra[0]}, which this run's policy lacks{fix}")
    policy.load_state_dict({k: theirs.get(k, v) for k, v in own.items()})
    return [k for k in own if k not in theirs]


def load_encoder_weights(convs: torch.nn.Module, path: str, cfg: PolicyConfig) -> None:
    """Load a ``spoc-pretrain`` checkpoint's conv blocks into ``convs``
    (``model.encoder_init``); anything that stops it is one :class:`CheckpointError` line."""
    try:
        convs.load_state_dict(load_encoder(path, cfg))
    except ValueError as exn:  # load_encoder's own one-line checks
        raise CheckpointError(str(exn)) from exn
    except Exception as exn:  # noqa: BLE001 - any failure means "not a usable checkpoint"
        msg = " ".join(str(exn).split())[:200]
        raise CheckpointError(f"model.encoder_init {path}: unusable ({type(exn).__name__}: "
                              f"{msg}); give a checkpoint written by `spoc-pretrain fit` with "
                              "this run's policy config") from exn


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``valid`` (0 where nothing is), without indexing."""
    m = valid.to(values.dtype)
    return (values * m).sum() / m.sum().clamp(min=1)


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
        aux_visible_weight: float = 0.0,
        aux_distance_weight: float = 0.0,
        aux_room_weight: float = 0.0,
        encoder_init: str | None = None,
        init_checkpoint: str | None = None,
        dataset_spec: dict | None = None,
    ):
        """
        Args:
            policy: Policy architecture; vocabulary sizes, resolution and ``target_box`` are
                taken from the data.
            lr: AdamW learning rate.
            weight_decay: AdamW weight decay.
            warmup_steps: Steps of linear learning-rate warm-up.
            decay_start: Optimizer step at which the rate starts to decay linearly to 0
                (None: constant after warm-up).
            decay_steps: Length of that decay in optimizer steps (> 0 when decay_start is set).
            class_weighting: 'inverse_freq' weights the loss by inverse action frequency in train.
            aux_visible_weight: Weight of an auxiliary loss (0: off): at every ObjectNav step,
                whether the target fills the success test's ``min_pixels`` of the frame (at any
                distance), predicted from that frame's feature and the goal (binary
                cross-entropy on the shards' ``target_pixels``).
            aux_distance_weight: Weight of an auxiliary loss (0: off): log(1 + metres to the
                goal) predicted from the LSTM state (smooth L1 on the shards' ``goal_dist``).
                Steps without labels add nothing to either; ``train/loss`` and ``val/loss``
                stay the behaviour-cloning cross-entropy, ``train/total_loss`` is optimised.
            aux_room_weight: Weight of an auxiliary loss (0: off): at every step, the type of
                the room the agent stands in, predicted from the LSTM state (cross-entropy on
                the loader's ``room_type``; needs ``--data.room_labels true``). Logged as
                ``val/aux_room`` and its accuracy ``val/aux_room_acc``.
            encoder_init: A ``spoc-pretrain`` checkpoint whose conv blocks initialise the
                policy's frame encoder (same channels, groups and image size; FiLM layers
                still start at identity). Only the start: a ``--ckpt_path`` resume restores
                the checkpoint's weights over it.
            init_checkpoint: A ``spoc-train`` checkpoint whose policy weights start this run
                (after ``encoder_init``), e.g. to add an auxiliary head to a trained policy:
                heads this run has and the checkpoint lacks start fresh; the optimizer, rate
                schedule and step count start over (``--ckpt_path`` resumes instead). The
                architecture must otherwise match.
            dataset_spec: Set by the CLI from the datamodule (``ShardDataModule.spec``).
        """
        super().__init__()
        if decay_start is not None and (decay_start < 0 or decay_steps <= 0):
            raise ModelOptionError(f"model.decay_start={decay_start}, model.decay_steps="
                                   f"{decay_steps}: the decay needs decay_start >= 0 and "
                                   "decay_steps > 0 (or leave decay_start unset for a "
                                   "constant rate)")
        if dataset_spec is None:
            raise ValueError("model.dataset_spec: missing; build PolicyModule with "
                             "dataset_spec=ShardDataModule(...).spec (the CLI links it)")
        if min(aux_visible_weight, aux_distance_weight, aux_room_weight) < 0:
            raise ModelOptionError(f"model.aux_visible_weight={aux_visible_weight}, "
                                   f"model.aux_distance_weight={aux_distance_weight}, "
                                   f"model.aux_room_weight={aux_room_weight}: must be >= 0")
        rooms = list(dataset_spec.get("room_types") or [])
        if aux_room_weight > 0 and not rooms:
            raise ModelOptionError(f"model.aux_room_weight={aux_room_weight}: the data gives no "
                                   "room labels; add --data.room_labels true (the dataset needs "
                                   "RoomNav goals)")
        self.save_hyperparameters()
        self.spec = dataset_spec
        self.actions = list(dataset_spec["actions"])
        self.aux = aux_visible_weight > 0 or aux_distance_weight > 0
        self.min_pixels = target_min_pixels(dataset_spec) if aux_visible_weight > 0 else 0
        cfg = policy or PolicyConfig()
        boxes = bool(dataset_spec.get("target_box", False))
        if cfg.target_box and not boxes:
            raise ModelOptionError("model.policy.target_box: the policy takes the target's box "
                                   "but the data gives none; add --data.target_box true")
        cfg = replace(cfg, num_actions=len(self.actions), num_goals=len(dataset_spec["goals"]),
                      image_size=tuple(dataset_spec["image_size"]), target_box=boxes,
                      room_anchors=dict(dataset_spec.get("room_anchors") or {}))
        if self.aux:
            cfg = replace(cfg, aux_heads=True)
        self.room = aux_room_weight > 0
        cfg = replace(cfg, room_types=len(rooms) if self.room else 0)
        self.policy = make_policy(cfg)
        if encoder_init:
            load_encoder_weights(self.policy.encoder.convs, encoder_init, cfg)
        if init_checkpoint:
            load_policy_weights(self.policy, init_checkpoint)
        weights = class_weights(dataset_spec.get("train_action_counts") or [1] * len(self.actions),
                                class_weighting)
        self.register_buffer("loss_weights", weights, persistent=False)
        register_data_counters(self)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.policy(batch)  # (B, L, A)

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int
                                ) -> dict[str, torch.Tensor]:
        """Apply the colour jitter a loader left to the device (``colour`` (B, 2, 3));
        padding stays zero, as when the loader applies it."""
        colour = batch.pop("colour", None)
        if colour is not None:
            frames = apply_colour(batch["frames"], colour[:, None])  # (B, L, 3, H, W)
            batch["frames"] = frames.masked_fill_(~batch["mask"][..., None, None, None], 0)
        return batch

    def _predict(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Loss over the unpadded steps, predictions (B, L), targets (B, L), the mask (B, L)
        and the auxiliary losses (a dict, empty without them).

        The (class-weighted) mean of the cross-entropy where ``mask`` is set, computed over the
        whole padded batch and masked: no boolean indexing, so no wait for the device.
        """
        aux = {}
        if self.aux or self.room:
            heads = self.policy.forward_aux(batch)
            logits = heads["logits"]
            aux = self._aux_losses(batch, heads)
        else:
            logits = self.policy(batch)
        logits = logits.float()  # (B, L, A)
        mask, target = batch["mask"], batch["actions"]  # (B, L) each
        nll = F.cross_entropy(logits.flatten(0, 1), target.flatten(), weight=self.loss_weights,
                              reduction="none").view_as(target)  # (B, L): w[t] * -log p(t)
        m = mask.to(nll.dtype)
        norm = m if self.loss_weights is None else self.loss_weights[target] * m
        loss = (nll * m).sum() / norm.sum().clamp(min=1e-12)
        return loss, logits.argmax(-1), target, mask, aux

    def _aux_losses(self, batch: dict[str, torch.Tensor], heads: dict[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
        """The auxiliary losses whose weight is set (each a mean over the steps that have its
        label), and with the in-view and room losses their accuracy."""
        mask, out = batch["mask"], {}
        if self.hparams.aux_visible_weight > 0:
            visible = heads["visible"].float()
            pixels = batch["target_pixels"]
            seen = mask & (pixels >= 0)
            in_view = (pixels >= self.min_pixels).to(visible.dtype)
            bce = F.binary_cross_entropy_with_logits(visible, in_view, reduction="none")
            out["visible"] = masked_mean(bce, seen)
            out["visible_acc"] = masked_mean(((visible > 0) == (in_view > 0)).float(), seen)
        if self.hparams.aux_distance_weight > 0:
            dist = heads["distance"].float()
            metres = batch["goal_dist"]
            l1 = F.smooth_l1_loss(dist, torch.log1p(metres.clamp(min=0)), reduction="none")
            out["distance"] = masked_mean(l1, mask & (metres >= 0))
        if self.room:
            room, label = heads["room"].float(), batch["room_type"]  # (B, L, R), (B, L)
            known = mask & (label >= 0)
            ce = F.cross_entropy(room.flatten(0, 1), label.clamp(min=0).flatten(),
                                 reduction="none").view_as(label)
            out["room"] = masked_mean(ce, known)
            out["room_acc"] = masked_mean((room.argmax(-1) == label).float(), known)
        return out

    def _objective(self, loss: torch.Tensor, aux: dict[str, torch.Tensor]) -> torch.Tensor:
        """What training minimises: the cross-entropy plus the weighted auxiliary losses."""
        hp = self.hparams
        return loss + sum(getattr(hp, f"aux_{name}_weight") * aux[name]
                          for name in ("visible", "distance", "room") if name in aux)

    def _log_aux(self, stage: str, aux: dict[str, torch.Tensor], batch_size: int) -> None:
        for name, value in aux.items():
            self.log(f"{stage}/aux_{name}", value, batch_size=batch_size,
                     sync_dist=stage == "val")

    def _action_counts(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                       ) -> torch.Tensor:
        """(2, A): correct predictions and occurrences of each expert action where ``mask``."""
        onehot = F.one_hot(target, len(self.actions)) * mask[..., None]  # (B, L, A)
        correct = onehot * (pred == target)[..., None]
        return torch.stack([correct.sum((0, 1)), onehot.sum((0, 1))])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """No step waits for the device: per-action accuracies are counted on it and logged
        per epoch, the skipped-sample count stays a device tensor."""
        loss, pred, target, mask, aux = self._predict(batch)
        bsz = batch["goals"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bsz)
        total = self._objective(loss, aux)
        if aux:
            self.log("train/total_loss", total, batch_size=bsz)
            self._log_aux("train", aux, bsz)
        hits = ((pred == target) & mask).sum()
        self.log("train/acc", hits / mask.sum().clamp(min=1), prog_bar=True, batch_size=bsz)
        self._train_counts += self._action_counts(pred, target, mask)
        log_data_counters(self, batch)
        return total

    def on_train_epoch_start(self) -> None:
        self._train_counts = torch.zeros(2, len(self.actions), dtype=torch.long,
                                         device=self.device)

    def on_train_epoch_end(self) -> None:
        """Training accuracy of each expert action over the epoch (actions that occurred)."""
        correct, total = self.trainer.strategy.reduce(self._train_counts, reduce_op="sum")
        for i, name in enumerate(self.actions):
            if total[i] > 0:
                self.log(f"train/acc_{name}", correct[i].float() / total[i])

    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(2, len(self.actions), dtype=torch.long, device=self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, pred, target, mask, aux = self._predict(batch)
        n = int(mask.sum())
        self.log("val/loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        self._log_aux("val", aux, n)
        self._val_counts += self._action_counts(pred, target, mask)

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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, in one line, a checkpoint whose policy has other auxiliary heads or another
        target-box input than this run's (the state dicts would not match), or boxes other
        RoomNav anchors (the weights would be trained on another input)."""
        record = checkpoint.get(CHECKPOINT_KEY) or {}
        theirs = record.get("config", {}).get("room_anchors") or {}
        mine = self.policy.cfg.room_anchors
        if theirs != mine:
            raise CheckpointError(f"--ckpt_path: the checkpoint's policy boxes RoomNav anchors "
                                  f"{theirs or 'none'} and this run's {mine or 'none'}; set "
                                  "--data.room_anchors as in that run, or start from it with "
                                  "--model.init_checkpoint")
        keys = checkpoint.get("state_dict", {})
        for prefix, wanted, (has, lacks), fix in (
                ("policy.visible_head.", self.policy.cfg.aux_heads,
                 ("has auxiliary heads and this run's has none",
                  "has no auxiliary heads and this run's has them"),
                 "model.aux_visible_weight / model.aux_distance_weight as in that run (0 = no "
                 "heads)"),
                ("policy.room_head.", bool(self.policy.cfg.room_types),
                 ("has a room-type head and this run's has none",
                  "has no room-type head and this run's has one"),
                 "model.aux_room_weight as in that run (0 = no head), or start from it with "
                 "--model.init_checkpoint"),
                ("policy.box_embed.", self.policy.cfg.target_box,
                 ("takes the target's box and this run's does not",
                  "takes no target box and this run's does"),
                 "--data.target_box as in that run")):
            found = any(k.startswith(prefix) for k in keys)
            if found != wanted:
                raise CheckpointError(f"--ckpt_path: the checkpoint's policy "
                                      f"{has if found else lacks}; set {fix}")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = policy_record(self.policy, self.spec)
