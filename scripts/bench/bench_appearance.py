"""Extra cost of rendering under a drawn appearance (sim.appearance) vs plain render_rgb.

    python scripts/bench/bench_appearance.py                   # 84x144 and 224x384
    python scripts/bench/bench_appearance.py --sizes 224x384 --frames 800

On each fixture house, from the same random reachable poses (pitched camera, 30 degrees
down), times ``Renderer.render_rgb`` plain, under an appearance with colours and light only
(noise off: the same kernel on other tables) and under the full appearance (noise on: one
more pass over the pixels), interleaved so that all three see the same load; and the
per-episode cost of drawing an appearance and building its view. Throughput is frames per
CPU-second of this process (``process_time``), the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from bench_render import FIXTURES, random_poses

from sim.appearance import AppearanceConfig, draw_appearance
from sim.camera import CameraConfig
from sim.house import load_house
from sim.lattice import Lattice
from sim.render import Renderer
from sim.scene import build_scene

VARIANTS = {"colours+light": AppearanceConfig(1.0, 1.0, 1.0, 0.0),
            "full": AppearanceConfig.uniform(1.0)}
"""The appearances timed beside the plain renderer."""


def cpu_rate(render, poses) -> float:
    """Frames per CPU-second of ``render(x, z, yaw, frame=t)`` over ``poses``."""
    c0 = time.process_time()
    for t, pose in enumerate(poses):
        render(*pose, frame=t)
    return len(poses) / max(time.process_time() - c0, 1e-9)


def view_cost_ms(renderer: Renderer, config: AppearanceConfig, episodes: int) -> float:
    """CPU milliseconds per episode to draw an appearance and build its view."""
    c0 = time.process_time()
    for seed in range(episodes):
        renderer.with_appearance(draw_appearance(config, seed))
    return 1e3 * (time.process_time() - c0) / episodes


def bench(name: str, house: dict, height: int, width: int, args) -> dict:
    scene = build_scene(house, name)
    poses = random_poses(Lattice(scene), args.frames, args.seed)
    plain = Renderer(scene, CameraConfig(height=height, width=width, pitch=30.0))
    renders = {"plain": plain.render_rgb}
    renders |= {k: plain.with_appearance(draw_appearance(c, args.seed)).render_rgb
                for k, c in VARIANTS.items()}
    for render in renders.values():
        render(*poses[0], frame=0)  # compile or load the cache
    best = dict.fromkeys(renders, 0.0)
    for _ in range(args.repeats):
        for key, render in renders.items():
            best[key] = max(best[key], cpu_rate(render, poses))
    return {"house": name, "size": f"{height}x{width}", **best,
            "view_ms": view_cost_ms(plain, VARIANTS["full"], args.episodes)}


def table(rows: list[dict]) -> str:
    head = ("| house | size | plain fps/core | colours+light fps/core | (ratio) | full fps/core "
            "| (ratio) | view per episode, ms |\n" + "|---" * 8 + "|\n")
    return head + "".join(
        f"| {r['house']} | {r['size']} | {r['plain']:,.0f} | {r['colours+light']:,.0f} | "
        f"{r['plain'] / r['colours+light']:.2f}x | {r['full']:,.0f} | "
        f"{r['plain'] / r['full']:.2f}x | {r['view_ms']:.2f} |\n" for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--frames", type=int, default=400, help="poses per house and size")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--episodes", type=int, default=50, help="views built to time a view")
    p.add_argument("--sizes", nargs="+", default=["84x144", "224x384"], help="HxW")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    rows = [bench(path.name, load_house(path).house, h, w, args)
            for h, w in sizes for path in FIXTURES]
    print(f"render_rgb, pitched camera, {args.frames} random reachable poses per house and "
          f"size, best of {args.repeats}; ratio: CPU time per frame under the appearance / "
          f"plain; "
          f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, load "
          f"average {load0:.1f} at start; {time.perf_counter() - t0:.0f} s in all.\n\n"
          + table(rows))


if __name__ == "__main__":
    main()
