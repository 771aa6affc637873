"""How far colour alone goes: a training-free detector of the target types, as a ceiling for
what an encoder could read from the pixels of the embedded renderer.

    python scripts/research/colour_detector.py --data DATASET_DIR [--split val] \\
        [--eps 0.03 0.06 0.1]

The score of type k in a frame is the number of its pixels whose chromaticity (r, g, b over
their sum, which the renderer's lighting does not change) is within ``eps`` (L1) of the type's
palette colour (``sim.scene.type_color``), counting pixels brighter than a sum of 60 only.
It first prints how far the shards' H.264 moves the small types' colours (decoded against
rendered chromaticity over their pixels, at 12-49 and 50-199 px) and each target's nearest
other type in the palette. Then, for each type, the
average precision of ranking the split's frames by that score, frames showing >= 50 pixels of
the type against frames without it (the pretraining validation's ``frame_ap_50px``), once on
the frames rendered at the stored poses (what evaluation sees) and once on the shards'
decoded H.264 frames. It knows the palette, which no
policy is told: it bounds what the pixels hold, it is not a navigation baseline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from datagen.constants import FRAMES_NONE, KEY_META, KEY_RGB
from datagen.dataset import dataset_frames
from datagen.shards import iter_episodes
from datagen.video import decode_frames
from sim.assets import object_types
from sim.scene import chromaticity, type_color
from training.data.houses import PoseRenderer
from training.data.info import load_info, shard_urls
from training.pretrain.data import EpisodeLabeler, pixel_counts
from training.pretrain.metrics import AP_MIN_PIXELS

SMALL = ("AlarmClock", "Apple", "BaseballBat", "BasketBall", "Bowl", "Mug", "SprayBottle",
         "Vase")
"""The targets that cover a median <= 513 pixels of the oracle's final frame
(docs/experiments/behaviour-cloning.md)."""


def exact_ap(score: np.ndarray, positive: np.ndarray) -> float:
    order = np.argsort(-score, kind="stable")
    hits = positive[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / max(hits.sum(), 1))


SIZE_BUCKETS = ((12, 50), (50, 200))
"""[lo, hi) pixels of the two size buckets of the compression's colour shift: 12-49, 50-199."""


def chroma_shift(rendered: np.ndarray, decoded: np.ndarray, maps: np.ndarray,
                 classes: list[int], out: dict) -> None:
    """Adds to ``out[(lo, hi)]`` the mean L1 between the rendered and decoded chromaticity
    over the pixels of each class of ``classes`` in each frame where it covers lo to hi - 1
    px (``SIZE_BUCKETS``)."""
    diff = np.abs(chromaticity(rendered) - chromaticity(decoded)).sum(-1)  # (T, H, W)
    for t in range(len(maps)):
        for k in classes:
            mask = maps[t] == k + 1
            n = int(mask.sum())
            for lo, hi in SIZE_BUCKETS:
                if lo <= n < hi:
                    out[(lo, hi)][0] += float(diff[t][mask].mean())
                    out[(lo, hi)][1] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="dataset dir with its house files")
    parser.add_argument("--split", default="val")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.03, 0.06, 0.1])
    args = parser.parse_args()
    root = Path(args.data)
    info = load_info(root)
    if dataset_frames(info) == FRAMES_NONE:
        parser.error(f"--data {root}: a pose-only dataset has no video to compare the rendered "
                     "frames with; give a dataset written with video")
    labeler = EpisodeLabeler(info, PoseRenderer.house_files(info, [args.split]))
    objects = labeler.objects
    palette = chromaticity([type_color(t) for t in objects], np.float32)
    scores = {(src, eps): [] for src in ("rendered", "decoded") for eps in args.eps}
    pixels = []
    small = [objects.index(t) for t in SMALL if t in objects]
    shift = {bucket: [0.0, 0] for bucket in SIZE_BUCKETS}  # decoded vs rendered chroma, L1
    for url in shard_urls(root, args.split):
        for sample in iter_episodes(Path(url)):
            rgb, maps, _ = labeler.render(sample[KEY_META], args.split)
            pixels.append(pixel_counts(torch.from_numpy(maps), len(objects)).numpy())
            decoded = decode_frames(sample[KEY_RGB], 0, len(maps))
            chroma_shift(rgb, decoded, maps, small, shift)
            for src, frames in (("rendered", rgb), ("decoded", decoded)):
                f = frames.reshape(len(frames), -1, 3)
                chroma = chromaticity(f, np.float32)  # (T, P, 3)
                lit = f.sum(2, dtype=np.float32) > 60  # (T, P)
                dist = np.abs(chroma[:, :, None, :] - palette[None, None]).sum(3)  # (T, P, K)
                for eps in args.eps:
                    scores[(src, eps)].append(((dist < eps) & lit[..., None]).sum(1))
    pixels = np.concatenate(pixels)
    every = object_types()
    chroma_all = chromaticity([type_color(t) for t in every])
    nearest = {}
    for name in objects:
        gap = np.abs(chroma_all - chroma_all[every.index(name)]).sum(1)
        gap[every.index(name)] = np.inf
        nearest[name] = (every[int(gap.argmin())], float(gap.min()))
    print("nearest other type in the palette (chromaticity L1): " + ", ".join(
        f"{k} {v[0]} {v[1]:.3f}" for k, v in nearest.items()))
    print("H.264 colour shift of the small types (mean chromaticity L1, decoded vs rendered): "
          + ", ".join(f"{lo}-{hi - 1} px {total / max(n, 1):.3f} ({n} frames)"
                      for (lo, hi), (total, n) in shift.items()))
    print(f"{len(pixels)} frames of {root}/{args.split}; AP of frames with >= "
          f"{AP_MIN_PIXELS} px of the type vs frames without it")
    for (src, eps), per_episode in scores.items():
        score = np.concatenate(per_episode)
        aps = {}
        for k, name in enumerate(objects):
            keep = (pixels[:, k] == 0) | (pixels[:, k] >= AP_MIN_PIXELS)
            if (pixels[keep, k] > 0).any():
                aps[name] = exact_ap(score[keep, k], pixels[keep, k] > 0)
        small = np.mean([v for k, v in aps.items() if k in SMALL])
        large = np.mean([v for k, v in aps.items() if k not in SMALL])
        print(f"{src:8s} eps {eps:.2f}: small mAP {small:.3f}, large mAP {large:.3f}; "
              + ", ".join(f"{k} {v:.2f}" for k, v in aps.items()))


if __name__ == "__main__":
    main()
