"""The labelled frames ``spoc-pretrain`` trains on: every frame of the expert shards with
its labels rendered from the stored poses.

Pretraining the frame encoder on the simulator's own labels, before behaviour cloning.

A policy trained from scratch must learn to recognise its targets from the action labels alone.
Here the encoder's conv blocks learn it directly first: for every frame of the expert shards
(decoded, as behaviour cloning sees them, or rendered at the stored poses for a pose-only
dataset), which ObjectNav target types each cell of the last conv feature map shows, and which
room type the agent stands in. The labels come from
replaying each stored pose in the embedded renderer (its instance-id image, mapped to object
types) and the house's room layout, from the house files the dataset holds; only the training
splits' houses are used.

    spoc-pretrain fit --config configs/pretrain/cpu.yaml --data.root DATASET_DIR \\
        --data.train_splits '[train, train-noise]' --trainer.default_root_dir RUN_DIR
    spoc-train fit --config configs/train/cpu.yaml ... \\
        --model.encoder_init RUN_DIR/checkpoints/last.ckpt

A batch is a dict of ``frames`` (N, 3, h, w) uint8 at the training resolution, ``objects``
(N, K, gh, gw) int32 (how many pixels of target type k each cell of the conv grid shows, at the
training resolution; the object loss counts a cell from ``model.object_min_pixels``),
``rooms`` (N,) long (index into the room types, -1 outside them), ``pixels`` (N, K) int32 (how
many pixels of the rendered frame each target type covers, at the camera's resolution),
``num_skipped`` () and ``num_lost`` () (bad samples skipped, and episodes shards fell short of
info.json's count by, since the last batch: :mod:`training.data.streams`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from agents.frames import resize_frames, resize_labels
from datagen.constants import INFO_FILE, KEY_META, KEY_RGB
from datagen.video import decode_frames
from training.data.accounting import (
    DEFAULT_MAX_MISSING_FRACTION,
    EpisodeLedger,
    check_fraction,
    check_shards,
)
from training.data.augment import apply_colour, colour_jitter
from training.data.houses import HouseLines, PoseRenderer, check_frames, frame_source
from training.data.info import (
    DataOptionError,
    DatasetMismatchError,
    load_info,
    shard_urls,
    split_urls,
)
from training.data.streams import (
    EpochDataLoader,
    ShardStream,
    _resampled_urls,
    epoch_about_to_run,
)
from training.pretrain.metrics import adaptive_bins


def label_vocab(info: dict) -> tuple[list[str], list[str]]:
    """(object types, room types) labelled: the dataset's ObjectNav and RoomNav targets."""
    tasks = info.get("config", {}).get("tasks", {})
    objects, rooms = tasks.get("objectnav_targets"), tasks.get("roomnav_targets")
    if not objects:
        raise DatasetMismatchError("info.json: config.tasks.objectnav_targets is missing or "
                                   "empty; regenerate the dataset with `spoc-datagen episodes`")
    return list(objects), list(rooms or [])


class EpisodeLabeler:
    """Per-step labels of stored episodes, from their poses: an object-type map per frame
    (0 = none, k + 1 = ``objects[k]``) and the room type under the agent."""

    def __init__(self, info: dict, houses: dict[str, HouseLines],
                 objects: list[str] | None = None):
        self.objects, self.rooms = label_vocab(info)
        self.objects = list(objects or self.objects)  # e.g. every type, for diagnostics
        self.poses = PoseRenderer(info, houses)
        self.env, self.houses = self.poses.env, houses

    def __call__(self, meta: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(T, H, W) uint8 object-type maps and (T,) int64 room indices (-1: none)."""
        return self._replay(meta, split, rgb=False)[1:]

    def render(self, meta: dict, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The frames rendered afresh at the poses ((T, H, W, 3) uint8: what the simulator
        shows, without the shards' video compression), with the maps and rooms of
        ``__call__``."""
        return self._replay(meta, split, rgb=True)

    def _replay(self, meta: dict, split: str, rgb: bool) -> tuple:
        scene, lattice = self.poses.load(meta, split)
        lut = np.zeros(len(scene.boxes) + 1, dtype=np.uint8)  # instance id -> class (< 256)
        index = {t: k + 1 for k, t in enumerate(self.objects)}
        lut[1:] = [index.get(t, 0) for t in scene.boxes.object_type]
        room_of_type = {t: k for k, t in enumerate(self.rooms)}
        poses = meta["poses"]
        maps = np.empty((len(poses), self.env.camera.height, self.env.camera.width), np.uint8)
        rooms = np.full(len(poses), -1, dtype=np.int64)
        frames = np.empty(maps.shape + (3,), np.uint8) if rgb else None
        for t, (x, z, yaw) in enumerate(poses):
            if rgb:
                frame = self.env.renderer.render(x, z, yaw)
                frames[t], ids = frame.rgb, frame.ids
            else:
                ids = self.env.renderer.render_ids(x, z, yaw)
            maps[t] = lut[ids]
            k = lattice.room_of(*lattice.cell_of(x, z))
            if k >= 0:
                rooms[t] = room_of_type.get(scene.rooms[k].room_type, -1)
        return frames, maps, rooms


def cell_pixels(maps: torch.Tensor, size: tuple[int, int], grid: tuple[int, int],
                num_classes: int) -> torch.Tensor:
    """(T, H, W) uint8 class maps (0 = none) -> (T, K, gh, gw) int32: how many pixels of class
    k + 1 each cell of the ``grid`` over the frame resized to ``size`` shows.

    The cells are adaptive pooling's windows; one ``bincount`` per cell over all frames
    (~5-6x fewer CPU-seconds than average-pooling a one-hot map,
    ``scripts/bench/bench_pretrain.py``)."""
    maps = resize_labels(maps, size)  # (T, h, w)
    t, h, w = maps.shape
    k = num_classes + 1
    offset = torch.arange(t)[:, None] * k  # (T, 1): frame t counts into [t k, t k + k)
    out = torch.empty(t, grid[0], grid[1], k, dtype=torch.int32)
    for i, (r0, r1) in enumerate(adaptive_bins(h, grid[0])):
        for j, (c0, c1) in enumerate(adaptive_bins(w, grid[1])):
            codes = maps[:, r0:r1, c0:c1].reshape(t, -1).long() + offset  # (T, cell pixels)
            out[:, i, j] = torch.bincount(codes.flatten(), minlength=t * k).view(t, k)
    return out[..., 1:].permute(0, 3, 1, 2).contiguous()


def pixel_counts(maps: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(T, H, W) uint8 class maps (0 = none) -> (T, K) int32: pixels of class k + 1 per frame."""
    t = maps.shape[0]
    k = num_classes + 1
    codes = maps.reshape(t, -1).long() + torch.arange(t)[:, None] * k
    return torch.bincount(codes.flatten(), minlength=t * k).view(t, k)[:, 1:].int()


class LabelledFrameStream(ShardStream):
    """Batches of labelled frames from episode shards (see the module docstring).

    ``train=True``: shards resampled from (seed, epoch, rank, worker), every frame of an
    episode with the episode's colour jitter, mixed through a frame shuffle buffer, exactly
    ``batches_per_epoch`` batches per rank. ``train=False``: every frame of every shard once,
    in order (split over ranks when there are enough shards). The labels are rendered from
    each split's house file, whichever ``frames`` the stream reads.
    """

    def __init__(self, urls: list[tuple[str, str]], info: dict, *, train: bool,
                 image_size: tuple[int, int], grid: tuple[int, int], batch_size: int,
                 batches_per_epoch: int = 0, shuffle_buffer: int = 1024, jitter: float = 0.0,
                 frames: str = "decoded", seed: int = 0, rank: int = 0, world_size: int = 1,
                 ledger: EpisodeLedger | None = None):
        super().__init__(urls, info, train=train, batch_size=batch_size,
                         batches_per_epoch=batches_per_epoch, frames=frames, seed=seed,
                         rank=rank, world_size=world_size, ledger=ledger)
        self.image_size, self.grid = tuple(image_size), tuple(grid)
        self.shuffle_buffer, self.jitter = shuffle_buffer, jitter
        self.num_objects = len(label_vocab(info)[0])
        self.labeler: EpisodeLabeler | None = None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self.labeler = EpisodeLabeler(self.info, self._house_files())  # in the worker that iterates
        return super().__iter__()

    def _train_items(self, seq: np.random.SeedSequence) -> Iterator[tuple]:
        shard_rng, rng = (np.random.default_rng(s) for s in seq.spawn(2))
        samples = self._samples(lambda: _resampled_urls(self.urls, shard_rng))
        return self._shuffled(self._items(samples, rng), rng)

    def _sample_items(self, sample: dict, rng: np.random.Generator | None) -> Iterator[tuple]:
        """(frame (3, h, w) uint8, cell labels (K, gh, gw), room (), pixels (K,)) per step."""
        meta = json.loads(sample[KEY_META])
        split = self.split_of[sample["__url__"]]
        if self.frames == "rendered":
            rgb, maps, rooms = self.labeler.render(meta, split)
        else:
            maps, rooms = self.labeler(meta, split)
            rgb = decode_frames(sample[KEY_RGB], 0, len(maps))  # (T, H, W, 3)
        if rgb.shape[:3] != maps.shape:
            raise ValueError(f"frames {rgb.shape[:3]} do not match the replayed poses "
                             f"{maps.shape}")
        frames = resize_frames(torch.from_numpy(rgb).permute(0, 3, 1, 2), self.image_size)
        if rng is not None and self.jitter > 0:
            frames = apply_colour(frames, colour_jitter(frames, rng, self.jitter))
        maps = torch.from_numpy(maps)
        cells = cell_pixels(maps, self.image_size, self.grid, self.num_objects)
        return zip(frames, cells, torch.from_numpy(rooms), pixel_counts(maps, self.num_objects))

    def _shuffled(self, items: Iterator[tuple], rng: np.random.Generator) -> Iterator[tuple]:
        """Items through a buffer of ``shuffle_buffer``, each drawn from it at random."""
        buf: list[tuple] = []
        for item in items:
            buf.append(item)
            if len(buf) >= self.shuffle_buffer:
                k = int(rng.integers(len(buf)))
                buf[k], buf[-1] = buf[-1], buf[k]
                yield buf.pop()
        yield from buf

    def _collate(self, items: list[tuple]) -> dict[str, torch.Tensor]:
        frames, cells, rooms, pixels = zip(*items)
        return {"frames": torch.stack(frames), "objects": torch.stack(cells),
                "rooms": torch.stack(rooms), "pixels": torch.stack(pixels)}


class LabelledFrameDataModule(pl.LightningDataModule):
    """Frames of a dataset's training splits (and its ``val`` split) with their labels."""

    def __init__(
        self,
        root: str,
        image_size: tuple[int, int] = (84, 144),
        batch_size: int = 128,
        batches_per_epoch: int = 200,
        num_workers: int = 1,
        shuffle_buffer: int = 2048,
        augment: bool = True,
        jitter: float = 0.2,
        frames: str | None = None,
        val_split: str = "val",
        train_splits: list[str] | None = None,
        seed: int = 0,
        max_missing_fraction: float = DEFAULT_MAX_MISSING_FRACTION,
    ):
        """
        Args:
            root: Dataset directory written by `spoc-datagen episodes` (the labels are
                rendered from the house files it holds).
            image_size: Training resolution (H, W); use the behaviour cloning run's.
            batch_size: Frames per batch.
            batches_per_epoch: Training batches per epoch (streams are resampled).
            num_workers: DataLoader worker processes (each decodes and renders labels).
            shuffle_buffer: Frames held by each worker's shuffle buffer.
            augment: Colour jitter in training, per episode (never in validation).
            jitter: Brightness/contrast amplitude of the colour jitter.
            frames: ``decoded`` (the shards' H.264 video) or ``rendered`` (rendered again at
                the stored poses with the embedded renderer: the exact frames evaluation
                sees, without the video's compression; costs about what decoding does).
                Default: the dataset's own, ``rendered`` for a pose-only dataset (info.json
                ``frames: none``), else ``decoded``.
            val_split: Split read for validation.
            train_splits: Splits trained on (default ``["train"]``).
            seed: Seed of the training streams (with epoch and worker).
            max_missing_fraction: Largest fraction of a split read that may be missing before
                pretraining stops with an error: of its shards (listed in info.json but not on
                disk, or on disk but not listed; checked here) and of its episodes (those a
                shard should hold by info.json but does not yield, e.g. a tar damaged
                mid-archive; checked as the shards are read). Below it each loss is a warning
                naming the shard.
        """
        super().__init__()
        self.save_hyperparameters()
        if batch_size < 1 or batches_per_epoch < 1:
            raise DataOptionError(f"data: batch_size={batch_size} and batches_per_epoch="
                                  f"{batches_per_epoch} must both be >= 1")
        check_frames(frames)
        self.root, self.image_size = Path(root), tuple(int(v) for v in image_size)
        self.info = load_info(self.root)
        self.frames = frame_source(frames, self.info, self.root)
        self.objects, self.rooms = label_vocab(self.info)
        self.train_splits = list(train_splits or ["train"])
        fraction = check_fraction(max_missing_fraction)
        episodes = check_shards(self.root, self.info, [*self.train_splits, val_split], fraction)
        self.ledger = EpisodeLedger(self.root, episodes, fraction)
        # the labels are rendered from the house files: checked here, not in a loader worker
        validated = [val_split] if shard_urls(self.root, val_split) else []
        PoseRenderer.house_entries(self.info, [*self.train_splits, *validated],
                                   self.root / INFO_FILE)
        self.grid: tuple[int, int] | None = None  # the conv grid; else the trainer's model's

    @property
    def spec(self) -> dict:
        """What the model needs to know about the data; stored in every checkpoint."""
        return {"objects": self.objects, "rooms": self.rooms, "image_size": list(self.image_size),
                "dataset": {"root": str(self.root.resolve()), "train_splits": self.train_splits}}

    def _loader(self, train: bool) -> EpochDataLoader:
        hp = self.hparams
        grid = self.grid or self.trainer.lightning_module.grid
        stream = LabelledFrameStream(
            split_urls(self.root, self.train_splits if train else [hp.val_split]), self.info,
            train=train, image_size=self.image_size, grid=grid, batch_size=hp.batch_size,
            batches_per_epoch=hp.batches_per_epoch, shuffle_buffer=hp.shuffle_buffer,
            jitter=hp.jitter if hp.augment and train else 0.0, frames=self.frames, seed=hp.seed,
            rank=self.trainer.global_rank if self.trainer else 0,
            world_size=self.trainer.world_size if self.trainer else 1, ledger=self.ledger)
        return EpochDataLoader(stream, lambda: epoch_about_to_run(self.trainer),
                               num_workers=hp.num_workers,
                               persistent_workers=False)

    def train_dataloader(self) -> EpochDataLoader:
        return self._loader(train=True)

    def val_dataloader(self) -> EpochDataLoader | list:
        return self._loader(train=False) if shard_urls(self.root, self.hparams.val_split) else []
