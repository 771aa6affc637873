"""``spoc-pretrain``'s LightningModule: the policy's conv blocks with two heads, target types
per cell and room type per frame (:class:`EncoderPretrainModule`), and what a pretrained
encoder takes each type for where it is absent (:func:`confusion_report`)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.frames import resize_frames, resize_labels
from agents.policy import PolicyConfig, conv_grid, conv_stack, normalise_frames
from common.errors import InputError
from common.files import json_bytes, write_atomic
from datagen.constants import KEY_META, KEY_RGB
from datagen.shards import iter_episodes
from datagen.video import decode_frames
from sim.assets import object_types
from sim.scene import chromaticity, type_color
from training.data.houses import PoseRenderer
from training.data.info import load_info, shard_urls
from training.module import log_data_counters, lr_factor, register_data_counters
from training.pretrain.data import EpisodeLabeler, pixel_counts
from training.pretrain.encoder import ENCODER_KEY
from training.pretrain.metrics import (
    SCORE_BINS,
    SIZE_EDGES,
    average_precision,
    bucket_names,
    cell_targets,
    detection_counts,
    detection_table,
    false_positive_causes,
    object_loss,
    score_histogram,
    size_recall_counts,
)


class EncoderPretrainModule(pl.LightningModule):
    """The policy's conv blocks with two heads: target types per cell, room type per frame."""

    def __init__(
        self,
        policy: PolicyConfig | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        room_weight: float = 0.5,
        object_pos_weight: float = 5.0,
        focal_gamma: float = 0.0,
        object_min_pixels: int = 1,
        dataset_spec: dict | None = None,
    ):
        """
        Args:
            policy: The policy architecture whose encoder is pretrained (channels and groups
                must be the behaviour cloning run's; FiLM, if any, is left at identity).
            lr: AdamW learning rate (constant after warm-up).
            weight_decay: AdamW weight decay.
            warmup_steps: Steps of linear learning-rate warm-up.
            room_weight: Weight of the room-type loss beside the per-cell object loss.
            object_pos_weight: Weight of the positive cells in the object loss (a target type
                is in a cell a few times in a thousand; 1 = plain binary cross-entropy).
            focal_gamma: Focal loss exponent of the object loss: each cell's term is scaled by
                (1 - p)^gamma, p the probability it gives the right answer, so the many easy
                cells stop drowning the few hard ones (0 = cross-entropy; 2 is the usual).
            object_min_pixels: Pixels of a type (at the training resolution) from which a cell
                counts as showing it; cells with fewer but some are left out of the object
                loss (1 = any pixel, every cell counted). Validation counts any pixel.
            dataset_spec: Set by the CLI from the datamodule (``LabelledFrameDataModule.spec``).
        """
        super().__init__()
        if focal_gamma < 0:
            raise InputError(f"model.focal_gamma: {focal_gamma} must be >= 0 (0 = plain "
                             "cross-entropy)")
        if object_min_pixels < 1:
            raise InputError(f"model.object_min_pixels: {object_min_pixels} must be >= 1 "
                             "(1 = a cell shows a type from one pixel of it)")
        if dataset_spec is None:
            raise ValueError("model.dataset_spec: missing; build EncoderPretrainModule with "
                             "dataset_spec=LabelledFrameDataModule(...).spec (the CLI links it)")
        self.save_hyperparameters()
        self.spec = dataset_spec
        self.cfg = replace(policy or PolicyConfig(), goal_film=False, aux_heads=False,
                           image_size=tuple(dataset_spec["image_size"]))
        self.grid = conv_grid(self.cfg)
        self.convs = conv_stack(self.cfg)
        c = self.cfg.channels[-1]
        self.object_head = nn.Conv2d(c, len(dataset_spec["objects"]), 1)
        self.room_head = nn.Linear(c, max(1, len(dataset_spec["rooms"])))
        self.register_buffer("pos_weight", torch.tensor(float(object_pos_weight)),
                             persistent=False)
        register_data_counters(self)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames (N, 3, h, w) -> object logits (N, K, gh, gw), room logits (N, R)."""
        x = self.convs(normalise_frames(frames))  # (N, C, gh, gw)
        return self.object_head(x), self.room_head(x.mean((2, 3)))

    def _losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        objects, rooms = self(batch["frames"])
        target, mask = cell_targets(batch["objects"], self.hparams.object_min_pixels)
        out = {"object_loss": object_loss(objects.float(), target, self.pos_weight,
                                          self.hparams.focal_gamma, mask)}
        out["room_loss"] = (F.cross_entropy(rooms.float(), batch["rooms"], ignore_index=-1)
                            if (batch["rooms"] >= 0).any() else rooms.sum() * 0)
        out["loss"] = out["object_loss"] + self.hparams.room_weight * out["room_loss"]
        out["object_logits"], out["room_logits"] = objects, rooms
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self._losses(batch)
        n = batch["frames"].shape[0]
        for name in ("loss", "object_loss", "room_loss"):
            self.log(f"train/{name}", out[name], batch_size=n, prog_bar=name == "loss")
        log_data_counters(self, batch)
        return out["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(2, len(self.spec["objects"]), 3, dtype=torch.long,
                                       device=self.device)
        self._val_rooms = torch.zeros(2, dtype=torch.long, device=self.device)
        self._val_sizes = torch.zeros(len(self.spec["objects"]), len(SIZE_EDGES), 2,
                                      dtype=torch.long, device=self.device)
        self._val_scores = torch.zeros(len(self.spec["objects"]), 2, SCORE_BINS,
                                       dtype=torch.long, device=self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self._losses(batch)
        n = batch["frames"].shape[0]
        for name in ("loss", "object_loss", "room_loss"):
            self.log(f"val/{name}", out[name], batch_size=n, sync_dist=True,
                     prog_bar=name == "loss")
        objects, rooms = out["object_logits"], out["room_logits"]  # validation-only counts
        self._val_counts += detection_counts(objects > 0, batch["objects"] > 0)
        frame_scores = objects.flatten(2).amax(2)  # (N, K) each type's best cell
        self._val_sizes += size_recall_counts(frame_scores > 0, batch["pixels"])
        self._val_scores += score_histogram(frame_scores, batch["pixels"])
        self._val_rooms += torch.stack([(rooms.argmax(-1) == batch["rooms"]).sum(),
                                        (batch["rooms"] >= 0).sum()])

    def on_validation_epoch_end(self) -> None:
        """Micro precision and recall of the object cells and of "type k is in the frame",
        that recall per type and per size bucket, and the accuracy of the room type; the
        per-type table goes to ``val_detection.json`` in the run's log folder."""
        reduce = self.trainer.strategy.reduce
        counts = reduce(self._val_counts, reduce_op="sum").float()
        sizes = reduce(self._val_sizes, reduce_op="sum").float()
        scores = reduce(self._val_scores, reduce_op="sum")
        for level, (hit, predicted, actual) in zip(("object", "frame"), counts.sum(1)):
            self.log(f"val/{level}_precision", hit / predicted.clamp(min=1))
            self.log(f"val/{level}_recall", hit / actual.clamp(min=1), prog_bar=True)
        for name, (hit, _, actual) in zip(self.spec["objects"], counts[1]):
            if actual > 0:
                self.log(f"val/frame_recall_{name}", hit / actual)
        for bucket, (hit, actual) in zip(bucket_names(), sizes.sum(0)):
            if actual > 0:
                self.log(f"val/frame_recall_px{bucket}", hit / actual)
        aps = [ap for ap in map(average_precision, scores) if ap is not None]
        if aps:
            self.log("val/frame_map", sum(aps) / len(aps), prog_bar=True)
        room_hit, rooms = reduce(self._val_rooms, reduce_op="sum").float()
        self.log("val/room_acc", room_hit / rooms.clamp(min=1))
        if not self.trainer.sanity_checking and self.trainer.is_global_zero \
                and self.trainer.log_dir:
            table = detection_table(self.spec["objects"], counts.long(), sizes.long(), scores)
            write_atomic(Path(self.trainer.log_dir) / "val_detection.json", json_bytes(
                {"epoch": self.current_epoch, "step": self.global_step, "types": table}))

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
        warmup = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, warmup, None, 0))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[ENCODER_KEY] = {"config": asdict(self.cfg), "objects": self.spec["objects"],
                                   "rooms": self.spec["rooms"],
                                   "state_dict": {k: v.detach().cpu() for k, v in
                                                  self.convs.state_dict().items()}}


def confusion_report(checkpoint: str | Path, root: str | Path, split: str = "val",
                     top: int = 3) -> dict:
    """What a ``spoc-pretrain`` checkpoint takes for each target type in the frames of
    ``split`` that do not show it: per type, the false-positive frames (some cell scores the
    type above 0) and the ``top`` object types their best cell mostly shows ("<none>": walls,
    floor, doors), each with its share and its colour distance to the target in the
    embedded renderer's palette (L1 of the chromaticities, ``sim.scene.type_color``)."""
    module = EncoderPretrainModule.load_from_checkpoint(str(checkpoint), map_location="cpu")
    module.eval()
    root = Path(root)
    info = load_info(root)
    every = object_types()
    labeler = EpisodeLabeler(info, PoseRenderer.house_files(info, [split]), objects=every)
    targets = module.spec["objects"]
    columns = [every.index(t) for t in targets]  # pixel_counts column of each target
    size = module.cfg.image_size
    causes = torch.zeros(len(targets), len(every) + 1, dtype=torch.long)
    frames_seen = 0
    for url in shard_urls(root, split):
        for sample in iter_episodes(Path(url)):
            if KEY_RGB in sample:
                maps, _ = labeler(sample[KEY_META], split)
                rgb = torch.from_numpy(decode_frames(sample[KEY_RGB], 0, len(maps)))
            else:  # a pose-only dataset: the frames rendered with the labels
                frames, maps, _ = labeler.render(sample[KEY_META], split)
                rgb = torch.from_numpy(frames)
            with torch.no_grad():
                logits = module(resize_frames(rgb.permute(0, 3, 1, 2), size))[0].float()
            maps = torch.from_numpy(maps)
            absent = pixel_counts(maps, len(every))[:, columns] == 0
            causes += false_positive_causes(logits, resize_labels(maps, size), absent,
                                            len(every))
            frames_seen += len(maps)

    names = ["<none>", *every]
    report = {"checkpoint": str(checkpoint), "split": split, "frames": frames_seen,
              "types": {}}
    for k, target in enumerate(targets):
        row, total = causes[k], int(causes[k].sum())
        order = [int(a) for a in row.argsort(descending=True)[:top] if row[a] > 0]
        report["types"][target] = {"false_positive_frames": total, "taken_for": [
            {"type": names[a], "share": round(int(row[a]) / total, 3),
             "colour_distance": None if a == 0 else round(float(np.abs(
                 chromaticity(type_color(names[a])) - chromaticity(type_color(target))).sum()), 3)}
            for a in order]}
    return report


