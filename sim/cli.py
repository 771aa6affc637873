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

from common.cli import command_parser, entry_point, summary
from common.errors import InputError
from common.files import check_out_dir
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv, visible_objects
from sim.house import load_house
from sim.house_check import MAX_COORDINATE, HouseError
from sim.interface import Pose
from sim.lattice import AgentConfig
from sim.topdown import save_map

MAX_RANDOM_POSES = 1000
"""The most poses one ``--random-poses`` run renders (four PNGs each)."""


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


def parse_pose(text: str, agent: AgentConfig) -> Pose:
    """The ``--pose X,Z,HEADING`` of a render: finite, within the house limits, and facing one
    of the agent's headings (the lattice has no other; a pose between two is refused, not
    turned)."""
    pose = Pose.parse(text)  # an InputError unless three finite numbers
    if max(abs(pose.x), abs(pose.z)) > MAX_COORDINATE:
        raise BadInput(f"--pose {text!r}: X and Z are metres inside the house (at most "
                       f"{MAX_COORDINATE:g} from the origin)")
    step = 360.0 / agent.headings
    k = pose.yaw / step
    if abs(k - round(k)) > 1e-6:
        allowed = ", ".join(f"{h * step:g}" for h in range(agent.headings))
        raise BadInput(f"--pose {text!r}: heading {pose.yaw:g} deg is not one of the agent's "
                       f"{agent.headings} headings ({allowed}); use one of them"
                       + (" or --agent.headings 8" if agent.headings == 4 else ""))
    return pose


def choose_states(lattice, pose: str | None, random_poses: int, seed: int):
    """Lattice states to render: the one given by ``--pose`` (None here, placed by the env) or
    ``random_poses`` reachable states drawn with ``default_rng(seed)``."""
    if pose is not None and random_poses:
        raise BadInput("give either --pose or --random-poses, not both")
    if pose is not None:
        return [None]
    if not 1 <= random_poses <= MAX_RANDOM_POSES:
        raise BadInput(f"--random-poses {random_poses}: give 1 to {MAX_RANDOM_POSES} (or "
                       "--pose X,Z,HEADING)")
    states = lattice.reachable_states()
    if not states:
        raise BadInput("the house has no reachable lattice cell; check it with "
                       "`spoc-houses validate`")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(states), size=random_poses, replace=random_poses > len(states))
    return [states[int(i)] for i in picks]


def make_out_dir(out: Path) -> Path:
    """Create the ``--out`` folder (BadInput when it cannot be made)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"--out {out}: cannot create the folder ({e.strerror})") from None
    return out


def reset(env: EmbeddedEnv, house: dict, pose: Pose):
    """The first observation at ``pose`` (BadInput when it is off the lattice or blocked)."""
    try:
        return env.reset(house, pose)
    except ValueError as e:  # the env's own pose checks; the house was checked on load
        raise BadInput(str(e)) from None


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
    target = parse_pose(pose, agent) if pose is not None else None
    out = check_out_dir(out)
    rec = load_house(path, index)
    env = EmbeddedEnv(camera=camera, agent=agent)
    try:
        scene, lattice = env.load(rec.house)
    except HouseError as e:  # the lattice's size limit names the house id, not the file
        raise e.at(path, index) from None
    except ValueError as e:  # a camera the renderer cannot draw (pitch + vfov / 2 too steep)
        raise BadInput(str(e)) from None
    states = choose_states(lattice, pose, random_poses, seed)
    first = reset(env, rec.house, target) if target is not None else None
    make_out_dir(out)
    for k, state in enumerate(states):
        obs = first if state is None else env.reset_state(state)
        p = env.pose
        files = write_views(obs, out, k)
        files["map"] = str(save_map(scene, out / f"map_{k}.png", lattice=lattice, pose=p,
                                    title=f"{rec.house_id} pose {k}: ({p.x:.2f}, {p.z:.2f}, "
                                          f"{p.yaw:.0f} deg)"))
        seen = visible_objects(scene, obs.ids, p)
        print(json.dumps({"house": rec.house_id, "pose": [p.x, p.z, p.yaw], "files": files,
                          "visible": sorted({v.object_type for v in seen.values()})}),
              flush=True)


def build_parser():
    """The ``spoc-sim`` parser: one subcommand per function above, typed from signatures."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = command_parser("spoc-sim", __doc__)
    sub = parser.add_subcommands(dest="command")
    p = ArgumentParser(description=summary(render.__doc__))
    p.add_argument("--config", action=ActionConfigFile, help="A YAML file of options.")
    p.add_argument("path", type=Path, help="House file.")
    p.add_function_arguments(render, skip={"path"})
    sub.add_subcommand("render", p, help=summary(render.__doc__))
    return parser


def run(argv: list[str]) -> int:
    """Parse ``argv`` and run the subcommand; its exit status."""
    parser = build_parser()
    cfg = parser.parse_args(argv)
    command = cfg.command
    try:
        sub = parser.instantiate(cfg)[command]
    except ValueError as e:  # a camera/agent value its dataclass rejects
        raise BadInput(str(e)) from None
    kwargs = {k: v for k, v in vars(sub).items() if k not in ("config", "__path__")}
    {"render": render}[command](**kwargs)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``spoc-sim``: bad input is one line on stderr and exit status 2."""
    return entry_point("spoc-sim", run, argv)


if __name__ == "__main__":
    sys.exit(main())
