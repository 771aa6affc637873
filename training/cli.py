"""``spoc-train``: LightningCLI over ``PolicyModule`` and ``ShardDataModule``.

    spoc-train fit --config configs/train/tiny.yaml --data.root DATASET_DIR \\
        [--trainer.default_root_dir RUN_DIR] [--ckpt_path last]
    spoc-train validate --config configs/train/tiny.yaml --data.root DATASET_DIR --ckpt_path CKPT

Under ``RUN_DIR`` (``trainer.default_root_dir``): ``checkpoints/`` (``best-*.ckpt`` on val loss
and ``last.ckpt``, which ``--ckpt_path last`` resumes), ``logs/`` (CSV), ``tb/`` (TensorBoard)
and the resolved ``config.yaml``. Loggers and these callbacks are added unless the config sets
``trainer.logger`` / a ``ModelCheckpoint`` itself.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    RichProgressBar,
)
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from agents.policy import PolicyConfig
from training.data.datamodule import ShardDataModule
from training.module import PolicyModule

DEFAULT_ROOT_DIR = "runs/train"


def last_checkpoint(root: Path) -> Path:
    """The run's ``last.ckpt`` (rewritten at every validation): ``--ckpt_path last``."""
    return Path(root) / "checkpoints" / "last.ckpt"


def default_loggers(root: Path) -> list:
    """CSV (first, so ``trainer.log_dir`` is under ``logs/``) and TensorBoard loggers."""
    return [CSVLogger(root, name="logs"), TensorBoardLogger(root, name="tb")]


def default_callbacks(root: Path, configured: list[Callback], progress_bar: bool
                      ) -> list[Callback]:
    """Best-on-val-loss + last checkpoints in ``root/checkpoints``, a Rich bar, an LR monitor.

    ``last.ckpt`` is its own checkpoint callback, written at every validation: Lightning's
    ``save_last=True`` rewrites it only when a top-k checkpoint was saved at the same step, so
    after the best epoch it would stop following the run (and ``--ckpt_path last`` would go
    back to the best epoch).
    """
    extra: list[Callback] = [LearningRateMonitor(logging_interval="step")]
    if not any(isinstance(c, ModelCheckpoint) for c in configured):
        extra.append(ModelCheckpoint(dirpath=root / "checkpoints", filename="best-{epoch}-{step}",
                                     monitor="val/loss", mode="min", save_top_k=1))
        last = last_checkpoint(root)
        extra.append(ModelCheckpoint(dirpath=last.parent, filename=last.stem,
                                     monitor=None, save_top_k=1, enable_version_counter=False))
    if progress_bar and not any(isinstance(c, ProgressBar) for c in configured):
        extra.append(RichProgressBar())
    return extra


class TrainCLI(LightningCLI):
    """LightningCLI with the dataset's vocabulary and resolution linked into the model."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data", "model.dataset_spec", compute_fn=lambda dm: dm.spec,
                              apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        """Take the policy architecture from a ``--ckpt_path`` file, the rest (``encoder_batch``
        included: how to run the CNN, not what it is) from the command line.

        Lightning replaces all the command line's model arguments with a checkpoint file's
        hyperparameters, which would silently drop e.g. ``--model.decay_start`` when a decay is
        branched off a saved checkpoint. ``--ckpt_path last`` is resolved here to the run's
        ``checkpoints/last.ckpt`` (Lightning resolves it only after building the model, so the
        policy would come from the command line and a resumed run of another architecture
        would fail on the state dict).
        """
        sub = self.config.get("subcommand")
        if not sub:
            return
        if self.config[sub].get("ckpt_path") == "last":
            last = last_checkpoint(self.config[sub].trainer.get("default_root_dir")
                                   or DEFAULT_ROOT_DIR)
            if last.is_file():
                self.config[sub].ckpt_path = str(last)
        given = self.config[sub].model.clone()
        super()._parse_ckpt_path()
        policy = self.config[sub].model.policy
        if given.get("policy") is not None:  # how to run the CNN, not what it is
            policy.encoder_batch = given.policy.get("encoder_batch", PolicyConfig.encoder_batch)
        self.config[sub].model = given
        self.config[sub].model.policy = policy

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        root = Path(config.get("default_root_dir") or DEFAULT_ROOT_DIR)
        kwargs["default_root_dir"] = str(root)
        if config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(root)
        configured = list(config.get("callbacks") or [])
        kwargs["callbacks"] = configured + default_callbacks(
            root, configured, config.get("enable_progress_bar") is not False)
        return super().instantiate_trainer(**kwargs)


def build_cli(args: list[str] | None = None, run: bool = True,
              model_class: type = PolicyModule, datamodule_class: type = ShardDataModule
              ) -> TrainCLI:
    """Parse ``args`` (default: ``sys.argv``), build the module, data and trainer, and run
    (``spoc-pretrain`` passes its own module and data)."""
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
    return TrainCLI(model_class, datamodule_class, save_config_kwargs={"overwrite": True},
                    args=args, run=run)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``spoc-train``."""
    build_cli(args)


if __name__ == "__main__":
    main()
