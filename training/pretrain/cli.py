"""Pretraining the frame encoder on the simulator's own labels, before behaviour cloning.

A policy trained from scratch must learn to recognise its targets from the action labels alone.
Here the encoder's conv blocks learn it directly first: for every frame of the expert shards
(decoded, as behaviour cloning sees them), which ObjectNav target types each cell of the last
conv feature map shows, and which room type the agent stands in. The labels come from
replaying each stored pose in the embedded renderer (its instance-id image, mapped to object
types) and the house's room layout, so any dataset whose house file is at hand can be labelled;
only the training splits' houses are used.

    spoc-pretrain fit --config configs/pretrain/cpu.yaml --data.root DATASET_DIR \\
        --data.train_splits '[train, train-noise]' --trainer.default_root_dir RUN_DIR
    spoc-train fit --config configs/train/cpu.yaml ... \\
        --model.encoder_init RUN_DIR/checkpoints/last.ckpt

A batch is a dict of ``frames`` (N, 3, h, w) uint8 at the training resolution, ``objects``
(N, K, gh, gw) int32 (how many pixels of target type k each cell of the conv grid shows, at the
training resolution; the object loss counts a cell from ``model.object_min_pixels``),
``rooms`` (N,) long (index into the room types, -1 outside them), ``pixels`` (N, K) int32 (how
many pixels of the rendered frame each target type covers, at the camera's resolution) and
``num_skipped`` ().

Validation writes ``val_detection.json`` beside the run's metrics: per target type, cell and
frame precision and recall, the frame recall by the type's size in the frame (``SIZE_EDGES``),
which says whether a type is missed because it is small or not seen at all, and the frame-level
average precision (``AP_MIN_PIXELS``), which says whether the features tell the type apart at
any threshold.
"""

from __future__ import annotations

from training.cli import build_cli
from training.pretrain.data import LabelledFrameDataModule
from training.pretrain.module import EncoderPretrainModule


def main(args: list[str] | None = None) -> None:
    """Entry point of ``spoc-pretrain``."""
    build_cli(args, model_class=EncoderPretrainModule, datamodule_class=LabelledFrameDataModule)
