"""``spoc-sim``: look at a house through the embedded simulator.

    spoc-sim render tests/fixtures/house_3703.json --pose 3.5,4.75,90 --out out/views
    spoc-sim render data/houses/train.jsonl.gz --index 3 --random-poses 4 --seed 0 --out out/v
    spoc-sim render tests/fixtures/143.json --random-poses 2 --camera.pitch 0 --out out/level

Per pose ``k`` it writes ``rgb_k.png``, ``depth_k.png`` (uint16 millimetres), ``ids_k.png``
(instance ids colour-coded, structure black) and ``map_k.png`` (top-down map with the pose),
and prints one JSON line per pose.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from common.cli import underscore_options
from common.errors import InputError
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv, visible_objects
from sim.house import HouseError, load_house
from sim.interface import Pose
from sim.lattice import AgentConfig
from sim.topdown import save_map

EXIT_BAD_INPUT = 2


class BadInput(InputError):
    """A command-line value that cannot be used (printed as one line, exit code 2)."""


def id_colors(ids: np.ndarray) -> np.ndarray:
    """(H, W) int instance ids -> (H, W, 3) uint8: 0 black, others a fixed colour per id."""
    k = ids.astype(np.uint64)
    h = (k * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
    rgb = np.stack([(h >> np.uint64(s)) & np.uint64(0xFF) for s in (0, 8, 16)], -1)
    rgb = (rgb.astype(np.uint16) // 2 + 100).astype(np.uint8)  # bright, never black
    rgb[ids == 0] = 0
    return rgb


def write_views(obs, out: Path, k: int) -> dict[str, str]:
    """Write ``rgb_k``, ``depth_k`` and ``ids_k`` PNGs of one observation; returns the paths."""
    from PIL import Image

    paths = {name: out / f"{name}_{k}.png" for name in ("rgb", "depth", "ids")}
    Image.fromarray(obs.rgb).save(paths["rgb"])
    mm = np.clip(np.round(obs.depth * 1000.0), 0, 65535).astype(np.uint16)
    Image.fromarray(mm).save(paths["depth"])
    Image.fromarray(id_colors(obs.ids)).save(paths["ids"])
    return {name: str(p) for name, p in paths.items()}


def choose_states(lattice, pose: str | None, random_poses: int, seed: int):
    """Lattice states to render: the one given by ``--pose`` (None here, placed by the env) or
    ``random_poses`` reachable states drawn with ``default_rng(seed)``."""
    if pose is not None and random_poses:
        raise BadInput("give either --pose or --random-poses, not both")
    if pose is not None:
        return [None]
    if random_poses < 1:
        raise BadInput(f"--random-poses {random_poses}: give at least 1 (or --pose X,Z,HEADING)")
    states = lattice.reachable_states()
    if not states:
        raise BadInput("the house has no reachable lattice cell; check it with "
                       "`spoc-houses validate`")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(states), size=random_poses, replace=random_poses > len(states))
    return [states[int(i)] for i in picks]


def render(path: Path, out: Path, index: int = 0, pose: str | None = None,
           random_poses: int = 0, seed: int = 0, camera: CameraConfig = CameraConfig(),
           agent: AgentConfig = AgentConfig()) -> None:
    """Render views of a house from given or random reachable poses.

    Args:
        path: House file (.json, .jsonl, .jsonl.gz; schema 0.0.1 or 1.0.0).
        out: Output directory.
        index: House index in the file (0-based line).
        pose: One pose "X,Z,HEADING" (metres, metres, degrees; 0 faces +z, 90 faces +x).
        random_poses: Number of random reachable lattice states to render instead of --pose.
        seed: Seed for --random-poses.
        camera: The egocentric camera.
        agent: The lattice agent (grid, headings, radius).
    """
    rec = load_house(path, index)
    env = EmbeddedEnv(camera=camera, agent=agent)
    scene, lattice = env.load(rec.house)
    states = choose_states(lattice, pose, random_poses, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for k, state in enumerate(states):
        obs = env.reset(rec.house, Pose.parse(pose)) if state is None else env.reset_state(state)
        p = env.pose
        files = write_views(obs, out, k)
        files["map"] = str(save_map(scene, out / f"map_{k}.png", lattice=lattice, pose=p,
                                    title=f"{rec.house_id} pose {k}: ({p.x:.2f}, {p.z:.2f}, "
                                          f"{p.yaw:.0f} deg)"))
        seen = visible_objects(scene, obs.ids, p)
        print(json.dumps({"house": rec.house_id, "pose": [p.x, p.z, p.yaw], "files": files,
                          "visible": sorted({v.object_type for v in seen.values()})}),
              flush=True)


def _fail(message: str) -> int:
    print(f"spoc-sim: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def build_parser():
    """The ``spoc-sim`` parser: one subcommand per function above, typed from signatures."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="spoc-sim", description=__doc__.strip().splitlines()[0])
    sub = parser.add_subcommands(dest="command")
    p = ArgumentParser(description=render.__doc__.strip().splitlines()[0])
    p.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
    p.add_argument("path", type=Path, help="House file.")
    p.add_function_arguments(render, skip={"path"})
    sub.add_subcommand("render", p, help=render.__doc__.strip().splitlines()[0])
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    cfg = parser.parse_args(underscore_options(list(sys.argv[1:] if argv is None else argv)))
    command = cfg.command
    try:
        sub = parser.instantiate(cfg)[command]
    except ValueError as e:  # a camera/agent value its dataclass rejects
        raise SystemExit(_fail(str(e))) from None
    kwargs = {k: v for k, v in vars(sub).items() if k not in ("config", "__path__")}
    try:
        {"render": render}[command](**kwargs)
    except (HouseError, BadInput, ValueError) as e:
        raise SystemExit(_fail(str(e))) from None


if __name__ == "__main__":
    main()
