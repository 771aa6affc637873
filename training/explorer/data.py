"""The files ``spoc-explorer collect`` writes and ``spoc-explorer fit`` reads: one ``.npz``
per chunk of episodes, each exploring step's map view (binary planes bit-packed), goal index,
allowed blocks and block costs; the same samples give the same bytes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from agents.explorer import BLOCK, PLANES, VIEW
from common.errors import InputError


class ExplorerInputError(InputError):
    """An option or file ``spoc-explorer`` cannot use; the message names it and the fix."""


def check_at_least(cfg, names: tuple[str, ...], least: int) -> None:
    """ExplorerInputError naming the first of ``cfg``'s fields ``names`` below ``least``."""
    for name in names:
        if getattr(cfg, name) < least:
            raise ExplorerInputError(f"--{name} {getattr(cfg, name)} must be at least {least}")


def pack(samples: list, goals: list[str], context: list[str]) -> dict:
    """Arrays of one chunk's samples: binary planes bit-packed, steps as uint8 (x 255)."""
    n = VIEW // BLOCK
    if not samples:
        return {"planes": np.zeros((0, len(PLANES) + len(context), VIEW, VIEW // 8), np.uint8),
                "steps": np.zeros((0, VIEW, VIEW), np.uint8), "goal": np.zeros(0, np.int16),
                "allowed": np.zeros((0, n, n // 8 + (n % 8 > 0)), np.uint8),
                "costs": np.zeros((0, n, n), np.float16), "goals": np.asarray(goals),
                "context": np.asarray(context, dtype=str)}
    views = np.stack([s[0] for s in samples])  # (N, P + 1, VIEW, VIEW)
    return {
        "planes": np.packbits(views[:, :-1] > 0, axis=-1),
        "steps": np.round(views[:, -1] * 255).astype(np.uint8),
        "goal": np.asarray([s[1] for s in samples], np.int16),
        "allowed": np.packbits(np.stack([s[2] for s in samples]), axis=-1),
        "costs": np.stack([s[3] for s in samples]).astype(np.float16),
        "goals": np.asarray(goals),
        "context": np.asarray(context, dtype=str),
    }


def unpack(arrays, rows=slice(None)) -> tuple[np.ndarray, ...]:
    """Rows of a chunk: views (N, P + K + 1, VIEW, VIEW) float32, goals (N,) int64, allowed
    (N, n, n) bool and costs (N, n, n) float32 (n = VIEW // BLOCK)."""
    n = VIEW // BLOCK
    planes = np.unpackbits(arrays["planes"][rows], axis=-1, count=VIEW).astype(np.float32)
    steps = arrays["steps"][rows].astype(np.float32)[:, None] / 255.0
    allowed = np.unpackbits(arrays["allowed"][rows], axis=-1, count=n).astype(bool)
    return (np.concatenate([planes, steps], axis=1), arrays["goal"][rows].astype(np.int64),
            allowed, arrays["costs"][rows].astype(np.float32))


def npz_bytes(arrays: dict) -> bytes:
    """An uncompressed ``.npz`` of ``arrays`` with fixed entry dates: the same arrays give the
    same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            item = io.BytesIO()
            np.lib.format.write_array(item, np.asarray(arrays[name]), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                       item.getvalue())
    return buf.getvalue()


def chunk_path(out: Path, k: int) -> Path:
    return out / f"chunk-{k:05d}.npz"


class Chunks(torch.utils.data.Dataset):
    """The samples of some ``collect`` files, kept packed in memory."""

    def __init__(self, files: list[Path]):
        self.arrays, self.rows = [], []
        self.goals: list[str] | None = None
        self.context: list[str] | None = None
        for f in files:
            try:
                with np.load(f, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in ("planes", "steps", "goal", "allowed", "costs",
                                                "goals", "context")}
            except Exception as e:  # noqa: BLE001 - truncated, foreign or missing fields
                raise ExplorerInputError(f"{f}: not a `spoc-explorer collect` file ({e}); "
                                         "collect it again") from None
            goals = [str(g) for g in arrays.pop("goals")]
            context = [str(t) for t in arrays.pop("context")]
            for name, mine, first in (("goals", goals, self.goals),
                                      ("context", context, self.context)):
                if first is not None and mine != first:
                    raise ExplorerInputError(f"{f}: field '{name}' differs from {files[0]}'s; "
                                             "fit on files collected with the same dataset and "
                                             "--context")
            self.goals, self.context = goals, context
            self.rows += [(len(self.arrays), r) for r in range(len(arrays["goal"]))]
            self.arrays.append(arrays)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        a, r = self.rows[k]
        view, goal, allowed, costs = unpack(self.arrays[a], slice(r, r + 1))
        return view[0], goal[0], allowed[0], costs[0]
