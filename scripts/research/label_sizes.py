"""How many of each target type's positive cells hold only a few of its pixels.

    python scripts/research/label_sizes.py --data DATASET_DIR [--split val] [--config CONFIG]

Streams the split's frames through the pretraining labels at the config's resolution and conv
grid (``cell_pixels``) and prints, per type, its positive cells (at least one pixel) and the
share of them with fewer than 4 and fewer than 8 pixels, then the same for frames (the frame's
best cell): what ``--model.object_min_pixels`` would leave out of the loss.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from agents.policy import PolicyConfig, conv_grid
from training.data.info import DatasetMismatchError, load_info, split_urls
from training.pretrain.data import LabelledFrameStream, label_vocab

ROOT = Path(__file__).resolve().parents[2]
THRESHOLDS = (4, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--config", default=str(ROOT / "configs" / "pretrain" / "cpu.yaml"))
    args = parser.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    size = tuple(cfg["data"]["image_size"])
    grid = conv_grid(PolicyConfig(image_size=size, **cfg["model"]["policy"]))
    info = load_info(args.data)
    try:
        urls = split_urls(args.data, [args.split])
    except DatasetMismatchError:
        raise SystemExit(f"{args.data / args.split}: no shards; name a split the dataset has "
                         "(--split) or write it with `spoc-datagen episodes`") from None
    stream = LabelledFrameStream(urls, info, train=False, image_size=size, grid=grid,
                                 batch_size=256)
    cells = torch.cat([b["objects"] for b in stream])  # (N, K, gh, gw) pixels per cell
    print(f"{len(cells)} frames of {args.split} at {size[0]}x{size[1]}, grid {grid}")
    print("type | positive cells | " + " | ".join(f"< {t} px" for t in THRESHOLDS)
          + " | frames | " + " | ".join(f"best cell < {t} px" for t in THRESHOLDS))
    for k, name in enumerate(label_vocab(info)[0]):
        per_cell = cells[:, k].flatten(1)  # (N, cells)
        positive = per_cell[per_cell > 0]
        best = per_cell.amax(1)
        frames = best[best > 0]
        shares = [f"{float((positive < t).float().mean()) if len(positive) else 0:.2f}"
                  for t in THRESHOLDS]
        frame_shares = [f"{float((frames < t).float().mean()) if len(frames) else 0:.2f}"
                        for t in THRESHOLDS]
        print(f"{name} | {len(positive)} | " + " | ".join(shares) + f" | {len(frames)} | "
              + " | ".join(frame_shares))


if __name__ == "__main__":
    main()
