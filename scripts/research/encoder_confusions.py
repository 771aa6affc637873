"""What a pretrained encoder takes for each target type where the type is not in the frame.

    python scripts/research/encoder_confusions.py --checkpoint RUN/checkpoints/last.ckpt \\
        --data DATASET_DIR [--split val] [--top 3] [--out FILE.json]

For every frame of the split (the labels rendered at the stored poses, as in pretraining):
the frames where a target type shows no pixel but some cell still scores it above 0, counted
by the object type that cell mostly shows ("<none>": walls, floor, doors), with each one's
colour distance to the target in the embedded renderer's palette. Large shares at furniture
the target stands on say the encoder learned where a type is found, not what it looks like;
small colour distances would say the palette makes them look alike.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.files import json_bytes, write_atomic
from training.pretrain.module import confusion_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a `spoc-pretrain` checkpoint")
    parser.add_argument("--data", required=True, help="dataset dir with its house files")
    parser.add_argument("--split", default="val")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--out", help="also write the report as JSON here")
    args = parser.parse_args(argv)
    report = confusion_report(args.checkpoint, args.data, args.split, args.top)
    print(f"{report['frames']} frames of {args.data}/{args.split}; per target type: frames "
          "without it that a cell scores for it, and what that cell mostly shows "
          "(share, colour distance)")
    for target, row in report["types"].items():
        causes = ", ".join(f"{c['type']} {c['share']:.0%}"
                           + ("" if c["colour_distance"] is None
                              else f" ({c['colour_distance']:.2f})")
                           for c in row["taken_for"])
        print(f"  {target:12s} {row['false_positive_frames']:5d}  {causes}")
    if args.out:
        write_atomic(Path(args.out), json_bytes(report))


if __name__ == "__main__":
    main()
