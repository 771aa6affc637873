"""Loader throughput vs training consumption, side by side.

    python scripts/bench_train.py [--data DATASET_DIR] [--config configs/train/cpu.yaml]
        [--device cpu|cuda] [--steps 10] [--batches 20]

* loader: one process (= one DataLoader worker) reading the train split at the config's
  chunk length, resolution and augmentation: decoded frames/s, and chunk frames/s delivered.
* training: steps/s, samples/s and frames/s the policy consumes (forward, backward, AdamW) on
  batches of the config's shape, on ``--device`` (bf16 autocast on cuda, like gpu.yaml).

Without ``--data`` it writes a small dataset at 224x384 (the SPOC camera) from the bigger
test house with the real datagen pipeline into a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from datagen.episodes import HouseFile
from datagen.shards import DatagenConfig, open_dataset, write_shard
from training.data import EpisodeChunkStream, load_info, shard_urls
from training.module import PolicyModule
from training.policy import PolicyConfig

ROOT = Path(__file__).resolve().parents[1]


def make_dataset(out: Path, shards: int, episodes: int) -> Path:
    """A 224x384 train split from tests/fixtures/143.json (real renderer and oracle)."""
    cfg = DatagenConfig(houses=str(ROOT / "tests" / "fixtures" / "143.json"), split="train",
                        num_shards=shards, episodes_per_shard=episodes,
                        episodes_per_house=episodes)
    houses = HouseFile.scan(cfg.houses)
    open_dataset(cfg, houses, out)
    for k in range(shards):
        write_shard(cfg, k, out, houses)
    return out


def bench_loader(root: Path, data_cfg: dict, batches: int) -> dict:
    """Frames decoded and delivered per second by one loader process (1 torch thread, like a
    DataLoader worker)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    info = load_info(root)
    augment = data_cfg.get("augment", True)
    stream = EpisodeChunkStream(
        shard_urls(root, "train"), info["goals"], train=True, seq_len=data_cfg["seq_len"],
        image_size=tuple(data_cfg["image_size"]), batch_size=data_cfg["batch_size"],
        batches_per_epoch=batches, shuffle_buffer=8, jitter=0.2 if augment else 0.0,
        shift=4 if augment else 0)
    next(iter(stream))  # warm-up (imports, first shard)
    decoded = 0
    import training.data as data_mod
    decode = data_mod.decode_frames

    def counting_decode(mp4, stop=None):
        nonlocal decoded
        frames = decode(mp4, stop)
        decoded += len(frames)
        return frames

    data_mod.decode_frames = counting_decode
    try:
        t0 = time.perf_counter()
        delivered = sum(int(b["mask"].sum()) for b in stream)
        seconds = time.perf_counter() - t0
    finally:
        data_mod.decode_frames = decode
        torch.set_num_threads(threads)
    return {"decoded_fps": decoded / seconds, "delivered_fps": delivered / seconds,
            "seconds": seconds}


def bench_decode_only(root: Path, episodes: int = 20) -> float:
    """Frames/s of bare mp4 decoding (whole episodes), the loader's upper bound."""
    import webdataset as wds

    from training.data import decode_frames
    samples = list(wds.DataPipeline(wds.SimpleShardList(shard_urls(root, "train")),
                                    wds.tarfile_to_samples()))[:episodes]
    t0, frames = time.perf_counter(), 0
    for sample in samples:
        frames += len(decode_frames(sample["rgb.mp4"]))
    return frames / (time.perf_counter() - t0)


def bench_training(model_cfg: dict, data_cfg: dict, info: dict, device: str, steps: int) -> dict:
    """Training steps/s on random batches of the config's shape."""
    b, l = data_cfg["batch_size"], data_cfg["seq_len"]
    h, w = data_cfg["image_size"]
    spec = {"actions": info["actions"], "goals": info["goals"], "image_size": [h, w]}
    module = PolicyModule(policy=PolicyConfig(**model_cfg.get("policy", {})), dataset_spec=spec,
                          lr=model_cfg.get("lr", 3e-4)).to(device)
    opt = module.configure_optimizers()["optimizer"]
    gen = torch.Generator().manual_seed(0)
    batch = {
        "frames": torch.randint(0, 256, (b, l, 3, h, w), dtype=torch.uint8, generator=gen),
        "actions": torch.randint(0, 4, (b, l), generator=gen),
        "prev_actions": torch.randint(0, 5, (b, l), generator=gen),
        "goals": torch.randint(0, len(info["goals"]), (b,), generator=gen),
        "mask": torch.ones(b, l, dtype=torch.bool),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))

    def step():
        with autocast:
            loss = module._predict(batch)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"steps_per_s": steps / seconds, "samples_per_s": steps * b / seconds,
            "frames_per_s": steps * b * l / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="dataset directory (default: write one)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "train" / "cpu.yaml")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--batches", type=int, default=20, help="timed loader batches")
    parser.add_argument("--shards", type=int, default=2, help="shards to write without --data")
    parser.add_argument("--episodes", type=int, default=16, help="episodes per written shard")
    args = parser.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or make_dataset(Path(tmp) / "ds", args.shards, args.episodes)
        info = load_info(root)
        steps = [s["steps"] / max(1, s["episodes"])
                 for s in info["splits"]["train"]["shards"].values()]
        loader = bench_loader(root, cfg["data"], args.batches)
        decode_fps = bench_decode_only(root)
    train = bench_training(cfg.get("model", {}), cfg["data"], info, args.device, args.steps)
    cam = info["camera"]
    print(f"config {args.config.name}: batch {cfg['data']['batch_size']} x "
          f"seq {cfg['data']['seq_len']} at {cfg['data']['image_size']}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"dataset: {cam['height']}x{cam['width']} mp4, mean episode {sum(steps) / len(steps):.1f}"
          " steps")
    print("| stage | frames/s | other |")
    print("|---|---|---|")
    print(f"| mp4 decode only (1 process) | {decode_fps:,.0f} | |")
    print(f"| loader, 1 worker: decoded | {loader['decoded_fps']:,.0f} | |")
    print(f"| loader, 1 worker: chunk frames delivered | {loader['delivered_fps']:,.0f} | |")
    print(f"| training consumes | {train['frames_per_s']:,.0f} | "
          f"{train['steps_per_s']:.2f} steps/s, {train['samples_per_s']:.1f} samples/s |")
    workers = train["frames_per_s"] / max(loader["delivered_fps"], 1e-9)
    print(f"\nworkers needed to keep up: {workers:.2f}")


if __name__ == "__main__":
    main()
