"""One row per pretraining run: the probe table of docs/experiments/encoder-probes.md, from the
runs' validation tables.

    python scripts/research/probe_summary.py RUN_DIR [RUN_DIR ...]

Reads each run's newest ``logs/version_N/val_detection.json`` (written by ``spoc-pretrain fit``
or ``validate``) and prints the validation step, the mean frame-level AP of the small and of the
large target types (``frame_ap_50px``: frames with >= 50 px of the type against frames without
it), their mean base rates, and the recall of the frames that show >= 50 px of the type, pooled
over each group's types.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from colour_detector import SMALL

from training.pretrain.metrics import AP_MIN_PIXELS, SIZE_EDGES

BIG = SIZE_EDGES.index(AP_MIN_PIXELS)
"""The first size bucket of the frames the AP counts as showing a type (>= 50 px)."""
AP_KEY = f"frame_ap_{AP_MIN_PIXELS}px"
"""Each type's AP entry in ``val_detection.json``."""


def newest_table(run: Path) -> Path:
    tables = sorted(run.glob("logs/version_*/val_detection.json"),
                    key=lambda p: int(p.parent.name.split("_")[1]))
    if not tables:
        raise SystemExit(f"{run}: no logs/version_N/val_detection.json; run `spoc-pretrain "
                         "validate --ckpt_path RUN/checkpoints/last.ckpt` first")
    return tables[-1]


def summary(table: dict) -> dict:
    """Mean AP, mean base rate and pooled >= 50 px recall of the small and the large types."""
    out = {}
    for group, names in (("small", [t for t in table if t in SMALL]),
                         ("large", [t for t in table if t not in SMALL])):
        aps = [table[t][AP_KEY] for t in names if table[t][AP_KEY]["ap"] is not None]
        big = [b for t in names for b in table[t]["frame_recall_by_pixels"][BIG:] if b["frames"]]
        frames = sum(b["frames"] for b in big)
        out[group] = {
            "map": sum(a["ap"] for a in aps) / max(len(aps), 1),
            "base_rate": sum(a["base_rate"] for a in aps) / max(len(aps), 1),
            "recall": sum(b["recall"] * b["frames"] for b in big) / max(frames, 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    print("run | step | small mAP (base rate) | large mAP (base rate) | small recall | large "
          "recall")
    for run in args.runs:
        path = newest_table(run)
        data = json.loads(path.read_text())
        s = summary(data["types"])
        print(f"{run} | {data['step']} | {s['small']['map']:.3f} ({s['small']['base_rate']:.3f})"
              f" | {s['large']['map']:.3f} ({s['large']['base_rate']:.3f}) | "
              f"{s['small']['recall']:.3f} | {s['large']['recall']:.3f}")


if __name__ == "__main__":
    main()
