"""Encoder pretraining: label loader throughput vs training consumption, in one run.

    python scripts/bench/bench_pretrain.py --data DATASET_DIR [--config configs/pretrain/cpu.yaml]
        [--batches 20] [--steps 10] [--threads 2]

* loader: one process (= one DataLoader worker) reading the train split at the config's
  resolution and batch size: frames decoded, resized, labelled (instance ids rendered at each
  stored pose and mapped to target types) and jittered, per wall-clock second and per
  CPU-second of the process (``process_time``); then the same with the frames rendered again
  at the poses (``--data.frames rendered``, one renderer pass with the ids) instead of decoded.
* labels alone: the renderer's ids pass and type map per CPU-second, and the per-cell labels
  (``cell_pixels``, one bincount per cell) side by side with adaptive average pooling of a
  one-hot map times each cell's area (the same counts).
* training: frames/s the conv blocks and heads consume (forward, backward, AdamW) on batches
  of the config's shape, with ``--threads`` torch threads.

DATASET_DIR must have the house files its info.json names (the labels are rendered from them).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from agents.frames import resize_labels
from agents.policy import PolicyConfig
from datagen.constants import KEY_META
from training.data.houses import PoseRenderer
from training.data.info import load_info, shard_urls, split_urls
from training.pretrain.data import (
    EpisodeLabeler,
    LabelledFrameStream,
    adaptive_bins,
    cell_pixels,
    label_vocab,
)
from training.pretrain.module import EncoderPretrainModule

ROOT = Path(__file__).resolve().parents[2]


def bench_loader(root: Path, info: dict, cfg: dict, grid, batches: int,
                 frames: str = "decoded") -> dict:
    torch.set_num_threads(1)  # as in a DataLoader worker
    data = cfg["data"]
    stream = LabelledFrameStream(split_urls(root, ["train"]), info,
                                 train=True, image_size=tuple(data["image_size"]), grid=grid,
                                 batch_size=data["batch_size"], batches_per_epoch=batches + 1,
                                 shuffle_buffer=data["shuffle_buffer"], jitter=0.2,
                                 frames=frames)
    it = iter(stream)
    next(it)  # houses read, shuffle buffer filled
    wall, cpu = time.perf_counter(), time.process_time()
    frames = sum(len(b["frames"]) for b in it)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"frames": frames, "per_s": frames / wall, "per_cpu_s": frames / cpu}


def bench_labels(root: Path, info: dict, size, grid, episodes: int = 40) -> dict:
    import webdataset as wds

    split = "train"
    labeler = EpisodeLabeler(info, PoseRenderer.house_files(info, [split]))
    metas = [json.loads(s[KEY_META]) for s, _ in
             zip(wds.WebDataset(shard_urls(root, split)[0], shardshuffle=False), range(episodes))]
    labeler(metas[0], split)  # the house's scene and renderer built
    k = len(labeler.objects)
    cpu, frames, all_maps = time.process_time(), 0, []
    for meta in metas:
        maps, _ = labeler(meta, split)
        all_maps.append(torch.from_numpy(maps))
        frames += len(maps)
    render = time.process_time() - cpu
    out = {"frames": frames, "render_per_cpu_s": frames / render}
    for name, fn in (("cells", cell_pixels), ("cells_pooled", pooled_cells)):
        cpu = time.process_time()
        for maps in all_maps:
            fn(maps, size, grid, k)
        out[name + "_ms"] = 1000 * (time.process_time() - cpu) / frames
    return out


def pooled_cells(maps: torch.Tensor, size, grid, num_classes: int) -> torch.Tensor:
    """The reference for ``cell_pixels``: adaptive average pooling of each class's mask, times
    each window's area."""
    small = resize_labels(maps, size)
    classes = torch.arange(1, num_classes + 1, dtype=small.dtype)[None, :, None, None]
    onehot = (small[:, None] == classes).float()
    return (F.adaptive_avg_pool2d(onehot, grid) * window_areas(small.shape[-2:], grid)).round()


def window_areas(size, grid) -> torch.Tensor:
    """(gh, gw) pixels in each adaptive pooling window over an image of ``size`` (h, w)."""
    rows, cols = adaptive_bins(size[0], grid[0]), adaptive_bins(size[1], grid[1])
    return torch.tensor([[(r1 - r0) * (c1 - c0) for c0, c1 in cols] for r0, r1 in rows],
                        dtype=torch.float32)


def bench_training(module: EncoderPretrainModule, cfg: dict, steps: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    data = cfg["data"]
    n, (h, w) = data["batch_size"], data["image_size"]
    gen = torch.Generator().manual_seed(0)
    batch = {"frames": torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=gen),
             "objects": torch.randint(0, 200, (n, len(module.spec["objects"]), *module.grid),
                                      generator=gen).mul_(torch.rand(
                                          n, len(module.spec["objects"]), *module.grid,
                                          generator=gen) < 0.01).int(),
             "rooms": torch.randint(-1, len(module.spec["rooms"]), (n,), generator=gen)}
    opt = torch.optim.AdamW(module.parameters())
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        loss = module._losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"frames_per_s": steps * n / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="dataset directory with a train split")
    parser.add_argument("--config", default=str(ROOT / "configs" / "pretrain" / "cpu.yaml"))
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    root, cfg = Path(args.data), yaml.safe_load(Path(args.config).read_text())
    info = load_info(root)
    objects, rooms = label_vocab(info)
    spec = {"objects": objects, "rooms": rooms, "image_size": cfg["data"]["image_size"]}
    module = EncoderPretrainModule(PolicyConfig(**cfg["model"]["policy"]), dataset_spec=spec)
    size = tuple(cfg["data"]["image_size"])
    print(f"{args.config}: {size[0]}x{size[1]}, batches of {cfg['data']['batch_size']} frames,"
          f" conv grid {module.grid}")
    loader = bench_loader(root, info, cfg, module.grid, args.batches)
    print(f"loader (1 process): {loader['per_s']:.0f} frames/s, "
          f"{loader['per_cpu_s']:.0f} per CPU-second ({loader['frames']} frames)")
    rendered = bench_loader(root, info, cfg, module.grid, args.batches, frames="rendered")
    print(f"loader, frames rendered at the poses instead of decoded: {rendered['per_s']:.0f} "
          f"frames/s, {rendered['per_cpu_s']:.0f} per CPU-second "
          f"({rendered['per_cpu_s'] / loader['per_cpu_s']:.2f}x the decoding loader)")
    labels = bench_labels(root, info, size, module.grid)
    print(f"labels ({labels['frames']} frames): ids render + type map "
          f"{labels['render_per_cpu_s']:.0f} frames per CPU-second; cells "
          f"{labels['cells_ms']:.3f} ms/frame (bincount) vs {labels['cells_pooled_ms']:.3f} "
          f"(pooled one-hot, same output): {labels['cells_pooled_ms'] / labels['cells_ms']:.1f}x")
    train = bench_training(module, cfg, args.steps, args.threads)
    print(f"training ({args.threads} threads): {train['frames_per_s']:.0f} frames/s; "
          f"loader / training: {loader['per_cpu_s'] / train['frames_per_s']:.2f}")


if __name__ == "__main__":
    main()
