"""How many batches fit in a wall-clock budget, from a measured first epoch.

``scripts/gpu_run.sh`` trains one epoch at a constant rate, times it, and resumes the run
(``--ckpt_path last``) to the number of epochs this module plans, with the learning rate
decayed to 0 over the last part of them (``--model.decay_start`` / ``--model.decay_steps``)::

    python -m training.budget --first 90 --left 231 --batches_per_epoch 500
    # -> "3 1000 500": max_epochs, decay_start, decay_steps
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """The resumed run: ``--trainer.max_epochs``, ``--model.decay_start``/``decay_steps``."""

    max_epochs: int
    decay_start: int
    decay_steps: int

    @property
    def total(self) -> int:
        """Batches at the end of the run (the decay ends there)."""
        return self.decay_start + self.decay_steps


def plan(first: float, left: float, batches_per_epoch: int, decay_fraction: float = 0.35,
         start_cost: float = 15.0, slack: float = 0.92) -> Plan:
    """Epochs after a first one of ``first`` seconds that fit in ``left`` seconds.

    The first epoch's time includes a start (shards scanned, loader workers spawned) of about
    ``start_cost`` seconds, which the resumed run pays again; the rate is taken over the rest
    (at most half of ``first`` is counted as start) and ``slack`` of the time left is planned.
    At least one more epoch is planned. The decay covers ``decay_fraction`` of all batches,
    rounded to 100, at least one epoch and never the first one.
    """
    if first <= 0 or batches_per_epoch < 1 or not 0 < decay_fraction <= 1:
        raise ValueError(f"plan: first={first} s must be > 0, batches_per_epoch="
                         f"{batches_per_epoch} >= 1 and decay_fraction={decay_fraction} in (0, 1]")
    rate = batches_per_epoch / max(first - start_cost, first / 2)  # batches per second
    more = max(1, int(rate * (left - start_cost) * slack / batches_per_epoch))
    total = (more + 1) * batches_per_epoch
    decay = max(batches_per_epoch, round(total * decay_fraction / 100) * 100)
    decay = min(decay, total - batches_per_epoch)
    return Plan(max_epochs=more + 1, decay_start=total - decay, decay_steps=decay)


def main(argv: list[str] | None = None) -> None:
    """Print ``max_epochs decay_start decay_steps`` for the shell."""
    p = argparse.ArgumentParser(prog="python -m training.budget", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--first", type=float, required=True, help="seconds the first epoch took")
    p.add_argument("--left", type=float, required=True, help="seconds left for the rest")
    p.add_argument("--batches_per_epoch", type=int, required=True)
    p.add_argument("--decay_fraction", type=float, default=0.35)
    a = p.parse_args(argv)
    r = plan(a.first, a.left, a.batches_per_epoch, a.decay_fraction)
    print(r.max_epochs, r.decay_start, r.decay_steps)


if __name__ == "__main__":
    main()
