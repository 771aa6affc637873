"""Evaluation throughput: episodes per minute per core through ``spoc-eval run``'s harness.

Workloads (untrained weights: speed does not depend on training):

- ``tiny``: the policy of ``configs/train/tiny.yaml`` on 48x64 frames (the tiny dataset);
- ``cpu``: the policy of ``configs/train/cpu.yaml`` (``PolicyConfig`` defaults when that
  file is absent) on the SPOC camera, 224x384;
- ``oracle``: the oracle baseline on each camera, i.e. the simulator and bookkeeping alone.

Untrained policies rarely call ``end``, so most of their episodes run to ``--max-steps``:
compare steps per second as well as episodes per minute.

    python scripts/bench/bench_eval.py --episodes 16 --max-steps 100 --workers 1 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import yaml

from agents.checkpoint import write_untrained_checkpoint
from datagen.constants import DATASET_VERSION
from datagen.tasks import TaskConfig
from eval.config import EvalConfig
from eval.evaluate import evaluate
from sim.camera import CameraConfig
from sim.lattice import ACTIONS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
TINY_CAMERA = CameraConfig(height=48, width=64)
SPOC_CAMERA = CameraConfig()
ROWS: dict[tuple[str, int], list[dict]] = {}
"""(workload, workers) -> per-episode rows, to check that results do not depend on workers."""


def policy_config(name: str) -> dict:
    """The ``model.policy`` block (+ ``data.image_size``) of configs/train/{name}.yaml."""
    path = ROOT / "configs" / "train" / f"{name}.yaml"
    if not path.is_file():
        return {}
    cfg = yaml.safe_load(path.read_text())
    policy = dict(cfg.get("model", {}).get("policy", {}) or {})
    if "image_size" in cfg.get("data", {}):
        policy["image_size"] = tuple(cfg["data"]["image_size"])
    return policy


def dataset_info(camera: CameraConfig, tasks: TaskConfig) -> dict:
    return {"version": DATASET_VERSION, "actions": list(ACTIONS), "goals": tasks.goals(),
            "camera": asdict(camera), "agent": {"grid": 0.25, "headings": 4, "radius": 0.2},
            "config": {"tasks": asdict(tasks)}}


def fixture_houses(path: Path) -> Path:
    """The fixture houses as one held-out .jsonl.gz."""
    with gzip.open(path, "wt") as f:
        for i, name in enumerate(("143.json", "house_3703.json")):
            house = json.loads((FIXTURES / name).read_text())
            house["metadata"]["houseId"] = f"bench-0-{i}"
            f.write(json.dumps(house) + "\n")
    return path


def bench_one(name: str, houses: Path, out: Path, workers: int, args, checkpoint=None,
              camera: CameraConfig | None = None, tasks: TaskConfig | None = None) -> dict:
    cfg = EvalConfig(houses=str(houses), out=str(out / f"{name}-w{workers}"),
                     checkpoint=str(checkpoint) if checkpoint else None,
                     policy=None if checkpoint else "oracle", episodes=args.episodes,
                     seed=0, workers=workers, envs_per_worker=args.envs_per_worker,
                     max_steps=args.max_steps, videos=0, progress=False, camera=camera,
                     tasks=tasks)
    t0 = time.perf_counter()
    info = evaluate(cfg)
    wall = time.perf_counter() - t0
    ROWS[(name, workers)] = info["per_episode"]
    rollout = info["run"]["seconds"]
    n = info["aggregated"]["num_episodes"]
    steps = sum(r["steps"] for r in info["per_episode"])
    return {"workload": name, "workers": workers, "episodes": n,
            "mean_steps": round(steps / n, 1), "rollout_s": rollout, "wall_s": round(wall, 2),
            "episodes_per_min_per_core": round(60 * n / rollout / workers, 1),
            "steps_per_s_per_core": round(steps / rollout / workers, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--envs-per-worker", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--houses", type=Path, default=None,
                        help="held-out house file (default: the two fixture houses)")
    args = parser.parse_args()
    tiny_tasks = TaskConfig(min_pixels=4)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        houses = args.houses or fixture_houses(tmp / "bench.jsonl.gz")
        tiny = write_untrained_checkpoint(tmp / "tiny.ckpt", policy_config("tiny"),
                                          dataset_info(TINY_CAMERA, tiny_tasks))
        cpu = write_untrained_checkpoint(tmp / "cpu.ckpt", policy_config("cpu"),
                                         dataset_info(SPOC_CAMERA, TaskConfig()))
        for workers in args.workers:
            for row in (
                    bench_one("oracle-48x64", houses, tmp, workers, args, camera=TINY_CAMERA,
                              tasks=tiny_tasks),
                    bench_one("tiny-48x64", houses, tmp, workers, args, checkpoint=tiny),
                    bench_one("oracle-224x384", houses, tmp, workers, args,
                              camera=SPOC_CAMERA),
                    bench_one("cpu-224x384", houses, tmp, workers, args, checkpoint=cpu)):
                rows.append(row)
                print(json.dumps(row), flush=True)
    for name in dict.fromkeys(n for n, _ in ROWS):
        runs = [rows for (n, _), rows in ROWS.items() if n == name]
        print(f"{name}: per-episode rows identical across workers {args.workers}: "
              f"{all(r == runs[0] for r in runs)}")
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
