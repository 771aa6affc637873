"""Streams of batches from webdataset shards, what the training loaders share: resampled
training streams seeded by (seed, epoch, rank, worker), every shard once for validation, bad
shards and samples skipped and counted (:class:`SkipCounter`), and each finished reading of a
shard checked against the episodes info.json lists for it (:mod:`.accounting`): a batch's
``num_lost`` counts the episodes that the readings finished while it was assembled fell short
by, and the loader (:class:`EpochDataLoader`) hands each reading to the data module's
:class:`~training.data.accounting.EpisodeLedger`, which warns or stops."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from common.errors import InputError
from datagen.constants import INFO_FILE
from sim.appearance import APPEARANCE_STREAM, Appearance, AppearanceConfig, draw_appearance
from training.data.accounting import EpisodeLedger, UnreadableShardsError
from training.data.chunks import collate_chunks, episode_chunks
from training.data.houses import (
    HouseLines,
    PoseRenderer,
    RoomLabels,
    check_frames,
    room_types,
)
from training.data.info import DataOptionError

MAX_CONSECUTIVE_FAILURES = 200
"""A stream that skips this many samples (or reads this many shards yielding no sample) in a
row without one good sample gives up with an error."""


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
        self._give_up()
        return True

    def nothing_read(self) -> None:
        """A shard was read to its end without yielding a sample (its loss is counted by the
        ledger, not here); as many in a row as bad samples give up too."""
        self.consecutive += 1
        self._give_up()

    def _give_up(self) -> None:
        if self.consecutive >= MAX_CONSECUTIVE_FAILURES:
            raise UnreadableShardsError(
                f"{self.where}: {self.consecutive} bad samples or empty shards in a row; the "
                "shards look unreadable; check the dataset with `spoc-datagen verify`")

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
    skipped and counted (the next batch's ``num_skipped``); each reading of a shard to its
    end is reported in the next batch's ``shard_reads`` ((n, 2) long: the shard's index in
    ``urls`` and the samples it yielded, which :class:`EpochDataLoader` takes out for the
    ``ledger``) and its shortfall against the ``ledger``'s episode counts in ``num_lost``.
    ``urls``: (shard, split) pairs (:func:`split_urls`), the split naming the house file (in
    ``info``, the dataset's info.json) that frames are rendered from with
    ``frames="rendered"`` (:class:`PoseRenderer`). A subclass says what a sample gives
    (:meth:`_sample_items`), how training draws (:meth:`_train_items`) and how items become a
    batch (:meth:`_collate`).
    """

    def __init__(self, urls: list[tuple[str, str]], info: dict, *, train: bool,
                 batch_size: int, batches_per_epoch: int = 0, frames: str = "decoded",
                 seed: int = 0, rank: int = 0, world_size: int = 1,
                 ledger: EpisodeLedger | None = None):
        super().__init__()
        if not urls:
            raise ValueError(f"{type(self).__name__} needs at least one shard")
        self.urls, self.split_of = [u for u, _ in urls], dict(urls)
        self.index = {u: i for i, u in enumerate(self.urls)}
        self.info, self.frames, self.train = info, check_frames(frames), train
        self.batch_size, self.batches_per_epoch = batch_size, batches_per_epoch
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.skips = SkipCounter("shards")
        self.ledger = ledger
        self.reads: list[tuple[int, int]] = []  # finished readings not yet in a batch
        self.lost = 0  # their shortfall

    def __len__(self) -> int:
        if not self.train:
            raise TypeError("the validation stream has no fixed length")
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        self.skips = SkipCounter(f"rank {self.rank} worker {worker}")
        self.reads, self.lost = [], 0
        if self.train:
            quota = self.batches_per_epoch // num_workers
            quota += int(worker < self.batches_per_epoch % num_workers)
            if quota <= 0:
                return iter(())
            seq = np.random.SeedSequence([self.seed, self.epoch, self.rank, worker])
            return self._batches(self._train_items(seq), quota)
        urls = self.rank_urls()[worker::num_workers]
        if not urls:
            return iter(())
        samples = self._samples(lambda: iter({"url": u} for u in urls))
        return self._batches(self._items(samples, None), None)

    def rank_urls(self) -> list[str]:
        """The shards this rank's validation reads: its share when there are at least as many
        shards as ranks, else all of them."""
        if len(self.urls) >= self.world_size:
            return self.urls[self.rank::self.world_size]
        return list(self.urls)

    def _house_files(self) -> dict[str, HouseLines]:
        """The house file of each split read (loaded in the worker that iterates), found from
        the dataset root the shards are in (``ROOT/{split}/shard-*.tar``)."""
        where = Path(self.urls[0]).parents[1] / INFO_FILE
        return PoseRenderer.house_files(self.info, set(self.split_of.values()), where)

    def _train_items(self, seq: np.random.SeedSequence) -> Iterator:
        """The training items of one worker, its randomness spawned from ``seq``."""
        raise NotImplementedError

    def _sample_items(self, sample: dict, rng: np.random.Generator | None) -> Iterable:
        """The items of one sample (random and augmented with ``rng``); raises when malformed."""
        raise NotImplementedError

    def _collate(self, items: list) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _samples(self, source, *stages) -> Iterator[dict]:
        return wds.DataPipeline(source, self._read_shards, *stages).iterator()

    def _read_shards(self, shards: Iterable[dict]) -> Iterator[dict]:
        """The samples of each shard in turn (a pipeline stage); each reading that reaches the
        shard's end is noted with the samples it yielded. No extra I/O: the count is of the
        samples the tar reader gives anyway."""
        for shard in shards:
            read = 0
            for sample in wds.tarfile_samples(iter([shard]), handler=self.skips):
                read += 1
                yield sample
            self.reads.append((self.index[shard["url"]], read))
            if self.ledger is not None:
                self.lost += self.ledger.shortfall(shard["url"], read)
            if read == 0:
                self.skips.nothing_read()

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
        """Batches of ``batch_size`` items, at most ``limit`` (training). Without a limit
        (validation) a full batch waits for the next item, so the last batch comes after the
        last shard has been read to its end and carries its reading."""
        buf, count = [], 0
        if limit is None:
            for item in items:
                if len(buf) == self.batch_size:
                    yield self._batch(buf)
                    buf = []
                buf.append(item)
            if buf:
                yield self._batch(buf)
            return
        for item in items:
            buf.append(item)
            if len(buf) == self.batch_size:
                yield self._batch(buf)
                buf, count = [], count + 1
                if count >= limit:
                    return

    def _batch(self, items: list) -> dict:
        """The collated batch with the counts since the last one: ``num_skipped`` (bad shards
        and samples), ``num_lost`` (episodes the finished readings fell short by) and
        ``shard_reads`` ((n, 2): shard index, samples read)."""
        batch = self._collate(items)
        batch["num_skipped"] = torch.tensor(self.skips.take_pending(), dtype=torch.long)
        batch["num_lost"] = torch.tensor(self.lost, dtype=torch.long)
        batch["shard_reads"] = torch.tensor(self.reads, dtype=torch.long).view(-1, 2)
        self.reads, self.lost = [], 0
        return batch


class EpisodeChunkStream(ShardStream):
    """Batches of episode chunks from webdataset shards (see the module docstring).

    ``train=True``: resampled, one random chunk per episode visit, augmented, exactly
    ``batches_per_epoch`` batches per rank (``defer_colour``: the colour jitter is left to the
    consumer, as ``colour``). ``train=False``: every shard once (split over ranks
    when there are enough shards, else each rank reads all), every step once, no augmentation.
    ``target_box``: each chunk also carries the target's box, the sample's stored one or else
    from ids rendered at its poses; ``room_anchors`` (room type -> object type) gives RoomNav
    goals the box of their room's anchor, rendered. ``appearance`` (with rendered frames,
    training only): each episode's frames are rendered under an appearance drawn from (seed,
    epoch, episode id) (:func:`episode_appearance`): another look every epoch, the same for
    every chunk of one visit.
    """

    def __init__(self, urls: list[tuple[str, str]], info: dict, *, train: bool, seq_len: int,
                 image_size: tuple[int, int], batch_size: int, batches_per_epoch: int = 0,
                 shuffle_buffer: int = 32, jitter: float = 0.0, shift: int = 0,
                 frames: str = "decoded", seed: int = 0, rank: int = 0, world_size: int = 1,
                 defer_colour: bool = False, target_box: bool = False,
                 room_labels: bool = False, room_anchors: dict[str, str] | None = None,
                 appearance: AppearanceConfig | None = None,
                 ledger: EpisodeLedger | None = None):
        super().__init__(urls, info, train=train, batch_size=batch_size,
                         batches_per_epoch=batches_per_epoch, frames=frames, seed=seed,
                         rank=rank, world_size=world_size, ledger=ledger)
        self.goal_index = {g: i for i, g in enumerate(info["goals"])}
        self.seq_len, self.image_size = seq_len, tuple(image_size)
        self.shuffle_buffer, self.jitter, self.shift = shuffle_buffer, jitter, shift
        self.defer_colour, self.target_box = defer_colour, target_box
        self.room_labels, self.room_anchors = room_labels, dict(room_anchors or {})
        self.appearance = appearance if train and appearance and appearance.enabled else None
        if self.appearance is not None and self.frames != "rendered":
            raise DataOptionError("data.appearance: the appearance changes rendered frames; "
                                  "add --data.frames rendered (pose-only datasets render by "
                                  "default) or set its parts to 0")
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
                look = (None if self.appearance is None else
                        episode_appearance(self.appearance, self.seed, self.epoch,
                                           meta["episode_id"]))
                return self.poses.frames(meta, split, start, stop, look)
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
        return collate_chunks(chunks, self.seq_len)

    def _train_items(self, seq: np.random.SeedSequence) -> Iterator[dict]:
        shard_rng, shuffle_seed, chunk_rng = (np.random.default_rng(s) for s in seq.spawn(3))
        shuffle = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer,
                              seed=int(shuffle_seed.integers(2**31)))
        samples = self._samples(lambda: _resampled_urls(self.urls, shard_rng), shuffle)
        return self._items(samples, chunk_rng)


def episode_appearance(config: AppearanceConfig, seed: int, epoch: int, episode_id: str
                       ) -> Appearance:
    """The appearance an episode is rendered under in one epoch: a pure function of (seed,
    epoch, episode id), so it does not depend on the worker, the rank or the chunk."""
    key = int.from_bytes(hashlib.blake2b(episode_id.encode(), digest_size=8).digest(), "little")
    return draw_appearance(config, np.random.default_rng([seed, epoch, key, APPEARANCE_STREAM]))


def epoch_about_to_run(trainer: pl.Trainer | None) -> int:
    """The epoch about to run (what Lightning gives samplers' ``set_epoch``, also on resume).

    Read when the loader starts its workers, which for the first epoch (and a resumed one) is
    before ``on_train_epoch_start``; ``trainer.current_epoch`` lags there on resume.
    """
    return 0 if trainer is None else trainer.fit_loop.epoch_progress.current.processed


class EpochDataLoader(DataLoader):
    """A DataLoader that tells its stream the current epoch before starting workers, and hands
    the shard readings its batches report (``shard_reads``, taken out of the batch) to the
    stream's ledger, in this process: past the limit the ledger's one-line error stops the
    run. A validation pass read to its end also accounts for the shards of this rank that no
    batch reported (a worker whose shards gave nothing yields no batch): they yielded
    nothing."""

    def __init__(self, dataset: ShardStream, epoch_fn, **kwargs):
        super().__init__(dataset, batch_size=None, **kwargs)
        self._epoch_fn = epoch_fn

    def __iter__(self):
        self.dataset.epoch = int(self._epoch_fn())
        return self._accounted(super().__iter__())

    def _accounted(self, batches: Iterator[dict]) -> Iterator[dict]:
        ledger, urls, reported = self.dataset.ledger, self.dataset.urls, set()
        try:
            for batch in batches:
                for index, read in batch.pop("shard_reads", torch.empty(0, 2)).tolist():
                    reported.add(urls[index])
                    if ledger is not None:
                        ledger.record(urls[index], read)
                yield batch
        except InputError as exn:
            shutdown = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:  # now, not when the error is collected (in a fork, maybe)
                shutdown()
            again = worker_error(exn)
            if again is exn:
                raise
            raise again from exn
        if ledger is not None and not self.dataset.train:
            for url in self.dataset.rank_urls():
                if url not in reported:
                    ledger.record(url, 0)


def worker_error(exn: InputError) -> InputError:
    """An input error as the loader worker raised it: torch raises a worker's error again in
    this process with the worker's traceback as its message; keep the last line, the error's
    own."""
    text = str(exn)
    if "Original Traceback" not in text:
        return exn
    line = text.rstrip().splitlines()[-1]
    _, sep, message = line.partition(f"{type(exn).__name__}: ")
    message = message if sep else line
    try:
        return type(exn)(message)
    except TypeError:  # an error class built from other arguments
        return InputError(message)
