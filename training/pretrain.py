"""Pretraining the frame encoder on the simulator's own labels, before behaviour cloning.

A policy trained from scratch must learn to recognise its targets from the action labels alone.
Here the encoder's conv blocks learn it directly first: for every frame of the expert shards
(decoded, as behaviour cloning sees them), which ObjectNav target types each cell of the last
conv feature map shows, and which room type the agent stands in. The labels come from
replaying each stored pose in the embedded renderer (its instance-id image, mapped to object
types) and the house's room layout, so any dataset whose house file is at hand can be labelled;
only the training splits' houses are used.

    spoc-pretrain fit --config configs/pretrain/cpu.yaml --data.root DATASET_DIR \\
        --data.train_splits '[train, train-noise]' --trainer.default_root_dir RUN_DIR
    spoc-train fit --config configs/train/cpu.yaml ... \\
        --model.encoder_init RUN_DIR/checkpoints/last.ckpt

A batch is a dict of ``frames`` (N, 3, h, w) uint8 at the training resolution, ``objects``
(N, K, gh, gw) int32 (how many pixels of target type k each cell of the conv grid shows, at the
training resolution; the object loss counts a cell from ``model.object_min_pixels``),
``rooms`` (N,) long (index into the room types, -1 outside them), ``pixels`` (N, K) int32 (how
many pixels of the rendered frame each target type covers, at the camera's resolution) and
``num_skipped`` ().

Validation writes ``val_detection.json`` beside the run's metrics: per target type, cell and
frame precision and recall, the frame recall by the type's size in the frame (``SIZE_EDGES``),
which says whether a type is missed because it is small or not seen at all, and the frame-level
average precision (``AP_MIN_PIXELS``), which says whether the features tell the type apart at
any threshold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from datagen.constants import INFO_FILE, KEY_META, KEY_RGB
from datagen.files import json_bytes, write_atomic
from datagen.shards import decode_frames, iter_episodes
from training.data import (
    DatasetMismatchError,
    EpochDataLoader,
    HouseLines,
    PoseRenderer,
    ShardStream,
    _resampled_urls,
    apply_colour,
    check_frames,
    colour_jitter,
    epoch_about_to_run,
    load_info,
    shard_urls,
    split_urls,
)
from training.module import lr_factor
from training.policy import (
    PolicyConfig,
    conv_grid,
    conv_stack,
    normalise_frames,
    resize_frames,
    resize_labels,
)

ENCODER_KEY = "spoc_encoder"
"""Key of the plain-dict encoder record inside a ``spoc-pretrain`` checkpoint."""

SIZE_EDGES = (1, 12, 50, 200, 1000)
"""Lower edges of the size buckets of the frame recall, in pixels of the rendered frame (the
camera's resolution, whatever the training resolution): 1-11, 12-49, 50-199, 200-999, 1000+."""

AP_MIN_PIXELS = 50
"""The frame-level average precision ranks frames by a type's highest cell score and asks for
those where it covers at least this many rendered pixels before those without it (frames where
it shows less are left out): can the features tell the type apart at all, whatever the
threshold."""

SCORE_RANGE, SCORE_BINS = (-12.0, 12.0), 480
"""Logit histogram of the average precision (bins of 0.05; summed over DDP ranks)."""


def label_vocab(info: dict) -> tuple[list[str], list[str]]:
    """(object types, room types) labelled: the dataset's ObjectNav and RoomNav targets."""
    tasks = info.get("config", {}).get("tasks", {})
    objects, rooms = tasks.get("objectnav_targets"), tasks.get("roomnav_targets")
    if not objects:
        raise DatasetMismatchError("info.json: config.tasks.objectnav_targets is missing or "
                                   "empty; regenerate the dataset with `spoc-datagen episodes`")
    return list(objects), list(rooms or [])


# ---------------------------------------------------------------------------------------------
# labels


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


def adaptive_bins(n: int, bins: int) -> list[tuple[int, int]]:
    """[start, end) of each of ``bins`` adaptive-pooling windows over ``n`` (torch's rule:
    floor(i n / bins) to ceil((i + 1) n / bins); neighbours overlap when ``bins`` does not
    divide ``n``)."""
    return [(i * n // bins, -(-(i + 1) * n // bins)) for i in range(bins)]


def cell_pixels(maps: torch.Tensor, size: tuple[int, int], grid: tuple[int, int],
                num_classes: int) -> torch.Tensor:
    """(T, H, W) uint8 class maps (0 = none) -> (T, K, gh, gw) int32: how many pixels of class
    k + 1 each cell of the ``grid`` over the frame resized to ``size`` shows.

    The cells are adaptive pooling's windows; one ``bincount`` per cell over all frames
    (~5-6x fewer CPU-seconds than average-pooling a one-hot map, ``scripts/bench_pretrain.py``)."""
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


# ---------------------------------------------------------------------------------------------
# the stream


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
                 frames: str = "decoded", seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(urls, info, train=train, batch_size=batch_size,
                         batches_per_epoch=batches_per_epoch, frames=frames, seed=seed,
                         rank=rank, world_size=world_size)
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
                "rooms": torch.stack(rooms), "pixels": torch.stack(pixels),
                "num_skipped": torch.tensor(self.skips.take_pending())}


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
        frames: str = "decoded",
        val_split: str = "val",
        train_splits: list[str] | None = None,
        seed: int = 0,
    ):
        """
        Args:
            root: Dataset directory written by `spoc-datagen episodes`; its house files must
                be where info.json says (the labels are rendered from them).
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
            val_split: Split read for validation.
            train_splits: Splits trained on (default ``["train"]``).
            seed: Seed of the training streams (with epoch and worker).
        """
        super().__init__()
        self.save_hyperparameters()
        if batch_size < 1 or batches_per_epoch < 1:
            raise ValueError(f"data: batch_size={batch_size} and batches_per_epoch="
                             f"{batches_per_epoch} must both be >= 1")
        check_frames(frames)
        self.root, self.image_size = Path(root), tuple(int(v) for v in image_size)
        self.info = load_info(self.root)
        self.objects, self.rooms = label_vocab(self.info)
        self.train_splits = list(train_splits or ["train"])
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
            jitter=hp.jitter if hp.augment and train else 0.0, frames=hp.frames, seed=hp.seed,
            rank=self.trainer.global_rank if self.trainer else 0,
            world_size=self.trainer.world_size if self.trainer else 1)
        return EpochDataLoader(stream, lambda: epoch_about_to_run(self.trainer),
                               num_workers=hp.num_workers,
                               persistent_workers=False)

    def train_dataloader(self) -> EpochDataLoader:
        return self._loader(train=True)

    def val_dataloader(self) -> EpochDataLoader | list:
        return self._loader(train=False) if shard_urls(self.root, self.hparams.val_split) else []


# ---------------------------------------------------------------------------------------------
# the model


def object_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor,
                gamma: float = 0.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy of the cells, positives weighted by ``pos_weight``, each
    term scaled by (1 - p_t)^``gamma`` (focal loss; p_t the probability of the right answer);
    ``mask`` (bool, like ``target``): the cells that count, the mean taken over them."""
    if gamma == 0 and mask is None:
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weight = torch.where(target > 0, pos_weight, torch.ones_like(pos_weight))
    if gamma:
        weight = weight * (1 - torch.exp(-ce)) ** gamma
    if mask is None:
        return (weight * ce).mean()
    return (weight * ce * mask).sum() / mask.sum().clamp(min=1)


def cell_targets(pixels: torch.Tensor, min_pixels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-cell pixel counts (N, K, gh, gw) -> (targets float32, the cells that count or None):
    a cell is positive from ``min_pixels`` pixels of the type, negative at none, and left out
    of the loss in between (a type's few pixels far away say little about what it looks
    like)."""
    target = (pixels >= min_pixels).float()
    return target, (None if min_pixels <= 1 else (pixels == 0) | (pixels >= min_pixels))


def detection_counts(pred: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
    """(2, K, 3) long: hits, predictions and positives of each class over the cells (row 0) and
    over the frames, a frame counting a class when any of its cells does (row 1); ``pred`` and
    ``actual`` are (N, K, gh, gw) bool."""
    frame_pred, frame_actual = pred.flatten(2).any(2), actual.flatten(2).any(2)  # (N, K)
    rows = []
    for p, a, dims in ((pred, actual, (0, 2, 3)), (frame_pred, frame_actual, (0,))):
        rows.append(torch.stack([(p & a).sum(dims), p.sum(dims), a.sum(dims)], dim=-1))
    return torch.stack(rows)


def size_recall_counts(frame_pred: torch.Tensor, pixels: torch.Tensor,
                       edges: tuple[int, ...] = SIZE_EDGES) -> torch.Tensor:
    """(K, B, 2) long: per class and size bucket, the frames where the class is predicted and
    shows with that many pixels (hits), and the frames where it shows so (positives).
    ``frame_pred`` (N, K) bool, ``pixels`` (N, K) pixel counts, bucket b = [edges[b],
    edges[b + 1])."""
    bucket = torch.bucketize(pixels.long(), torch.tensor(edges, device=pixels.device),
                             right=True) - 1  # (N, K); -1 below the first edge
    onehot = bucket[..., None] == torch.arange(len(edges), device=pixels.device)  # (N, K, B)
    hits = (onehot & frame_pred[..., None]).sum(0)
    return torch.stack([hits, onehot.sum(0)], dim=-1)


def score_histogram(scores: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """(K, 2, SCORE_BINS) long: per class, the histogram of the frames' scores (N, K) over the
    frames without the class (row 0) and with at least ``AP_MIN_PIXELS`` of it (row 1)."""
    lo, hi = SCORE_RANGE
    k = scores.shape[1]
    idx = ((scores.float().clamp(lo, hi) - lo) * (SCORE_BINS / (hi - lo))).long()
    idx = idx.clamp(max=SCORE_BINS - 1)
    positive = (pixels >= AP_MIN_PIXELS).long()
    keep = (pixels == 0) | (pixels >= AP_MIN_PIXELS)
    codes = ((torch.arange(k, device=scores.device) * 2 + positive) * SCORE_BINS + idx)[keep]
    return torch.bincount(codes, minlength=k * 2 * SCORE_BINS).view(k, 2, SCORE_BINS)


def average_precision(hist: torch.Tensor) -> float | None:
    """Average precision from a (2, bins) negative/positive score histogram (frames in one bin
    count as tied, ranked together); None without positives."""
    neg, pos = hist.flip(-1).double()  # highest scores first
    if pos.sum() == 0:
        return None
    tp, fp = pos.cumsum(0), neg.cumsum(0)
    return float((pos * tp / (tp + fp).clamp(min=1)).sum() / pos.sum())


def false_positive_causes(logits: torch.Tensor, maps: torch.Tensor, absent: torch.Tensor,
                          num_types: int) -> torch.Tensor:
    """(K, A + 1) long: for each target class k, the frames without it where some cell still
    says k, counted by what the highest-scoring such cell mostly shows: object type a + 1 of
    ``maps`` (column a + 1), or no object at all (column 0: walls, floor, doors).

    ``logits`` (T, K, gh, gw) object scores; ``maps`` (T, h, w) uint8 object-type maps over
    all ``num_types`` types (0 = none) at the training resolution (``resize_labels``), cells
    as in ``cell_pixels``; ``absent`` (T, K) bool, frames where class k shows no pixel."""
    t, k, gh, gw = logits.shape
    out = torch.zeros(k, num_types + 1, dtype=torch.long)
    rows, cols = adaptive_bins(maps.shape[1], gh), adaptive_bins(maps.shape[2], gw)
    best, where = logits.flatten(2).max(2)  # (T, K)
    for f, c in zip(*torch.nonzero(absent & (best > 0), as_tuple=True)):
        (r0, r1), (c0, c1) = rows[int(where[f, c]) // gw], cols[int(where[f, c]) % gw]
        counts = torch.bincount(maps[f, r0:r1, c0:c1].flatten().long(),
                                minlength=num_types + 1)
        counts[0] = 0
        out[c, int(counts.argmax()) if counts.any() else 0] += 1
    return out


def bucket_names(edges: tuple[int, ...] = SIZE_EDGES) -> list[str]:
    """"12-49"-style names of the size buckets ("1000+" for the last)."""
    return [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+"]


class EncoderPretrainModule(pl.LightningModule):
    """The policy's conv blocks with two heads: target types per cell, room type per frame."""

    def __init__(
        self,
        policy: PolicyConfig | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        room_weight: float = 0.5,
        object_pos_weight: float = 5.0,
        focal_gamma: float = 0.0,
        object_min_pixels: int = 1,
        dataset_spec: dict | None = None,
    ):
        """
        Args:
            policy: The policy architecture whose encoder is pretrained (channels and groups
                must be the behaviour cloning run's; FiLM, if any, is left at identity).
            lr: AdamW learning rate (constant after warm-up).
            weight_decay: AdamW weight decay.
            warmup_steps: Steps of linear learning-rate warm-up.
            room_weight: Weight of the room-type loss beside the per-cell object loss.
            object_pos_weight: Weight of the positive cells in the object loss (a target type
                is in a cell a few times in a thousand; 1 = plain binary cross-entropy).
            focal_gamma: Focal loss exponent of the object loss: each cell's term is scaled by
                (1 - p)^gamma, p the probability it gives the right answer, so the many easy
                cells stop drowning the few hard ones (0 = cross-entropy; 2 is the usual).
            object_min_pixels: Pixels of a type (at the training resolution) from which a cell
                counts as showing it; cells with fewer but some are left out of the object
                loss (1 = any pixel, every cell counted). Validation counts any pixel.
            dataset_spec: Set by the CLI from the datamodule (``LabelledFrameDataModule.spec``).
        """
        super().__init__()
        if focal_gamma < 0:
            raise ValueError(f"model.focal_gamma: {focal_gamma} must be >= 0 (0 = plain "
                             "cross-entropy)")
        if object_min_pixels < 1:
            raise ValueError(f"model.object_min_pixels: {object_min_pixels} must be >= 1 "
                             "(1 = a cell shows a type from one pixel of it)")
        if dataset_spec is None:
            raise ValueError("model.dataset_spec: missing; build EncoderPretrainModule with "
                             "dataset_spec=LabelledFrameDataModule(...).spec (the CLI links it)")
        self.save_hyperparameters()
        self.spec = dataset_spec
        self.cfg = replace(policy or PolicyConfig(), goal_film=False, aux_heads=False,
                           image_size=tuple(dataset_spec["image_size"]))
        self.grid = conv_grid(self.cfg)
        self.convs = conv_stack(self.cfg)
        c = self.cfg.channels[-1]
        self.object_head = nn.Conv2d(c, len(dataset_spec["objects"]), 1)
        self.room_head = nn.Linear(c, max(1, len(dataset_spec["rooms"])))
        self.register_buffer("pos_weight", torch.tensor(float(object_pos_weight)),
                             persistent=False)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames (N, 3, h, w) -> object logits (N, K, gh, gw), room logits (N, R)."""
        x = self.convs(normalise_frames(frames))  # (N, C, gh, gw)
        return self.object_head(x), self.room_head(x.mean((2, 3)))

    def _losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        objects, rooms = self(batch["frames"])
        target, mask = cell_targets(batch["objects"], self.hparams.object_min_pixels)
        out = {"object_loss": object_loss(objects.float(), target, self.pos_weight,
                                          self.hparams.focal_gamma, mask)}
        out["room_loss"] = (F.cross_entropy(rooms.float(), batch["rooms"], ignore_index=-1)
                            if (batch["rooms"] >= 0).any() else rooms.sum() * 0)
        out["loss"] = out["object_loss"] + self.hparams.room_weight * out["room_loss"]
        out["object_logits"], out["room_logits"] = objects, rooms
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self._losses(batch)
        n = batch["frames"].shape[0]
        for name in ("loss", "object_loss", "room_loss"):
            self.log(f"train/{name}", out[name], batch_size=n, prog_bar=name == "loss")
        return out["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(2, len(self.spec["objects"]), 3, dtype=torch.long,
                                       device=self.device)
        self._val_rooms = torch.zeros(2, dtype=torch.long, device=self.device)
        self._val_sizes = torch.zeros(len(self.spec["objects"]), len(SIZE_EDGES), 2,
                                      dtype=torch.long, device=self.device)
        self._val_scores = torch.zeros(len(self.spec["objects"]), 2, SCORE_BINS,
                                       dtype=torch.long, device=self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self._losses(batch)
        n = batch["frames"].shape[0]
        for name in ("loss", "object_loss", "room_loss"):
            self.log(f"val/{name}", out[name], batch_size=n, sync_dist=True,
                     prog_bar=name == "loss")
        objects, rooms = out["object_logits"], out["room_logits"]  # validation-only counts
        self._val_counts += detection_counts(objects > 0, batch["objects"] > 0)
        frame_scores = objects.flatten(2).amax(2)  # (N, K) each type's best cell
        self._val_sizes += size_recall_counts(frame_scores > 0, batch["pixels"])
        self._val_scores += score_histogram(frame_scores, batch["pixels"])
        self._val_rooms += torch.stack([(rooms.argmax(-1) == batch["rooms"]).sum(),
                                        (batch["rooms"] >= 0).sum()])

    def on_validation_epoch_end(self) -> None:
        """Micro precision and recall of the object cells and of "type k is in the frame",
        that recall per type and per size bucket, and the accuracy of the room type; the
        per-type table goes to ``val_detection.json`` in the run's log folder."""
        reduce = self.trainer.strategy.reduce
        counts = reduce(self._val_counts, reduce_op="sum").float()
        sizes = reduce(self._val_sizes, reduce_op="sum").float()
        scores = reduce(self._val_scores, reduce_op="sum")
        for level, (hit, predicted, actual) in zip(("object", "frame"), counts.sum(1)):
            self.log(f"val/{level}_precision", hit / predicted.clamp(min=1))
            self.log(f"val/{level}_recall", hit / actual.clamp(min=1), prog_bar=True)
        for name, (hit, _, actual) in zip(self.spec["objects"], counts[1]):
            if actual > 0:
                self.log(f"val/frame_recall_{name}", hit / actual)
        for bucket, (hit, actual) in zip(bucket_names(), sizes.sum(0)):
            if actual > 0:
                self.log(f"val/frame_recall_px{bucket}", hit / actual)
        aps = [ap for ap in map(average_precision, scores) if ap is not None]
        if aps:
            self.log("val/frame_map", sum(aps) / len(aps), prog_bar=True)
        room_hit, rooms = reduce(self._val_rooms, reduce_op="sum").float()
        self.log("val/room_acc", room_hit / rooms.clamp(min=1))
        if not self.trainer.sanity_checking and self.trainer.is_global_zero \
                and self.trainer.log_dir:
            table = detection_table(self.spec["objects"], counts.long(), sizes.long(), scores)
            write_atomic(Path(self.trainer.log_dir) / "val_detection.json", json_bytes(
                {"epoch": self.current_epoch, "step": self.global_step, "types": table}))

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
        warmup = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, warmup, None, 0))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[ENCODER_KEY] = {"config": asdict(self.cfg), "objects": self.spec["objects"],
                                   "rooms": self.spec["rooms"],
                                   "state_dict": {k: v.detach().cpu() for k, v in
                                                  self.convs.state_dict().items()}}


def detection_table(names: list[str], counts: torch.Tensor, sizes: torch.Tensor,
                    scores: torch.Tensor) -> dict:
    """Per type: cell and frame precision / recall with their counts, the frame recall per
    size bucket (None where the bucket is empty) and the frame-level average precision with
    its base rate (what ranking the frames at random scores); ``counts`` from
    ``detection_counts``, ``sizes`` from ``size_recall_counts``, ``scores`` from
    ``score_histogram``, all summed over the validation set."""
    def ratio(a, b):
        return round(a / b, 4) if b else None

    out = {}
    for k, name in enumerate(names):
        row = {}
        for level, (hit, predicted, actual) in zip(("cell", "frame"), counts[:, k].tolist()):
            row[level] = {"precision": ratio(hit, predicted), "recall": ratio(hit, actual),
                          "hits": hit, "predicted": predicted, "actual": actual}
        row["frame_recall_by_pixels"] = [  # a list: JSON's sorted keys would misorder them
            {"pixels": bucket, "recall": ratio(hit, actual), "frames": actual}
            for bucket, (hit, actual) in zip(bucket_names(), sizes[k].tolist())]
        ap = average_precision(scores[k])
        negatives, positives = scores[k].sum(-1).tolist()
        row[f"frame_ap_{AP_MIN_PIXELS}px"] = {
            "ap": None if ap is None else round(ap, 4), "positives": positives,
            "negatives": negatives, "base_rate": ratio(positives, positives + negatives)}
        out[name] = row
    return out


def confusion_report(checkpoint: str | Path, root: str | Path, split: str = "val",
                     top: int = 3) -> dict:
    """What a ``spoc-pretrain`` checkpoint takes for each target type in the frames of
    ``split`` that do not show it: per type, the false-positive frames (some cell scores the
    type above 0) and the ``top`` object types their best cell mostly shows ("<none>": walls,
    floor, doors), each with its share and its colour distance to the target in the
    embedded renderer's palette (L1 of the chromaticities, ``sim.scene.type_color``)."""
    from sim.assets import object_types
    from sim.scene import chromaticity, type_color

    module = EncoderPretrainModule.load_from_checkpoint(str(checkpoint), map_location="cpu")
    module.eval()
    root = Path(root)
    info = load_info(root)
    every = object_types()
    labeler = EpisodeLabeler(info, PoseRenderer.house_files(info, [split]), objects=every)
    targets = module.spec["objects"]
    columns = [every.index(t) for t in targets]  # pixel_counts column of each target
    size = module.cfg.image_size
    causes = torch.zeros(len(targets), len(every) + 1, dtype=torch.long)
    frames_seen = 0
    for url in shard_urls(root, split):
        for sample in iter_episodes(Path(url)):
            maps, _ = labeler(sample[KEY_META], split)
            rgb = torch.from_numpy(decode_frames(sample[KEY_RGB], 0, len(maps)))
            with torch.no_grad():
                logits = module(resize_frames(rgb.permute(0, 3, 1, 2), size))[0].float()
            maps = torch.from_numpy(maps)
            absent = pixel_counts(maps, len(every))[:, columns] == 0
            causes += false_positive_causes(logits, resize_labels(maps, size), absent,
                                            len(every))
            frames_seen += len(maps)

    names = ["<none>", *every]
    report = {"checkpoint": str(checkpoint), "split": split, "frames": frames_seen,
              "types": {}}
    for k, target in enumerate(targets):
        row, total = causes[k], int(causes[k].sum())
        order = [int(a) for a in row.argsort(descending=True)[:top] if row[a] > 0]
        report["types"][target] = {"false_positive_frames": total, "taken_for": [
            {"type": names[a], "share": round(int(row[a]) / total, 3),
             "colour_distance": None if a == 0 else round(float(np.abs(
                 chromaticity(type_color(names[a])) - chromaticity(type_color(target))).sum()), 3)}
            for a in order]}
    return report


def load_encoder(path: str | Path, cfg: PolicyConfig) -> dict[str, torch.Tensor]:
    """The conv-block weights of a ``spoc-pretrain`` checkpoint, checked against ``cfg``
    (ValueError naming the file, the field and the fix)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model.encoder_init: {path} not found; give a checkpoint written by "
                         "`spoc-pretrain fit`")
    try:
        record = torch.load(path, map_location="cpu", weights_only=False)[ENCODER_KEY]
    except (KeyError, TypeError, RuntimeError, EOFError) as exn:
        raise ValueError(f"model.encoder_init: {path} is not a `spoc-pretrain` checkpoint "
                         f"({type(exn).__name__}); give one written by `spoc-pretrain fit`"
                         ) from None
    def plain(value):  # tuples and lists alike (a config may come from YAML)
        return list(value) if isinstance(value, (list, tuple)) else value

    theirs = record["config"]
    for name in ("channels", "groups", "image_size"):
        mine, saved = plain(getattr(cfg, name)), plain(theirs[name])
        if mine != saved:
            raise ValueError(f"model.encoder_init: {path} was pretrained with policy.{name}="
                             f"{saved}, this run has {mine}; pretrain with this run's policy "
                             "config and data.image_size")
    return record["state_dict"]


def main(args: list[str] | None = None) -> None:
    """Entry point of ``spoc-pretrain``."""
    from training.cli import build_cli

    build_cli(args, model_class=EncoderPretrainModule, datamodule_class=LabelledFrameDataModule)
