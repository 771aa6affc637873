"""``spoc-pretrain``: pretrain the policy's frame encoder on the simulator's own labels
(which target types each cell of the last conv map shows, which room the agent stands in;
:mod:`training.pretrain.data`), then start behaviour cloning from it.

    spoc-pretrain fit --config configs/pretrain/cpu.yaml --data.root DATASET_DIR \\
        --data.train_splits '[train, train-noise]' --trainer.default_root_dir RUN_DIR
    spoc-train fit --config configs/train/cpu.yaml ... \\
        --model.encoder_init RUN_DIR/checkpoints/last.ckpt

Validation writes ``val_detection.json`` beside the run's metrics
(:mod:`training.pretrain.metrics`).
"""

from __future__ import annotations

from common.cli import entry_point
from training.cli import build_cli
from training.pretrain.data import LabelledFrameDataModule
from training.pretrain.module import EncoderPretrainModule


def pretrain(args: list[str]) -> None:
    """``spoc-pretrain``'s work: parse ``args``, build and run."""
    build_cli(args, model_class=EncoderPretrainModule, datamodule_class=LabelledFrameDataModule,
              prog="spoc-pretrain", description=__doc__)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``spoc-pretrain``: its exit status (2 and one line for bad input;
    ``--debug`` adds the traceback)."""
    return entry_point("spoc-pretrain", pretrain, args)
