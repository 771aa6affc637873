"""What the colour detector costs per frame, beside rendering the frame.

    python scripts/bench/bench_detector.py --data data/aux/dataset --detector runs/aux/detector.json
    python scripts/bench/bench_detector.py ... --out /tmp/bench_detector.md  # a table
    python scripts/bench/bench_detector.py ... --compare runs/aux/detector-single.json

On the ObjectNav episodes among the first ``--episodes`` of ``--split``, each with its own
target, times per frame in CPU-seconds of this process (best of ``--repeats``, interleaved):
rendering the frame at the stored pose (``Renderer.render``: RGB, depth, ids; the house is
loaded outside the timer), the detector's box (``ColourDetector.box``), and the same box with
the pixel test written over the last axis of the (H, W, 3) chromaticity (``chromaticity``,
then ``abs(...).sum(-1)``), and with ``--compare`` another detector's box (a fit with other
colours: one per type against one per asset colour) side by side. It also checks that the
two pixel tests give the same mask on every pixel, for every fitted type.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from agents.detector import ColourDetector, lit_chromaticity
from datagen.constants import TASK_OBJECTNAV
from sim.detect import region_box
from training.detector.cli import open_split, split_episodes


def last_axis_mask(detector: ColourDetector, rgb: np.ndarray, target: str) -> np.ndarray:
    """``ColourDetector.mask`` over the (H, W, 3) chromaticity's last axis."""
    c, lit = lit_chromaticity(rgb)
    dist = np.min([np.abs(c - np.asarray(centre, np.float32)).sum(-1)
                   for centre in detector.centre[target]], axis=0)
    return lit & (dist <= detector.radius[target])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--detector", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", help="another detector file timed side by side")
    parser.add_argument("--out", help="also write the table here (markdown)")
    args = parser.parse_args()
    detector = ColourDetector.load(args.detector)
    _, renderer = open_split(args.data, args.split)
    episodes = [m for m in split_episodes(args.data, args.split, args.episodes)
                if m["task"] == TASK_OBJECTNAV]
    frames = []  # (rgb, target)
    for meta in episodes:
        renderer.load(meta, args.split)
        frames += [(renderer.env.renderer.render(*pose).rgb, meta["target"])
                   for pose in meta["poses"]]
    same = all(np.array_equal(detector.mask(rgb, t), last_axis_mask(detector, rgb, t))
               for rgb, _ in frames for t in detector.centre)

    def render() -> float:
        seconds = 0.0
        for meta in episodes:
            renderer.load(meta, args.split)
            t0 = time.process_time()
            for pose in meta["poses"]:
                renderer.env.renderer.render(*pose)
            seconds += time.process_time() - t0
        return seconds

    def timed(box) -> float:
        t0 = time.process_time()
        for rgb, target in frames:
            box(rgb, target)
        return time.process_time() - t0

    def last_axis_box(rgb, target):
        return region_box(last_axis_mask(detector, rgb, target), detector.min_pixels[target])

    runs = {"render the frame": render, "detector box": lambda: timed(detector.box),
            "box, last-axis pixel test": lambda: timed(last_axis_box)}
    colours = sum(len(c) for c in detector.centre.values()) / len(detector.centre)
    if args.compare:
        other = ColourDetector.load(args.compare)
        others = sum(len(c) for c in other.centre.values()) / len(other.centre)
        compared = f"box, {args.compare} ({others:.1f} colours per type)"
        runs[compared] = lambda: timed(other.box)
    best = {name: float("inf") for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            best[name] = min(best[name], 1000 * run() / len(frames))
    h, w = frames[0][0].shape[:2]
    lines = [f"{len(frames)} frames ({h}x{w}) of {args.data}/{args.split}, "
             f"{platform.processor() or platform.machine()}; CPU ms per frame, best of "
             f"{args.repeats}; the two pixel tests give the same mask on every pixel for all "
             f"{len(detector.centre)} types: {same}; {args.detector}: {colours:.1f} colours "
             "per type", "",
             "| step | CPU ms per frame |", "|---|---|"]
    lines += [f"| {name} | {ms:.3f} |" for name, ms in best.items()]
    lines += ["", f"detector / render: {best['detector box'] / best['render the frame']:.2f}; "
              "last-axis / per-channel box: "
              f"{best['box, last-axis pixel test'] / best['detector box']:.1f}x"]
    if args.compare:
        lines[-1] += f"; detector / compared box: {best['detector box'] / best[compared]:.2f}"
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
