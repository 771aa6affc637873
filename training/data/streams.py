"""Streams of batches from webdataset shards, what the training loaders share: resampled
training streams seeded by (seed, epoch, rank, worker), every shard once for validation, bad
shards and samples skipped and counted (:class:`SkipCounter`)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator

import lightning.pytorch as pl
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from training.data.chunks import collate_chunks, episode_chunks
from training.data.houses import (
    HouseLines,
    PoseRenderer,
    RoomLabels,
    check_frames,
    room_types,
)

MAX_CONSECUTIVE_FAILURES = 200
"""A stream that skips this many samples in a row without one good one gives up with an error."""


class SkipCounter:
    """A webdataset ``handler`` that warns, counts and continues; also used for decode errors."""

    def __init__(self, where: str):
        self.where = where
        self.total = 0
        self.pending = 0
        self.consecutive = 0

    def __call__(self, exn: BaseException) -> bool:
        self.total += 1
        self.pending += 1
        self.consecutive += 1
        warnings.warn(f"{self.where}: skipped a bad shard or sample ({type(exn).__name__}: "
                      f"{exn}); {self.total} skipped so far", stacklevel=2)
        if self.consecutive >= MAX_CONSECUTIVE_FAILURES:
            raise RuntimeError(f"{self.where}: {self.consecutive} bad samples in a row; "
                               "the shards look unreadable, check them with `spoc-datagen verify`")
        return True

    def take_pending(self) -> int:
        """Skips since the last call (reported in the next batch)."""
        n, self.pending = self.pending, 0
        return n


def _resampled_urls(urls: list[str], rng: np.random.Generator) -> Iterator[dict[str, str]]:
    """An endless stream of shard urls drawn with replacement."""
    while True:
        yield {"url": urls[int(rng.integers(len(urls)))]}


class ShardStream(IterableDataset):
    """Batches of items from webdataset shards: what the training streams share.

    ``train=True``: shards drawn with replacement from a seed of (seed, epoch, rank, worker)
    (:meth:`_train_items`), exactly ``batches_per_epoch`` batches per rank, split over the
    loader's workers. ``train=False``: every shard once (split over ranks when there are enough
    shards, else each rank reads all; then over workers), in order. A bad shard or sample is
    skipped and counted (the next batch's ``num_skipped``). ``urls``: (shard, split) pairs
    (:func:`split_urls`), the split naming the house file (in ``info``, the dataset's
    info.json) that frames are rendered from with ``frames="rendered"``
    (:class:`PoseRenderer`). A subclass says what a sample gives (:meth:`_sample_items`), how
    training draws (:meth:`_train_items`) and how items become a batch (:meth:`_collate`).
    """

    def __init__(self, urls: list[tuple[str, str]], info: dict, *, train: bool,
                 batch_size: int, batches_per_epoch: int = 0, frames: str = "decoded",
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__()
        if not urls:
            raise ValueError(f"{type(self).__name__} needs at least one shard")
        self.urls, self.split_of = [u for u, _ in urls], dict(urls)
        self.info, self.frames, self.train = info, check_frames(frames), train
        self.batch_size, self.batches_per_epoch = batch_size, batches_per_epoch
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.skips = SkipCounter("shards")

    def __len__(self) -> int:
        if not self.train:
            raise TypeError("the validation stream has no fixed length")
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        self.skips = SkipCounter(f"rank {self.rank} worker {worker}")
        if self.train:
            quota = self.batches_per_epoch // num_workers
            quota += int(worker < self.batches_per_epoch % num_workers)
            if quota <= 0:
                return iter(())
            seq = np.random.SeedSequence([self.seed, self.epoch, self.rank, worker])
            return self._batches(self._train_items(seq), quota)
        urls = self.urls
        if len(urls) >= self.world_size:
            urls = urls[self.rank::self.world_size]
        urls = urls[worker::num_workers]
        if not urls:
            return iter(())
        samples = self._samples(lambda: iter({"url": u} for u in urls))
        return self._batches(self._items(samples, None), None)

    def _house_files(self) -> dict[str, HouseLines]:
        """The house file of each split read (loaded in the worker that iterates)."""
        return PoseRenderer.house_files(self.info, set(self.split_of.values()))

    def _train_items(self, seq: np.random.SeedSequence) -> Iterator:
        """The training items of one worker, its randomness spawned from ``seq``."""
        raise NotImplementedError

    def _sample_items(self, sample: dict, rng: np.random.Generator | None) -> Iterable:
        """The items of one sample (random and augmented with ``rng``); raises when malformed."""
        raise NotImplementedError

    def _collate(self, items: list) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _samples(self, source, *stages) -> Iterator[dict]:
        stages = (source, wds.tarfile_to_samples(handler=self.skips), *stages)
        return wds.DataPipeline(*stages).iterator()

    def _items(self, samples, rng: np.random.Generator | None) -> Iterator:
        for sample in samples:
            try:
                items = self._sample_items(sample, rng)
            except Exception as exn:  # noqa: BLE001 - a bad sample is skipped, never a crash
                self.skips(ValueError(f"{sample.get('__key__')} in {sample.get('__url__')}: "
                                      f"{exn}"))
                continue
            self.skips.consecutive = 0
            yield from items

    def _batches(self, items: Iterator, limit: int | None) -> Iterator[dict]:
        buf, count = [], 0
        for item in items:
            buf.append(item)
            if len(buf) == self.batch_size:
                yield self._collate(buf)
                buf, count = [], count + 1
                if limit is not None and count >= limit:
                    return
        if buf and limit is None:
            yield self._collate(buf)


class EpisodeChunkStream(ShardStream):
    """Batches of episode chunks from webdataset shards (see the module docstring).

    ``train=True``: resampled, one random chunk per episode visit, augmented, exactly
    ``batches_per_epoch`` batches per rank (``defer_colour``: the colour jitter is left to the
    consumer, as ``colour``). ``train=False``: every shard once (split over ranks
    when there are enough shards, else each rank reads all), every step once, no augmentation.
    ``target_box``: each chunk also carries the target's box, the sample's stored one or else
    from ids rendered at its poses; ``room_anchors`` (room type -> object type) gives RoomNav
    goals the box of their room's anchor, rendered.
    """

    def __init__(self, urls: list[tuple[str, str]], info: dict, *, train: bool, seq_len: int,
                 image_size: tuple[int, int], batch_size: int, batches_per_epoch: int = 0,
                 shuffle_buffer: int = 32, jitter: float = 0.0, shift: int = 0,
                 frames: str = "decoded", seed: int = 0, rank: int = 0, world_size: int = 1,
                 defer_colour: bool = False, target_box: bool = False,
                 room_labels: bool = False, room_anchors: dict[str, str] | None = None):
        super().__init__(urls, info, train=train, batch_size=batch_size,
                         batches_per_epoch=batches_per_epoch, frames=frames, seed=seed,
                         rank=rank, world_size=world_size)
        self.goal_index = {g: i for i, g in enumerate(info["goals"])}
        self.seq_len, self.image_size = seq_len, tuple(image_size)
        self.shuffle_buffer, self.jitter, self.shift = shuffle_buffer, jitter, shift
        self.defer_colour, self.target_box = defer_colour, target_box
        self.room_labels, self.room_anchors = room_labels, dict(room_anchors or {})
        self.poses: PoseRenderer | None = None
        self.rooms: RoomLabels | None = None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rendering = self.frames == "rendered" or self.target_box
        if rendering or self.room_labels:
            houses = self._house_files()  # in the worker that iterates
            if rendering:
                self.poses = PoseRenderer(self.info, houses)
            if self.room_labels:
                self.rooms = RoomLabels(houses, room_types(self.info["goals"]))
        return super().__iter__()

    def _sample_items(self, sample: dict, rng: np.random.Generator | None) -> list[dict]:
        render = boxes = rooms = None
        split = self.split_of[sample["__url__"]]
        if self.frames == "rendered":
            def render(meta, start, stop):
                return self.poses.frames(meta, split, start, stop)
        if self.target_box:
            def boxes(meta, start, stop):
                return self.poses.boxes(meta, split, start, stop, self.room_anchors)
        if self.room_labels:
            def rooms(meta):
                return self.rooms(meta, split)
        return episode_chunks(sample, self.goal_index, self.seq_len, self.image_size, rng,
                              self.jitter, self.shift, self.defer_colour, render, boxes, rooms,
                              anchored=bool(self.room_anchors))

    def _collate(self, chunks: list[dict]) -> dict[str, torch.Tensor]:
        return collate_chunks(chunks, self.seq_len, self.skips.take_pending())

    def _train_items(self, seq: np.random.SeedSequence) -> Iterator[dict]:
        shard_rng, shuffle_seed, chunk_rng = (np.random.default_rng(s) for s in seq.spawn(3))
        shuffle = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer,
                              seed=int(shuffle_seed.integers(2**31)))
        samples = self._samples(lambda: _resampled_urls(self.urls, shard_rng), shuffle)
        return self._items(samples, chunk_rng)


def epoch_about_to_run(trainer: pl.Trainer | None) -> int:
    """The epoch about to run (what Lightning gives samplers' ``set_epoch``, also on resume).

    Read when the loader starts its workers, which for the first epoch (and a resumed one) is
    before ``on_train_epoch_start``; ``trainer.current_epoch`` lags there on resume.
    """
    return 0 if trainer is None else trainer.fit_loop.epoch_progress.current.processed


class EpochDataLoader(DataLoader):
    """A DataLoader that tells its stream the current epoch before starting workers."""

    def __init__(self, dataset: EpisodeChunkStream, epoch_fn, **kwargs):
        super().__init__(dataset, batch_size=None, **kwargs)
        self._epoch_fn = epoch_fn

    def __iter__(self):
        self.dataset.epoch = int(self._epoch_fn())
        return super().__iter__()
