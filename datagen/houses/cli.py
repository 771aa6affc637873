"""``spoc-houses``: generate, validate and draw ProcTHOR houses.

    spoc-houses generate --split train --num 100 --seed 0 --out data/houses --workers 2
    spoc-houses validate data/houses/train.jsonl.gz tests/fixtures/143.json
    spoc-houses show data/houses/train.jsonl.gz --index 3 --out map.png
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from common.cli import command_parser, entry_point, summary
from common.errors import InputError
from datagen.houses.house_dataset import generate_houses
from datagen.houses.validate import house_report
from sim.house import iter_house_lines, load_house, parse_house_line, read_house
from sim.house_check import HouseError
from sim.lattice import AgentConfig, Lattice
from sim.scene import build_scene
from sim.topdown import save_map

EXIT_INVALID = 1
"""The exit status of ``validate`` when a house is invalid (bad options exit 2)."""


def generate(split: str, num: int, out: Path, seed: int = 0, workers: int = 1,
             progress: bool = True) -> None:
    """Sample ProcTHOR houses into OUT/{split}.jsonl.gz and OUT/meta.json (resumable).

    Args:
        split: train, val or test (disjoint seed ranges, so evaluation houses are unseen).
        num: Number of houses.
        out: Output directory.
        seed: Dataset seed; house i of a split is a pure function of (split, seed, i).
        workers: Worker processes: 1 works in this process, 0 starts one per CPU core; the
            houses do not depend on it.
        progress: Show a progress bar.
    """
    path = generate_houses(split=split, num=num, seed=seed, out_dir=Path(out), workers=workers,
                           progress=progress)
    print(path)


def validate(paths: list[Path], require_connected: bool = False, grid: float = 0.25,
             radius: float = 0.2) -> int:
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
        for row in validate_file(Path(path), agent, require_connected):
            if not row["valid"]:
                bad += 1
                if "rooms" not in row:  # refused by a check: its line on stderr too
                    print(row["error"], file=sys.stderr)
            print(json.dumps(row), flush=True)
    return EXIT_INVALID if bad else 0


def validate_file(path: Path, agent: AgentConfig, require_connected: bool = False
                  ) -> Iterator[dict]:
    """One row per house of a file: its report (``valid`` and, when not, ``error``), or
    ``{file, index, valid: false, error}`` for a house a check refuses; a file that cannot be
    read at all (or from some line on) gives one such row with the file's error."""
    try:
        for index, text in iter_house_lines(path):
            try:
                yield validate_house(path, index, text, agent, require_connected)
            except HouseError as e:
                yield {"file": str(path), "index": index, "valid": False, "error": str(e)}
    except HouseError as e:
        yield {"file": str(path), "index": e.index, "valid": False, "error": str(e)}


def validate_house(path: Path, index: int, text: str, agent: AgentConfig,
                   require_connected: bool) -> dict:
    """The report row of one house line (HouseError when a check refuses it)."""
    rec = read_house(parse_house_line(text, path, index), path, index, owned=True)
    try:
        report = house_report(rec.house, agent, rec.house_id)
    except HouseError as e:  # the lattice's size limit names the house id, not the file
        raise e.at(path, index) from None
    problems = []
    if report["reachable_cells"] == 0:
        problems.append("no reachable lattice cell")
    if require_connected and not report["connected"]:
        problems.append("rooms not reachable: " + ", ".join(report["unreachable_rooms"]))
    row = {"file": str(path), "index": index, "schema": rec.schema_in, **report,
           "valid": not problems}
    if problems:
        row["error"] = "; ".join(problems)
    return row


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
    agent = AgentConfig(grid=grid, radius=radius)
    out = Path(out)
    if out.is_dir() or out.suffix.lower() != ".png":
        raise InputError(f"--out {out}: give the path of a .png file")
    rec = load_house(path, index)
    scene = build_scene(rec.house, rec.house_id)
    try:
        lattice = Lattice(scene, agent)
    except HouseError as e:  # the lattice's size limit names the house id, not the file
        raise e.at(path, index) from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out {out}: cannot create its folder ({e.strerror})") from None
    save_map(scene, out, lattice=lattice, title=f"{rec.house_id} ({path}:{index})")
    print(out)


def build_parser():
    """The ``spoc-houses`` parser: one subcommand per function above, typed from signatures."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = command_parser("spoc-houses", __doc__)
    sub = parser.add_subcommands(dest="command")
    for fn in (generate, validate, show):
        p = ArgumentParser(description=summary(fn.__doc__))
        p.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
        if fn is validate:
            p.add_argument("paths", type=Path, nargs="+", help="House files.")
            p.add_function_arguments(fn, skip={"paths"})
        elif fn is show:
            p.add_argument("path", type=Path, help="House file.")
            p.add_function_arguments(fn, skip={"path"})
        else:
            p.add_function_arguments(fn)
        sub.add_subcommand(fn.__name__, p, help=summary(fn.__doc__))
    return parser


def run(argv: list[str]) -> int:
    """Parse ``argv`` and run the subcommand; its exit status."""
    cfg = build_parser().parse_args(argv)
    command = cfg.command
    kwargs = {k: v for k, v in vars(cfg[command]).items() if k not in ("config", "__path__")}
    return {"generate": generate, "validate": validate, "show": show}[command](**kwargs) or 0


def main(argv: list[str] | None = None) -> int:
    """``spoc-houses``: bad input is one line on stderr and exit status 2."""
    return entry_point("spoc-houses", run, argv)


if __name__ == "__main__":
    sys.exit(main())
