"""What `spoc-detector fit` costs per frame, beside an earlier fit on the same frames.

    git show 14b4d5c:sim/detect.py > /tmp/detect_base.py
    python scripts/bench/bench_detector_fit.py --data DATASET --baseline /tmp/detect_base.py
    python scripts/bench/bench_detector_fit.py ... --out /tmp/bench_detector_fit.md  # a table

The frames of the first ``--episodes`` of ``--split`` at every ``--stride``-th stored pose,
labelled as ``spoc-detector fit`` labels them (:class:`training.detector.cli.FitFrames`), are
rendered once and held here; ``training.detector.fit.fit_colour_detector`` and the baseline
file's fit each run on them, interleaved, best of ``--repeats`` in CPU-seconds of this process. It
checks that both fits write the same detector.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from bench_train import load_baseline

from training.detector.cli import FitConfig, FitFrames, open_split
from training.detector.fit import fit_colour_detector
from training.pretrain.data import label_vocab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--baseline", type=Path, required=True,
                        help="an earlier sim/detect.py whose fit_colour_detector is timed too")
    parser.add_argument("--split", default="train")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--stride", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", help="also write the table here (markdown)")
    args = parser.parse_args()
    cfg = FitConfig(data=args.data, split=args.split, episodes=args.episodes, stride=args.stride)
    info, renderer = open_split(cfg.data, cfg.split)
    targets, _ = label_vocab(info)
    frames = list(FitFrames(cfg, renderer, targets))
    baseline = load_baseline(args.baseline, "detect_baseline")
    fits = {"this fit": fit_colour_detector, f"baseline ({args.baseline})":
            baseline.fit_colour_detector}
    best, made = {name: float("inf") for name in fits}, {}
    for _ in range(args.repeats):
        for name, fit in fits.items():
            t0 = time.process_time()
            made[name] = json.dumps(fit(frames, targets).to_json(), sort_keys=True)
            best[name] = min(best[name], time.process_time() - t0)
    same = len(set(made.values())) == 1
    colours = json.loads(made["this fit"])["centre"]
    h, w = frames[0][0].shape[:2]
    lines = [f"{len(frames)} frames ({h}x{w}) of {args.data}/{args.split} ({args.episodes} "
             f"episodes, stride {args.stride}), {platform.processor() or platform.machine()}; "
             f"CPU seconds, best of {args.repeats}; {len(colours)} types fitted, "
             f"{sum(map(len, colours.values())) / max(len(colours), 1):.1f} colours per type; "
             f"the same detector from both: {same}", "",
             "| fit | CPU s | ms per frame |", "|---|---|---|"]
    lines += [f"| {name} | {s:.2f} | {1000 * s / len(frames):.2f} |" for name, s in best.items()]
    base = best[f"baseline ({args.baseline})"]
    lines += ["", f"baseline / this fit: {base / best['this fit']:.1f}x"]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
