"""End-to-end expert datagen throughput on one core: oracle + render + encode + write.

    python scripts/bench/bench_datagen.py --houses houses/train.jsonl.gz --num-houses 4 \\
        --episodes-per-house 20
    python scripts/bench/bench_datagen.py ... --frames video none   # side by side

With several ``--frames`` kinds (``video``: the frames as H.264; ``none``: pose-only shards,
rendered on load), each house is written once per kind, interleaved, and the kinds' steps per
CPU-second and bytes per step are compared (the first kind is the reference).

Each house becomes one shard written in this process (one core), with the default camera
(224x384) unless ``--height/--width`` say otherwise. Times are CPU seconds of this process
(``process_time``; ``--clock wall`` for wall-clock seconds), so other jobs on the machine
change them little. Prints steps/s per core, bytes per step,
the time per stage (per-house setup, ObjectNav goal-set rendering, oracle, path rendering,
encoding, writing) and the projected core-hours for 1M ~60-step trajectories, both at the
measured episodes per house and amortised at ``--project-episodes-per-house``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import tempfile
import time
import types
from pathlib import Path

import numpy as np

import datagen.episodes
import datagen.shards
from datagen.config import DatagenConfig
from datagen.constants import FRAME_KINDS, FRAMES_VIDEO
from datagen.dataset import open_dataset
from datagen.episodes import HouseFile
from datagen.shards import ShardTimings, write_shard
from datagen.tasks import TaskConfig
from sim.camera import CameraConfig
from sim.house import load_houses, write_house_json

FIXTURES = ["tests/fixtures/143.json", "tests/fixtures/house_3703.json"]
STAGES = ("setup", "goal_sets", "oracle", "render", "encode", "labels", "write")
clock = time.process_time


def use_clock(name: str) -> None:
    """Time everything (this script and the writer's stage timings) with ``process_time``
    ("cpu") or ``perf_counter`` ("wall")."""
    global clock
    clock = time.process_time if name == "cpu" else time.perf_counter
    shim = types.SimpleNamespace(perf_counter=clock)
    datagen.shards.time = datagen.episodes.time = shim  # they call time.perf_counter()


def fixture_houses(folder: Path) -> str:
    """The test fixtures as a .jsonl.gz (when no --houses is given)."""
    path = folder / "houses.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for p in FIXTURES:
            f.write(write_house_json(next(load_houses(p)).house) + "\n")
    return str(path)


def renderer_fps(hf: HouseFile, cam: CameraConfig, frames: int = 300) -> float:
    """Frames/s of the renderer alone on the first house (a load gauge for this machine)."""
    from sim.env import EmbeddedEnv

    env = EmbeddedEnv(cam)
    _, lat = env.load(hf.read([0])[0].house)
    i, j = (int(v) for v in np.argwhere(lat.reachable)[0])
    x, z = lat.position(i, j)
    env.renderer.render(x, z, 0.0)
    t0 = clock()
    for k in range(frames):
        env.renderer.render(x, z, 90.0 * k)
    return frames / (clock() - t0)


def run(args) -> dict[str, dict]:
    """Write one shard per house and ``--frames`` kind, the kinds interleaved house by house;
    per kind the summed timings, steps, episodes and bytes."""
    folder = Path(tempfile.mkdtemp(prefix="bench-datagen-"))
    houses = args.houses or fixture_houses(folder)
    hf = HouseFile.scan(houses)
    n = min(args.num_houses, len(hf))
    cam = CameraConfig(height=args.height, width=args.width)
    min_pixels = max(1, round(50 * cam.height * cam.width / (224 * 384)))
    base = DatagenConfig(houses=houses, num_shards=n, episodes_per_shard=args.episodes_per_house,
                         episodes_per_house=args.episodes_per_house, camera=cam,
                         tasks=TaskConfig(min_pixels=min_pixels))
    cfgs = {kind: dataclasses.replace(base, frames=kind) for kind in args.frames}
    for kind, cfg in cfgs.items():
        open_dataset(cfg, hf, folder / kind)
        warm = dataclasses.replace(cfg, num_shards=1, episodes_per_shard=1, episodes_per_house=1)
        open_dataset(warm, hf, folder / f"warm-{kind}")
        write_shard(warm, 0, folder / f"warm-{kind}", hf)  # the compiled renderer, caches
    runs = {kind: {"timings": ShardTimings(), "steps": 0, "episodes": 0, "bytes": 0,
                   "wall": 0.0, "houses": n, "camera": cam} for kind in cfgs}
    for k in range(n):
        for kind, cfg in cfgs.items():
            r = runs[kind]
            t0 = clock()
            res = write_shard(cfg, k, folder / kind, hf)
            r["wall"] += clock() - t0
            for f in dataclasses.fields(ShardTimings):
                setattr(r["timings"], f.name,
                        getattr(r["timings"], f.name) + getattr(res.timings, f.name))
            r["steps"] += res.sidecar["steps"]
            r["episodes"] += res.sidecar["episodes"]
            r["bytes"] += (folder / kind / cfg.split / f"shard-{k:06d}.tar").stat().st_size
            print(f"house {k}, frames {kind}: {res.sidecar['episodes']} episodes, "
                  f"{res.sidecar['steps']} steps, {res.timings.goal_frames} goal-set frames, "
                  f"{res.seconds:.1f} s")
    fps = renderer_fps(hf, cam)
    for r in runs.values():
        r["render_fps"] = fps
    return runs


def report(r: dict, project_e: int) -> str:
    t, steps, wall = r["timings"], r["steps"], r["wall"]
    per_house = (t.setup + t.goal_sets) / r["houses"]
    per_step = (wall - t.setup - t.goal_sets) / steps
    mean_len = steps / r["episodes"]
    amortised = 1.0 / (per_step + per_house / (project_e * mean_len))
    lines = [
        f"camera {r['camera'].height}x{r['camera'].width}; {r['houses']} houses, "
        f"{r['episodes']} episodes, {steps} steps (mean {mean_len:.1f} steps/episode)",
        f"end-to-end: {steps / wall:.0f} steps/s per core ({wall:.1f} s); the renderer alone "
        f"ran at {r['render_fps']:.0f} frames/s in this run",
        f"bytes per step: {r['bytes'] / steps:.0f}",
        "breakdown (ms per step, all stages sum to the wall time):",
    ]
    for s in STAGES:
        lines.append(f"  {s:<10} {1000 * getattr(t, s, 0.0) / steps:7.3f} ms")
    other = wall - sum(getattr(t, s, 0.0) for s in STAGES)  # a baseline tree may lack a stage
    lines.append(f"  {'other':<10} {1000 * other / steps:7.3f} ms")
    lines.append(f"  goal-set frames per house: {t.goal_frames / r['houses']:.0f}; per-house cost "
                 f"(setup + goal sets) {per_house:.2f} s; per-step cost {1000 * per_step:.3f} ms")
    for label, rate in (("as measured", steps / wall),
                        (f"amortised at {project_e} episodes/house", amortised)):
        hours = 1e6 * 60 / rate / 3600
        lines.append(f"1M x 60-step trajectories, {label}: {rate:.0f} steps/s/core -> "
                     f"{hours:.0f} core-hours, {1e6 * 60 * r['bytes'] / steps / 1e9:.0f} GB")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--houses", default=None, help="house file (default: the test fixtures)")
    p.add_argument("--num-houses", type=int, default=2)
    p.add_argument("--episodes-per-house", type=int, default=20)
    p.add_argument("--project-episodes-per-house", type=int, default=100)
    p.add_argument("--height", type=int, default=224)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--frames", nargs="+", choices=FRAME_KINDS, default=[FRAMES_VIDEO],
                   help="what the shards hold of the frames; several: side by side")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="CPU seconds of this process (default) or wall-clock seconds")
    args = p.parse_args()
    use_clock(args.clock)
    runs = run(args)
    for kind, r in runs.items():
        print(f"\n== frames {kind}\n{report(r, args.project_episodes_per_house)}")
    ref_kind, ref = next(iter(runs.items()))
    for kind, r in list(runs.items())[1:]:
        speed = (r["steps"] / r["wall"]) / (ref["steps"] / ref["wall"])
        size = (ref["bytes"] / ref["steps"]) / (r["bytes"] / r["steps"])
        print(f"\nframes {kind} against {ref_kind}, same houses and episodes: {speed:.2f}x the "
              f"steps per {args.clock} second, {size:.1f}x fewer bytes per step")


if __name__ == "__main__":
    main()
