"""The encoder record a ``spoc-pretrain`` checkpoint carries, and loading it into a behaviour
cloning run (``spoc-train fit --model.encoder_init CKPT``)."""

from __future__ import annotations

from pathlib import Path

import torch

from agents.policy import PolicyConfig
from common.errors import InputError

ENCODER_KEY = "spoc_encoder"
"""Key of the plain-dict encoder record inside a ``spoc-pretrain`` checkpoint."""


def load_encoder(path: str | Path, cfg: PolicyConfig) -> dict[str, torch.Tensor]:
    """The conv-block weights of a ``spoc-pretrain`` checkpoint, checked against ``cfg``
    (an InputError naming the file, the field and the fix)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model.encoder_init: {path} not found; give a checkpoint written by "
                         "`spoc-pretrain fit`")
    try:
        record = torch.load(path, map_location="cpu", weights_only=False)[ENCODER_KEY]
    except Exception as exn:  # noqa: BLE001 - any failure means "not a pretraining checkpoint"
        raise InputError(f"model.encoder_init: {path} is not a `spoc-pretrain` checkpoint "
                         f"({type(exn).__name__}); give one written by `spoc-pretrain fit`"
                         ) from None

    def plain(value):  # tuples and lists alike (a config may come from YAML)
        return list(value) if isinstance(value, (list, tuple)) else value

    theirs = record["config"]
    for name in ("channels", "groups", "image_size"):
        mine, saved = plain(getattr(cfg, name)), plain(theirs[name])
        if mine != saved:
            raise InputError(f"model.encoder_init: {path} was pretrained with policy.{name}="
                             f"{saved}, this run has {mine}; pretrain with this run's policy "
                             "config and data.image_size")
    return record["state_dict"]
