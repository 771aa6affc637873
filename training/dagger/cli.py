"""``spoc-dagger``: DAgger (Ross, Gordon and Bagnell 2011, "A Reduction of Imitation Learning
and Structured Prediction to No-Regret Online Learning", arXiv:1011.0686) on the pipeline's
own stages.

    spoc-dagger --config configs/dagger/tiny.yaml [--rounds 3] [--print_config]

Round 0 is behaviour cloning on the dataset (or ``--init_checkpoint``). Round r = 1..R:

1. roll out the mixture ``beta_r * expert + (1 - beta_r) * policy`` on the TRAINING houses
   (each step executes the expert's action with probability ``beta_r``, a coin seeded per
   episode; episodes are drawn like the evaluation harness draws them, independent of the
   policy);
2. label every visited state with ``Oracle.expert_action`` (defined at any state): a sample's
   ``actions.npy`` holds these labels, its frames are what the agent saw there and its poses
   are the visited poses, so ``actions[t]`` is NOT what was executed at step t;
3. append the episodes to the dataset's ``train`` split as new shards (indices after the
   existing ones, written by :mod:`datagen.shards`: same format, sidecars, info.json refresh
   and atomic writes) with ``source: dagger-<r>`` and ``success`` = the rollout succeeded;
4. continue the spoc-train run on the aggregate (``--ckpt_path`` of round r-1,
   ``epochs_per_round`` more epochs);
5. evaluate on held-out houses with spoc-eval's harness.

``DAGGER_DIR`` (``--out``) receives ``dagger_info.json`` (one row per round: beta, new episodes
and labels, total expert labels in the train split, rollout and evaluation success, SPL,
checkpoint, and the spoc-train config and arguments it trained with: a rerun with more rounds
may pass others), ``dagger.md`` (the same as a table), ``train/`` (the continued spoc-train run),
``checkpoints/round-R.ckpt`` and ``eval/round-R/``. A rerun skips finished rounds.

With ``--bc_compare true`` a behaviour-cloning arm runs beside it: each round it adds fresh
EXPERT episodes (on the same training houses) with at least as many labels as the DAgger round
added, to a copy of the round-0 dataset under ``DAGGER_DIR/bc/data`` (hard links), trains
for the same epochs from the same round-0 checkpoint and is evaluated on the same episodes; its
numbers land in the same rows (``bc_*``), so both arms are compared at equal label counts.

A policy trained with the target's box (``--data.target_box true`` in ``train_args``) can be
rolled out and evaluated as deployed: ``--detector FILE`` gives it the box a ``spoc-detector``
reads from each frame instead of the simulator's, and ``--end_threshold`` (per task:
``--end_threshold_by_task``) overrules its unsure ``end``s, in the rollouts and the
evaluations alike; training reads the simulator's box. A policy trained with RoomNav anchors
(``--data.room_anchors``, carried by its checkpoint) is given its RoomNav goals' anchor boxes
in both, and ``train_args`` must repeat the anchors (a resume refuses others).

Bad input (a dataset, house file, train config, checkpoint or detector that cannot be used,
evaluation houses that are training houses, an ``--out`` that is a file, a value out of
range) is one line and exit status 2, before any work; ``--debug`` adds its traceback.
"""

from __future__ import annotations

import sys

from jsonargparse import ActionConfigFile

from common.cli import command_parser, entry_point
from training.dagger.config import DaggerConfig
from training.dagger.run import rounds_table, run_dagger


def build_parser():
    parser = command_parser("spoc-dagger", DaggerConfig.__doc__)
    parser.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
    parser.add_class_arguments(DaggerConfig, as_group=False, instantiate=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``spoc-dagger``: bad input is one line and exit status 2
    (:func:`common.cli.entry_point`)."""
    return entry_point("spoc-dagger", run, argv)


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    values = {k: args[k] for k in DaggerConfig.__dataclass_fields__}
    rounds = run_dagger(DaggerConfig(**values))
    print(rounds_table(rounds), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
