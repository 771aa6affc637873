"""A Lightning callback that times ``spoc-train fit``'s training batches: batches per second
from batch ``start`` to the last, leaving out the run's start (shards scanned, loader
processes spawned, first batches compiled) that a whole-run time includes.

    PYTHONPATH=scripts/bench spoc-train fit ... --trainer.callbacks+=fit_timer.FitTimer \
        --trainer.callbacks.init_args.start 50 --trainer.callbacks.init_args.out timing.json

It prints one JSON line (and writes it to ``out`` when given): the batches timed, the seconds
and batches per second, and on a GPU the peak memory allocated. Used for the side-by-side
GPU runs of ``docs/performance.md``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning.pytorch as pl
import torch


class FitTimer(pl.Callback):
    """Time the training batches after the first ``start``."""

    def __init__(self, start: int = 50, out: str | None = None):
        self.start, self.out = start, out
        self.t0: float | None = None
        self.first = self.last = 0
        self.t1 = 0.0

    def _now(self, trainer: pl.Trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()  # the batch's work done, not only queued
        return time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.t0 is None and step >= self.start:
            self.t0, self.first = self._now(trainer), step
        elif self.t0 is not None:
            self.t1, self.last = self._now(trainer), step

    def on_train_end(self, trainer, pl_module):
        if self.t0 is None or self.last <= self.first:
            print(json.dumps({"timed_batches": 0, "start": self.start}))
            return
        batches, seconds = self.last - self.first, self.t1 - self.t0
        row = {"timed_batches": batches, "from_step": self.first, "seconds": round(seconds, 3),
               "batches_per_s": round(batches / seconds, 3)}
        if torch.cuda.is_available():
            row["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        print(json.dumps(row))
        if self.out:
            Path(self.out).write_text(json.dumps(row) + "\n")
