"""``spoc-train``: behaviour cloning, a LightningCLI over ``PolicyModule`` and ``ShardDataModule``.

    spoc-train fit --config configs/train/tiny.yaml --data.root DATASET_DIR \\
        [--trainer.default_root_dir RUN_DIR] [--ckpt_path last]
    spoc-train validate --config configs/train/tiny.yaml --data.root DATASET_DIR --ckpt_path CKPT

Under ``RUN_DIR`` (``trainer.default_root_dir``): ``checkpoints/`` (``best-*.ckpt`` on val loss,
``best-rollout-*.ckpt`` on rollout success with ``training.rollout_callback.RolloutEvaluation``
among the callbacks, and ``last.ckpt``, which ``--ckpt_path last`` resumes), ``logs/`` (CSV),
``tb/`` (TensorBoard) and the resolved ``config.yaml``. Loggers and these callbacks are added
unless the config sets ``trainer.logger`` / a ``ModelCheckpoint`` itself.

Bad input (a data root, an info.json, a checkpoint, a run directory) is one line and exit
status 2 (``--debug`` adds the traceback); option errors print the usage as LightningCLI does.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import set_parsing_settings
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    RichProgressBar,
)
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from agents.policy import PolicyConfig
from common.cli import (
    HelpFormatter,
    add_version,
    command_description,
    entry_point,
    underscore_options,
)
from common.errors import InputError
from common.files import check_out_dir
from training.data.datamodule import ShardDataModule
from training.module import CheckpointError, PolicyModule
from training.rollout_callback import RolloutEvaluation

DEFAULT_ROOT_DIR = "runs/train"
SUBCOMMANDS = ("fit", "validate")
"""Lightning's subcommands that ``spoc-train`` and ``spoc-pretrain`` offer."""
LIGHTNING_CKPT_PATHS = ("last", "best", "hpc", "registry")
"""``--ckpt_path`` values Lightning resolves itself (not file names)."""


def last_checkpoint(root: Path) -> Path:
    """The run's ``last.ckpt`` (rewritten at every validation): ``--ckpt_path last``."""
    return Path(root) / "checkpoints" / "last.ckpt"


def default_loggers(root: Path) -> list:
    """CSV (first, so ``trainer.log_dir`` is under ``logs/``) and TensorBoard loggers."""
    return [CSVLogger(root, name="logs"), TensorBoardLogger(root, name="tb")]


def default_callbacks(root: Path, configured: list[Callback], progress_bar: bool
                      ) -> list[Callback]:
    """Best-on-val-loss + last checkpoints in ``root/checkpoints`` (and best-on-rollout-success
    with a :class:`RolloutEvaluation`), a Rich bar, an LR monitor.

    ``last.ckpt`` is its own checkpoint callback, written at every validation: Lightning's
    ``save_last=True`` rewrites it only when a top-k checkpoint was saved at the same step, so
    after the best epoch it would stop following the run (and ``--ckpt_path last`` would go
    back to the best epoch).
    """
    extra: list[Callback] = [LearningRateMonitor(logging_interval="step")]
    if not any(isinstance(c, ModelCheckpoint) for c in configured):
        extra.append(ModelCheckpoint(dirpath=root / "checkpoints", filename="best-{epoch}-{step}",
                                     monitor="val/loss", mode="min", save_top_k=1))
        extra += [c.best_checkpoint(root / "checkpoints") for c in configured
                  if isinstance(c, RolloutEvaluation)]
        last = last_checkpoint(root)
        extra.append(ModelCheckpoint(dirpath=last.parent, filename=last.stem,
                                     monitor=None, save_top_k=1, enable_version_counter=False))
    if progress_bar and not any(isinstance(c, ProgressBar) for c in configured):
        extra.append(RichProgressBar())
    return extra


def read_checkpoint(path: str, prog: str, model_class: type) -> dict:
    """The checkpoint ``--ckpt_path`` names, loaded as Lightning loads it; a one-line
    :class:`CheckpointError` when it is missing, unreadable, or was written for another model
    than ``model_class`` (its hyperparameters are not that class's arguments)."""
    where = f"--ckpt_path {path}"
    fix = (f"give a checkpoint written by `{prog} fit` (RUN_DIR/checkpoints/*.ckpt), or `last` "
           "to resume the run in --trainer.default_root_dir")
    if not Path(path).is_file():
        raise CheckpointError(f"{where}: not found; {fix}")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exn:  # noqa: BLE001 - any failure means "not a usable checkpoint"
        msg = " ".join(str(exn).split())[:200]
        raise CheckpointError(f"{where}: unreadable ({type(exn).__name__}: {msg}); {fix}"
                              ) from exn
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{where}: not a training checkpoint (no state_dict); {fix}")
    hparams = ckpt.get("hyper_parameters") or {}
    known = inspect.signature(model_class.__init__).parameters
    foreign = sorted(k for k in hparams if not k.startswith("_") and k not in known)
    if foreign:
        raise CheckpointError(f"{where}: written for another model (it has {foreign[0]}, which "
                              f"{model_class.__name__} does not take); {fix}")
    return ckpt


class TrainParser(LightningArgumentParser):
    """Lightning's parser with the help of every ``spoc-*`` command
    (:class:`common.cli.HelpFormatter`), also for a nested class's ``--*.help CLASS``."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


class TrainCLI(LightningCLI):
    """LightningCLI with the dataset's vocabulary and resolution linked into the model, and
    its input checked: ``--ckpt_path`` and ``--trainer.default_root_dir`` (a one-line
    :class:`common.errors.InputError` each)."""

    def __init__(self, *args, prog: str = "spoc-train", **kwargs):
        self.prog = prog
        super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """``fit`` and ``validate``: the modules have no ``test_step`` or ``predict_step``, so
        Lightning's ``test`` and ``predict`` are not offered."""
        return {name: skip for name, skip in LightningCLI.subcommands().items()
                if name in SUBCOMMANDS}

    def init_parser(self, **kwargs: Any):
        """Lightning's parser; the top one (made before its subcommands') also takes
        ``--version``."""
        parser = super().init_parser(**kwargs)
        if not hasattr(self, "parser"):
            add_version(parser, self.prog)
        return parser

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
        ckpt_path = self.config[sub].get("ckpt_path")
        if ckpt_path and ckpt_path not in LIGHTNING_CKPT_PATHS \
                and not str(ckpt_path).startswith("registry:"):
            read_checkpoint(str(ckpt_path), self.prog, self._model_class)
        given = self.config[sub].model.clone()
        super()._parse_ckpt_path()
        policy = self.config[sub].model.policy
        if given.get("policy") is not None:  # how to run the CNN, not what it is
            policy.encoder_batch = given.policy.get("encoder_batch", PolicyConfig.encoder_batch)
        self.config[sub].model = given
        self.config[sub].model.policy = policy

    def instantiate_classes(self) -> None:
        """As LightningCLI's; an input error raised while the data's spec is linked into the
        model, which jsonargparse wraps in a ValueError, is raised as it is."""
        try:
            super().instantiate_classes()
        except ValueError as exn:
            if isinstance(exn.__cause__, InputError):
                raise exn.__cause__ from None
            raise

    def before_instantiate_classes(self) -> None:
        """Refuse a run directory that cannot be one before the data and model are built."""
        sub = self.config.get("subcommand")
        config = self.config[sub] if sub else self.config
        check_out_dir(config.trainer.get("default_root_dir") or DEFAULT_ROOT_DIR,
                      "--trainer.default_root_dir")

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
              model_class: type = PolicyModule, datamodule_class: type = ShardDataModule,
              prog: str = "spoc-train", description: str | None = None) -> TrainCLI:
    """Parse ``args`` (default: ``sys.argv``; option names with dashes or underscores), build
    the module, data and trainer, and run (``spoc-pretrain`` passes its own module, data, name
    and docstring). Bad input raises a one-line :class:`common.errors.InputError`."""
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
    # the entry points pass the command line on as ``args``
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # fields' help, as elsewhere
    parser_kwargs = {"prog": prog, "description": command_description(prog, description or __doc__)}
    return TrainCLI(model_class, datamodule_class, save_config_kwargs={"overwrite": True},
                    parser_class=TrainParser, parser_kwargs=parser_kwargs, prog=prog, run=run,
                    args=None if args is None else underscore_options(list(args)))


def train(args: list[str]) -> None:
    """``spoc-train``'s work: parse ``args``, build and run."""
    build_cli(args)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``spoc-train``: its exit status (2 and one line for bad input;
    ``--debug`` adds the traceback)."""
    return entry_point("spoc-train", train, args)


if __name__ == "__main__":
    raise SystemExit(main())
