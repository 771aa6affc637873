"""``spoc-explorer``: a learned exploration policy for the map agent (where to look next).

    spoc-explorer collect --houses data/big/houses/train.jsonl.gz --dataset DATASET_DIR \\
        --detector runs/mapper/detector.json --episodes 2000 --out runs/explorer/data
    spoc-explorer fit --data '[runs/explorer/data]' --out runs/explorer/model --epochs 4
    spoc-eval run --policy mapper --mapper.explorer runs/explorer/model/explorer.pt ...

The explorer (:mod:`agents.explorer`) picks which frontier the map agent walks to, from the
egocentric view of the episode's map and the goal.

Labels come from the shortest-path oracle (privileged, training houses only): the cost of a
frontier cell is the agent's breadth-first steps to it on its map plus the oracle's moves
from it to the nearest goal state (:func:`eval.probes.frontier_costs`), a block's cost is its
frontier cells' least, and the target is the softmax of minus the costs (``FitConfig.temperature``).
``collect`` rolls out the map agent on training houses (with ``--explorer``, a fitted one:
a DAgger round) and writes each exploring step's view and block costs, one ``.npz`` per
chunk of episodes, written atomically; an interrupted ``collect`` resumes at the first
missing chunk.

Bad input (houses, a detector, explorer or collected file that cannot be used, an ``--out``
that is a file, a value out of range) is one line and exit status 2; ``--debug`` adds its
traceback.
"""

from __future__ import annotations

import sys

from common.cli import config_commands, entry_point, parse_config_command
from training.explorer.collect import CollectConfig, collect
from training.explorer.fit import FitConfig, fit


def build_parser():
    return config_commands("spoc-explorer", __doc__,
                           {"collect": CollectConfig, "fit": FitConfig})


def main(argv: list[str] | None = None) -> int:
    """``spoc-explorer``: bad input is one line and exit status 2
    (:func:`common.cli.entry_point`)."""
    return entry_point("spoc-explorer", run, argv)


def run(argv: list[str]) -> None:
    command, values = parse_config_command(build_parser(), argv)
    if command == "collect":
        chunks, samples = collect(CollectConfig(**values))
        print(f"{chunks} chunk(s), {samples} samples -> {values['out']}")
    else:
        print(f"explorer -> {fit(FitConfig(**values))}")


if __name__ == "__main__":
    sys.exit(main())
