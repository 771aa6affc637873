"""``spoc-houses``: generate, validate and draw ProcTHOR houses.

    spoc-houses generate --split train --num 100 --seed 0 --out data/houses --workers 2
    spoc-houses validate data/houses/train.jsonl.gz tests/fixtures/143.json
    spoc-houses show data/houses/train.jsonl.gz --index 3 --out map.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common.cli import underscore_options
from datagen.constants import SPLITS
from datagen.houses.house_dataset import generate_houses
from datagen.houses.validate import house_report
from sim.house import HouseError, load_house, load_houses
from sim.lattice import AgentConfig, Lattice
from sim.scene import build_scene
from sim.topdown import save_map

EXIT_BAD_INPUT = 2


def generate(split: str, num: int, out: Path, seed: int = 0, workers: int = 1,
             progress: bool = True) -> None:
    """Sample ProcTHOR houses into OUT/{split}.jsonl.gz and OUT/meta.json (resumable).

    Args:
        split: train, val or test (disjoint seed ranges, so evaluation houses are unseen).
        num: Number of houses.
        out: Output directory.
        seed: Dataset seed; house i of a split is a pure function of (split, seed, i).
        workers: Worker processes (one per core).
        progress: Show a progress bar.
    """
    if split not in SPLITS:
        raise SystemExit(_fail(f"--split {split!r}: unknown split; use one of {SPLITS}"))
    if num < 1 or workers < 1:
        raise SystemExit(_fail("--num and --workers must be at least 1"))
    path = generate_houses(split=split, num=num, seed=seed, out_dir=Path(out), workers=workers,
                           progress=progress)
    print(path)


def validate(paths: list[Path], require_connected: bool = False, grid: float = 0.25,
             radius: float = 0.2) -> None:
    """Check house files (.json, .jsonl, .jsonl.gz; schema 0.0.1 or 1.0.0) and print one JSON
    line per house. Exits non-zero if any house is invalid.

    Args:
        paths: House files.
        require_connected: Also fail a house whose rooms are not all reachable.
        grid: Lattice grid step in metres.
        radius: Agent radius in metres.
    """
    agent = AgentConfig(grid=grid, radius=radius)
    bad = 0
    for path in paths:
        try:
            for rec in load_houses(path):
                report = {"file": str(path), "index": rec.index, "schema": rec.schema_in,
                          **house_report(rec.house, agent, rec.house_id)}
                problems = []
                if report["reachable_cells"] == 0:
                    problems.append("no reachable lattice cell")
                if require_connected and not report["connected"]:
                    problems.append("rooms not reachable: " + ", ".join(
                        report["unreachable_rooms"]))
                report["valid"] = not problems
                if problems:
                    report["error"] = "; ".join(problems)
                    bad += 1
                print(json.dumps(report), flush=True)
        except HouseError as e:
            bad += 1
            print(json.dumps({"file": str(path), "index": e.index, "valid": False,
                              "error": str(e)}), flush=True)
            print(str(e), file=sys.stderr)
    if bad:
        raise SystemExit(1)


def show(path: Path, out: Path, index: int = 0, grid: float = 0.25, radius: float = 0.2
         ) -> None:
    """Draw a top-down map of one house: rooms, walls, doors, objects by type, reachable cells.

    Args:
        path: House file.
        out: Output PNG.
        index: House index in the file (0-based line).
        grid: Lattice grid step in metres.
        radius: Agent radius in metres.
    """
    rec = load_house(path, index)
    scene = build_scene(rec.house, rec.house_id)
    lattice = Lattice(scene, AgentConfig(grid=grid, radius=radius))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_map(scene, Path(out), lattice=lattice, title=f"{rec.house_id} ({path}:{index})")
    print(out)


def _fail(message: str) -> int:
    print(f"spoc-houses: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def build_parser():
    """The ``spoc-houses`` parser: one subcommand per function above, typed from signatures."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="spoc-houses", description=__doc__.strip().splitlines()[0])
    sub = parser.add_subcommands(dest="command")
    for fn in (generate, validate, show):
        p = ArgumentParser(description=fn.__doc__.strip().splitlines()[0])
        p.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
        if fn is validate:
            p.add_argument("paths", type=Path, nargs="+", help="House files.")
            p.add_function_arguments(fn, skip={"paths"})
        elif fn is show:
            p.add_argument("path", type=Path, help="House file.")
            p.add_function_arguments(fn, skip={"path"})
        else:
            p.add_function_arguments(fn)
        sub.add_subcommand(fn.__name__, p, help=fn.__doc__.strip().splitlines()[0])
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    cfg = parser.parse_args(underscore_options(sys.argv[1:] if argv is None else argv))
    command = cfg.command
    kwargs = {k: v for k, v in vars(cfg[command]).items() if k not in ("config", "__path__")}
    try:
        {"generate": generate, "validate": validate, "show": show}[command](**kwargs)
    except HouseError as e:
        raise SystemExit(_fail(str(e))) from None


if __name__ == "__main__":
    main()
