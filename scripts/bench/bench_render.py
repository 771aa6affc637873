"""Frames per second per core of the embedded renderer, compiled vs the numpy reference.

    python scripts/bench/bench_render.py                      # fixture houses
    python scripts/bench/bench_render.py --houses data/houses/train.jsonl.gz --num-houses 3
    python scripts/bench/bench_render.py --out /tmp/bench_render.md  # a table
    git show HEAD:sim/render.py > /tmp/render_base.py  # an older renderer, side by side:
    python scripts/bench/bench_render.py --baseline /tmp/render_base.py

Renders RGB + depth + ids at the configured size (default 224x384) from random reachable
lattice poses, for a level and a pitched (30 degrees down) camera, with the ids agreement
with the numpy reference, times the ids-only path (``Renderer.render_counts``: pixel counts
per instance id, what ObjectNav goal sets use), and steps an EmbeddedEnv with random
actions. ``--baseline FILE`` also times another version of ``sim/render.py`` (loaded from
FILE, its default ``Renderer``) on the same poses, interleaved with the current one.
Throughput is frames per CPU-second of this process (``process_time``), the best of
``--repeats`` runs, so that other load on a shared machine inflates it less; the wall-clock
rate is printed beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from sim.camera import CameraConfig
from sim.env import EmbeddedEnv
from sim.house import load_house, load_houses
from sim.lattice import Lattice
from sim.render import Renderer
from sim.render_ref import render_reference
from sim.scene import build_scene

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = [ROOT / "tests/fixtures/143.json", ROOT / "tests/fixtures/house_3703.json"]


def random_poses(lattice: Lattice, n: int, seed: int) -> list[tuple[float, float, float]]:
    """``n`` reachable lattice states as (x, z, yaw) poses."""
    states = lattice.reachable_states()
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.choice(len(states), size=n, replace=n > len(states)):
        i, j, h = states[int(k)]
        out.append((*lattice.position(i, j), lattice.yaw(h)))
    return out


def rate(fn, poses, repeats: int) -> tuple[float, float]:
    """(frames per CPU-second, frames per wall-second), best of ``repeats``."""
    best_cpu = best_wall = 0.0
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        for pose in poses:
            fn(*pose)
        c1, w1 = time.process_time(), time.perf_counter()
        best_cpu = max(best_cpu, len(poses) / max(c1 - c0, 1e-9))
        best_wall = max(best_wall, len(poses) / max(w1 - w0, 1e-9))
    return best_cpu, best_wall


def load_baseline(path: Path):
    """The ``Renderer`` class of another copy of ``sim/render.py``."""
    spec = importlib.util.spec_from_file_location("render_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's cache pickles references to the module
    spec.loader.exec_module(module)
    return module.Renderer


def env_rate(house: dict, camera: CameraConfig, steps: int, seed: int) -> float:
    """EmbeddedEnv steps per CPU-second with random actions (every step renders)."""
    env = EmbeddedEnv(camera=camera)
    _, lattice = env.load(house)
    rng = np.random.default_rng(seed)
    env.reset_state(lattice.reachable_states()[0])
    actions = rng.integers(0, 3, size=steps)  # move_ahead, rotate_left, rotate_right
    c0 = time.process_time()
    for a in actions:
        env.step(int(a))
    return steps / max(time.process_time() - c0, 1e-9)


def agreement(render, refs: dict) -> float:
    """Mean fraction of ids pixels on which ``render`` agrees with the reference frames
    (pose -> frame)."""
    return float(np.mean([(render(*p).ids == ref.ids).mean() for p, ref in refs.items()]))


def bench_house(name: str, house: dict, args) -> list[dict]:
    scene = build_scene(house, name)
    lattice = Lattice(scene)
    poses = random_poses(lattice, args.frames, args.seed)
    rows = []
    for label, pitch in (("level", 0.0), ("pitched", 30.0)):
        cam = CameraConfig(height=args.height, width=args.width, pitch=pitch)
        r = Renderer(scene, cam)
        r.render(*poses[0])  # compile or load the cache
        r.render_counts(*poses[0])
        refs = {p: render_reference(scene, cam, *p) for p in poses[:args.ref_frames]}
        c0 = time.process_time()
        for p in refs:
            render_reference(scene, cam, *p)
        ref_cpu = len(refs) / max(time.process_time() - c0, 1e-9)
        old = load_baseline(args.baseline)(scene, cam) if args.baseline else None
        if old is not None:
            old.render(*poses[0])
        # Interleaved repeats, so that both renderers see the same load.
        fps = fps_wall = ids_fps = 0.0
        base = base_wall = 0.0 if old is not None else None
        for _ in range(args.repeats):
            c, w = rate(r.render, poses, 1)
            i, _ = rate(r.render_counts, poses, 1)
            fps, fps_wall, ids_fps = max(fps, c), max(fps_wall, w), max(ids_fps, i)
            if old is not None:
                c, w = rate(old.render, poses, 1)
                base, base_wall = max(base, c), max(base_wall, w)
        rows.append({
            "house": name, "rooms": len(scene.rooms), "pieces": len(scene.pieces),
            "boxes": len(scene.boxes), "camera": label, "columns": r.num_columns,
            "fps": fps, "fps_wall": fps_wall, "ids_fps": ids_fps, "base_fps": base,
            "base_wall": base_wall, "ref_fps": ref_cpu, "vs_ref": agreement(r.render, refs),
            "env_steps": env_rate(house, cam, args.env_steps, args.seed)})
    return rows


def table(rows: list[dict]) -> str:
    base = rows[0]["base_fps"] is not None
    head = ("| house | rooms | pieces | boxes | camera | columns | fps/core | (wall) | "
            + ("baseline fps/core | (wall) | " if base else "")
            + "ids-only fps/core | ids = reference | numpy reference fps | speed-up | "
            "EmbeddedEnv steps/s |\n" + "|---" * (15 if base else 13) + "|\n")

    def baseline(r):
        return f"{r['base_fps']:,.0f} | {r['base_wall']:,.0f} | " if base else ""

    return head + "".join(
        f"| {r['house']} | {r['rooms']} | {r['pieces']} | {r['boxes']} | {r['camera']} | "
        f"{r['columns']} | {r['fps']:,.0f} | {r['fps_wall']:,.0f} | {baseline(r)}"
        f"{r['ids_fps']:,.0f} | {100 * r['vs_ref']:.2f}% | {r['ref_fps']:.1f} | "
        f"{r['fps'] / r['ref_fps']:,.0f}x | {r['env_steps']:,.0f} |\n" for r in rows)


def load_set(args) -> list[tuple[str, dict]]:
    houses = [(p.name, load_house(p).house) for p in FIXTURES]
    if args.houses:
        for k, rec in enumerate(load_houses(args.houses)):
            if k >= args.num_houses:
                break
            houses.append((f"{Path(args.houses).name}:{rec.index}", rec.house))
    return houses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--frames", type=int, default=400, help="poses per house and camera")
    p.add_argument("--ref-frames", type=int, default=10, help="poses for the numpy reference")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--env-steps", type=int, default=400)
    p.add_argument("--height", type=int, default=224)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--houses", type=Path, default=None, help="extra house file (.jsonl.gz)")
    p.add_argument("--num-houses", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    p.add_argument("--baseline", type=Path, default=None,
                   help="another sim/render.py to time on the same poses (before/after)")
    args = p.parse_args()
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    rows = [row for name, house in load_set(args) for row in bench_house(name, house, args)]
    text = (f"{args.height}x{args.width} RGB+depth+ids, {args.frames} random reachable poses "
            f"per house and camera, best of {args.repeats}; {os.cpu_count()} cores, "
            f"{platform.processor() or platform.machine()}, load average {load0:.1f} at start; "
            f"{time.perf_counter() - t0:.0f} s in all.\n\n" + table(rows))
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
