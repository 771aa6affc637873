"""Loader throughput vs training consumption, side by side.

    python scripts/bench/bench_train.py [--data DATASET_DIR] [--config configs/train/cpu.yaml]
        [--device cpu|cuda] [--steps 10] [--batches 20] [--repeats 3] [--defer-colour]
        [--seq-len L] [--batch-size B] [--image-size H W] [--rendered] [--target-box]
        [--encoder-batch N [N ...]] [--house-cache N [N ...]] [--appearance]
    git show 1b93184~1:training/data.py > /tmp/data_base.py  # an older loader, side by side:
    python scripts/bench/bench_train.py --baseline /tmp/data_base.py

* loader: one process (= one DataLoader worker, 1 torch thread) reading the train split at
  the config's chunk length, resolution and augmentation: frames decoded and chunk frames
  delivered, per wall-clock second and per CPU-second of the process (``process_time``).
* bare decode: whole episodes through ``decode_frames`` (decode + RGB), the loader's bound.
* training: steps/s, samples/s and frames/s the policy consumes (forward, backward, AdamW) on
  batches of the config's shape with the padding of the loader's first batch, on ``--device``
  (bf16 autocast on cuda, like gpu.yaml): with only the unpadded steps' frames encoded (what
  training does), side by side with every slot encoded; ``--encoder-batch N ...`` also times
  it with the frame encoder run on N frames per call (``policy.encoder_batch``; 0 = all in one
  call), the same weights, interleaved.
* ``--defer-colour``: also the loader as it runs for an accelerator (colour jitter left to the
  device), side by side with the CPU path, and training with the jitter applied on the device.
* ``--rendered``: also the loader with ``--data.frames rendered`` (each chunk's frames rendered
  again at the stored poses from the split's house file instead of decoded), side by side.
* ``--house-cache N ...``: with ``--rendered``, also the rendered loader keeping ``N`` built
  houses at once instead of :data:`training.data.houses.HOUSE_CACHE`, side by side (the
  default dataset is of one house; give a ``--data`` of many houses to see house switching).
* ``--appearance``: with ``--rendered``, also the rendered loader drawing every episode's
  appearance with every part at its full bounds (``--data.appearance.*`` 1), side by side.
* ``--target-box``: also the loader with ``--data.target_box true``, reading the boxes the
  shards store (``target_box.npy``), and side by side the same loader rendering each step's
  instance ids at its pose for the box instead (what it does for samples without them), with a
  check that both give the same batches.

Loader and decode rates are the best of ``--repeats`` runs; ``--baseline FILE`` also times
another loader, a single-file ``training/data.py`` of an older commit (its stream and
``decode_frames``), interleaved with the current one (:data:`CURRENT`) in every repeat, and
checks that both give the same batches.
Without ``--data`` it writes a small dataset at 224x384 (the SPOC camera) from the bigger
test house with the real datagen pipeline into a temporary folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch
import webdataset as wds
import yaml

import training.data.chunks
import training.data.houses
from agents.policy import PolicyConfig
from datagen.config import DatagenConfig
from datagen.constants import FRAMES_NONE, KEY_TARGET_BOX
from datagen.dataset import dataset_frames, open_dataset
from datagen.episodes import HouseFile
from datagen.shards import write_shard
from sim.appearance import AppearanceConfig
from training.data.chunks import unpadded_steps
from training.data.info import load_info, shard_urls, split_urls
from training.data.streams import EpisodeChunkStream
from training.module import PolicyModule

ROOT = Path(__file__).resolve().parents[2]


class BoxesRendered(EpisodeChunkStream):
    """The current stream with every sample's stored ``target_box.npy`` dropped, so that the
    box is rendered from the instance ids at each pose (what the loader does for samples
    written without it)."""

    def _sample_items(self, sample, rng):
        return super()._sample_items({k: v for k, v in sample.items() if k != KEY_TARGET_BOX},
                                     rng)


CURRENT = SimpleNamespace(EpisodeChunkStream=EpisodeChunkStream, split_urls=split_urls,
                          decode_frames=training.data.chunks.decode_frames,
                          decode_owner=training.data.chunks)
"""The current loader, seen as the single module an older ``training/data.py`` was: its
stream, its shard lister and ``decode_frames``, which :func:`bench_loader` counts in the
module that calls it (``decode_owner``)."""
RENDERED_BOXES = SimpleNamespace(**{**vars(CURRENT), "EpisodeChunkStream": BoxesRendered})


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


def load_baseline(path: Path, name: str = "data_baseline") -> ModuleType:
    """A single-file loader (an older commit's ``training/data.py``) as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def loader_stream(data: ModuleType, root: Path, data_cfg: dict, batches: int, **extra):
    """The training stream of ``data`` (:data:`CURRENT` or an older loader) at the config's shape,
    with ``extra`` stream options (``defer_colour``, ``frames``, ``target_box``). A baseline
    copy from before the streams took (shard, split) pairs and info.json gets shard paths and
    goals."""
    augment = data_cfg.get("augment", True)
    info = load_info(root)
    if hasattr(data, "split_urls"):
        head = (data.split_urls(root, ["train"]), info)
    else:
        head = (shard_urls(root, "train"), info["goals"])
    return data.EpisodeChunkStream(
        *head, train=True,
        seq_len=data_cfg["seq_len"], image_size=tuple(data_cfg["image_size"]),
        batch_size=data_cfg["batch_size"], batches_per_epoch=batches, shuffle_buffer=8,
        jitter=0.2 if augment else 0.0, shift=4 if augment else 0, **extra)


def bench_loader(data: ModuleType, root: Path, data_cfg: dict, batches: int, **extra) -> dict:
    """Frames decoded and delivered per wall-clock and per CPU-second by one loader process
    (``house_cache`` in ``extra``: with that many houses kept instead of ``HOUSE_CACHE``)."""
    kept = training.data.houses.HOUSE_CACHE
    training.data.houses.HOUSE_CACHE = extra.pop("house_cache", kept)
    try:
        return _bench_loader(data, root, data_cfg, batches, **extra)
    finally:
        training.data.houses.HOUSE_CACHE = kept


def _bench_loader(data: ModuleType, root: Path, data_cfg: dict, batches: int, **extra) -> dict:
    stream = loader_stream(data, root, data_cfg, batches, **extra)
    next(iter(stream))  # warm-up (imports, first shard)
    decoded = 0
    owner = getattr(data, "decode_owner", data)  # the module whose decode_frames is called
    decode = owner.decode_frames

    def counting_decode(mp4, *args, **kwargs):
        nonlocal decoded
        frames = decode(mp4, *args, **kwargs)
        bound = inspect.signature(decode).bind(mp4, *args, **kwargs).arguments
        decoded += bound.get("start", 0) + len(frames)  # frames before start: decoded, not kept
        return frames

    owner.decode_frames = counting_decode
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        delivered = slots = 0
        for batch in stream:
            delivered, slots = delivered + int(batch["mask"].sum()), slots + batch["mask"].numel()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        owner.decode_frames = decode
    return {"decoded_fps": decoded / seconds, "delivered_fps": delivered / seconds,
            "slots_fps": slots / seconds,
            "decoded_cpu_fps": decoded / cpu, "delivered_cpu_fps": delivered / cpu}


def bench_decode_only(data: ModuleType, root: Path, episodes: int = 20) -> dict:
    """Frames/s of bare mp4 decoding to RGB (whole episodes), the loader's upper bound."""
    samples = list(wds.DataPipeline(wds.SimpleShardList(shard_urls(root, "train")),
                                    wds.tarfile_to_samples()))[:episodes]
    t0, c0, frames = time.perf_counter(), time.process_time(), 0
    for sample in samples:
        frames += len(data.decode_frames(sample["rgb.mp4"]))
    return {"fps": frames / (time.perf_counter() - t0),
            "cpu_fps": frames / (time.process_time() - c0)}


def same_batches(a: ModuleType, b: ModuleType, root: Path, data_cfg: dict, **extra) -> bool:
    """Whether two loaders give identical training batches (augmentation on)."""
    batches = zip(loader_stream(a, root, data_cfg, 4, **extra),
                  loader_stream(b, root, data_cfg, 4, **extra))
    return all(torch.equal(x[k], y[k]) for x, y in batches for k in x)


def bench_loaders(loaders: dict[str, tuple[ModuleType, dict]], root: Path,
                  data_cfg: dict, batches: int, repeats: int) -> dict[str, dict]:
    """Best-of-``repeats`` loader and bare-decode rates of each (loader, stream options),
    interleaved."""
    best: dict[str, dict] = {name: {} for name in loaders}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like a DataLoader worker
    try:
        for r in range(repeats):
            names = list(loaders) if r % 2 == 0 else list(loaders)[::-1]
            for name in names:
                data, extra = loaders[name]
                rates = {**bench_loader(data, root, data_cfg, batches, **extra),
                         **{f"decode_{k}": v for k, v in bench_decode_only(data, root).items()}}
                for key, value in rates.items():
                    best[name][key] = max(best[name].get(key, 0.0), value)
    finally:
        torch.set_num_threads(threads)
    return best


def bench_training(model_cfg: dict, data_cfg: dict, info: dict, device: str, steps: int,
                   defer_colour: bool = False, mask: torch.Tensor | None = None,
                   encoder_batches: tuple[int, ...] = ()) -> dict[str, dict]:
    """Training steps/s on random batches of the config's shape (``defer_colour``: with the
    colour jitter applied on ``device`` first, as a loader for an accelerator leaves it).

    ``mask`` (B, L), a real batch's padding, also times the step with only the unpadded
    steps' frames encoded (the batch's ``steps``), interleaved with the step that encodes
    every slot; frames/s counts unpadded frames. Each of ``encoder_batches`` adds the
    unpadded-steps step with the encoder run on that many frames per call."""
    b, l = data_cfg["batch_size"], data_cfg["seq_len"]
    h, w = data_cfg["image_size"]
    spec = {"actions": info["actions"], "goals": info["goals"], "image_size": [h, w]}
    module = PolicyModule(policy=PolicyConfig(**model_cfg.get("policy", {})), dataset_spec=spec,
                          lr=model_cfg.get("lr", 3e-4)).to(device)
    opt = module.configure_optimizers()["optimizer"]
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(b, l, dtype=torch.bool) if mask is None else mask
    frames = torch.randint(0, 256, (b, l, 3, h, w), dtype=torch.uint8, generator=gen)
    batch = {
        "frames": frames.masked_fill_(~mask[..., None, None, None], 0),
        "actions": torch.randint(0, 4, (b, l), generator=gen),
        "prev_actions": torch.randint(0, 5, (b, l), generator=gen),
        "goals": torch.randint(0, len(info["goals"]), (b,), generator=gen),
        "mask": mask,
    }
    if defer_colour:
        batch["colour"] = torch.tensor([[1.1, 0.9, 1.0], [-3.0, 5.0, 0.5]]).expand(b, 2, 3)
    default = module.policy.encoder.batch  # the config's policy.encoder_batch
    packed = {**batch, "steps": unpadded_steps(mask)}
    variants = {"unpadded steps encoded": (packed, default)}
    if not mask.all():
        variants["every slot encoded"] = (batch, default)
    for n in encoder_batches:
        variants[f"unpadded steps encoded, encoder_batch {n}"] = (packed, n)
    variants = {name: ({k: v.to(device) for k, v in b.items()}, n)
                for name, (b, n) in variants.items()}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))

    def step(on_host):
        on_device = module.on_after_batch_transfer(dict(on_host), 0)
        with autocast:
            loss = module._predict(on_device)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds, cpu = dict.fromkeys(variants, 0.0), dict.fromkeys(variants, 0.0)
    for i in range(2 + steps):  # two warm-up rounds, then interleaved
        for name, (variant, n) in variants.items():
            module.policy.encoder.batch = n
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            step(variant)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[name] += (time.perf_counter() - t0) * (i >= 2)
            cpu[name] += (time.process_time() - c0) * (i >= 2)
    real = int(mask.sum())  # unpadded frames per batch
    return {name: {"steps_per_s": steps / t, "samples_per_s": steps * b / t,
                   "frames_per_s": steps * real / t, "padding": 1 - real / mask.numel(),
                   "steps_per_cpu_s": steps / cpu[name]}
            for name, t in seconds.items()}


def print_loaders(best: dict[str, dict]) -> None:
    rows = [("mp4 decode + RGB only (1 process)", "decode_fps", "decode_cpu_fps"),
            ("loader, 1 worker: decoded", "decoded_fps", "decoded_cpu_fps"),
            ("loader, 1 worker: chunk frames delivered", "delivered_fps", "delivered_cpu_fps")]
    names = list(best)
    head = " | ".join(f"{n}: frames/s | {n}: per CPU-s" for n in names)
    ratio_head = f" {names[0]} / {names[1]} (CPU-s) |" if len(names) > 1 else ""
    print(f"| stage | {head} |" + ratio_head)
    print("|---|" + "---|" * (2 * len(names) + (len(names) > 1)))
    for label, wall, cpu in rows:
        cells = " | ".join(f"{best[n][wall]:,.0f} | {best[n][cpu]:,.0f}" for n in names)
        ratio = ""
        if len(names) > 1:  # a loader that renders its frames decodes none
            a, b = best[names[0]][cpu], best[names[1]][cpu]
            ratio = f" {a / b:.2f}x |" if a and b else " - |"
        print(f"| {label} | {cells} |{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="dataset directory (default: write one)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "train" / "cpu.yaml")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--batches", type=int, default=20, help="timed loader batches")
    parser.add_argument("--repeats", type=int, default=1, help="loader runs (best is kept)")
    parser.add_argument("--baseline", type=Path, help="another training/data.py to time too")
    parser.add_argument("--seq-len", type=int, help="override the config's data.seq_len")
    parser.add_argument("--batch-size", type=int, help="override the config's data.batch_size")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        help="override the config's data.image_size")
    parser.add_argument("--defer-colour", action="store_true",
                        help="also the loader and training with the colour jitter on the device")
    parser.add_argument("--rendered", action="store_true",
                        help="also the loader with the frames rendered at the poses")
    parser.add_argument("--house-cache", type=int, nargs="+", default=[],
                        help="with --rendered: also the rendered loader keeping N houses built")
    parser.add_argument("--appearance", action="store_true",
                        help="with --rendered: also the rendered loader with the appearance "
                             "randomised at its full bounds")
    parser.add_argument("--target-box", action="store_true",
                        help="also the loader with the target's box from ids at the poses")
    parser.add_argument("--encoder-batch", type=int, nargs="+", default=[],
                        help="also time training with the encoder run on N frames per call")
    parser.add_argument("--shards", type=int, default=2, help="shards to write without --data")
    parser.add_argument("--episodes", type=int, default=16, help="episodes per written shard")
    args = parser.parse_args()
    if args.data and dataset_frames(load_info(args.data)) == FRAMES_NONE:
        parser.error(f"--data {args.data}: a pose-only dataset has no video for the decoding "
                     "loaders; give one written with video (its rendered loader is "
                     "--rendered's)")
    if (args.house_cache or args.appearance) and not args.rendered:
        parser.error("--house-cache and --appearance time the rendered loader: add --rendered")
    cfg = yaml.safe_load(args.config.read_text())
    for key, value in [("seq_len", args.seq_len), ("batch_size", args.batch_size),
                       ("image_size", args.image_size)]:
        if value is not None:
            cfg["data"][key] = value
    loaders = {"current": (CURRENT, {})}
    if args.baseline:
        loaders["baseline"] = (load_baseline(args.baseline), {})
    if args.defer_colour:
        loaders["colour on device"] = (CURRENT, {"defer_colour": True})
    if args.rendered:
        loaders["frames rendered"] = (CURRENT, {"frames": "rendered"})
        for n in args.house_cache:
            loaders[f"rendered, {n} houses kept"] = (CURRENT, {"frames": "rendered",
                                                            "house_cache": n})
        if args.appearance:
            loaders["rendered, appearance"] = (CURRENT, {"frames": "rendered",
                                                         "appearance": AppearanceConfig.uniform(1)})
    if args.target_box:
        loaders["target box"] = (CURRENT, {"target_box": True})
        loaders["target box rendered"] = (RENDERED_BOXES, {"target_box": True})
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or make_dataset(Path(tmp) / "ds", args.shards, args.episodes)
        info = load_info(root)
        steps = [s["steps"] / max(1, s["episodes"])
                 for s in info["splits"]["train"]["shards"].values()]
        same = args.baseline and same_batches(loaders["current"][0], loaders["baseline"][0],
                                              root, cfg["data"])
        same_box = args.target_box and same_batches(CURRENT, RENDERED_BOXES, root,
                                                    cfg["data"], target_box=True)
        best = bench_loaders(loaders, root, cfg["data"], args.batches, args.repeats)
        mask = next(iter(loader_stream(CURRENT, root, cfg["data"], 1)))["mask"]
    trains = bench_training(cfg.get("model", {}), cfg["data"], info, args.device, args.steps,
                            args.defer_colour, mask, tuple(args.encoder_batch))
    train = trains["unpadded steps encoded"]
    cam = info["camera"]
    encoder_batch = cfg.get("model", {}).get("policy", {}).get("encoder_batch", 0)
    print(f"config {args.config.name}: batch {cfg['data']['batch_size']} x "
          f"seq {cfg['data']['seq_len']} at {cfg['data']['image_size']}, encoder_batch "
          f"{encoder_batch}, device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"dataset: {cam['height']}x{cam['width']} mp4, mean episode {sum(steps) / len(steps):.1f}"
          f" steps; loader rates: best of {args.repeats}")
    if args.baseline:
        print(f"baseline {args.baseline}: same training batches as current: {same}")
    print_loaders(best)
    if args.target_box:
        ratio = (best["target box"]["delivered_cpu_fps"]
                 / best["target box rendered"]["delivered_cpu_fps"])
        print(f"target box, stored / rendered: {ratio:.2f}x chunk frames per CPU-second; "
              f"same batches: {same_box}")
    print(f"\ntraining on a real batch's padding ({train['padding']:.0%} of the slots):")
    for name, rates in trains.items():
        print(f"- {name}: {rates['frames_per_s']:,.0f} unpadded frames/s, "
              f"{rates['steps_per_s']:.2f} steps/s, {rates['samples_per_s']:.1f} samples/s, "
              f"{rates['steps_per_cpu_s']:.2f} steps per CPU-second")
    if "every slot encoded" in trains:
        ratio = train["steps_per_s"] / trains["every slot encoded"]["steps_per_s"]
        print(f"unpadded steps only / every slot: {ratio:.2f}x steps/s")
    for n in args.encoder_batch:
        rate = trains[f"unpadded steps encoded, encoder_batch {n}"]["steps_per_s"]
        print(f"encoder_batch {n} / {encoder_batch}: {rate / train['steps_per_s']:.2f}x steps/s")
    for name, rates in best.items():  # the batches' frame slots, padding included
        slots_per_s = train["frames_per_s"] / (1 - train["padding"])
        workers = slots_per_s / max(rates["slots_fps"], 1e-9)
        print(f"loader workers needed to keep up ({name}): {workers:.2f}")


if __name__ == "__main__":
    main()
