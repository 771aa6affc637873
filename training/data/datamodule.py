"""``spoc-train``'s LightningDataModule: a dataset's ``train``/``val`` splits as batches of
chunks (:mod:`training.data.chunks`), the shards on disk and the episodes read checked against
info.json (:mod:`training.data.accounting`)."""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path

import lightning.pytorch as pl

from common.errors import InputError
from datagen.constants import FRAMES_NONE, INFO_FILE
from datagen.dataset import dataset_frames
from sim.appearance import AppearanceConfig
from training.data.accounting import (
    DEFAULT_MAX_MISSING_FRACTION,
    EpisodeLedger,
    check_fraction,
    check_shards,
)
from training.data.houses import (
    HouseLines,
    PoseRenderer,
    check_frames,
    check_room_anchors,
    frame_source,
    room_types,
)
from training.data.info import DataOptionError, load_info, scan_split, shard_urls, split_urls
from training.data.streams import EpisodeChunkStream, EpochDataLoader, epoch_about_to_run


class ShardDataModule(pl.LightningDataModule):
    """Episode shards of ``root`` (``train``/``val`` splits) as batches of chunks."""

    def __init__(
        self,
        root: str,
        seq_len: int = 32,
        image_size: tuple[int, int] = (112, 192),
        batch_size: int = 8,
        batches_per_epoch: int = 100,
        num_workers: int = 2,
        shuffle_buffer: int = 32,
        augment: bool = True,
        jitter: float = 0.2,
        shift: int = 4,
        frames: str | None = None,
        val_split: str = "val",
        train_splits: list[str] | None = None,
        target_box: bool = False,
        room_labels: bool = False,
        room_anchors: dict[str, str] | None = None,
        seed: int = 0,
        max_missing_fraction: float = DEFAULT_MAX_MISSING_FRACTION,
        appearance: AppearanceConfig | None = None,
    ):
        """
        Args:
            root: Dataset directory (holds info.json and train/, val/ shards).
            seq_len: Steps per training chunk (L); shorter episodes are padded.
            image_size: Training resolution (H, W); frames are resized keeping the aspect ratio.
            batch_size: Chunks per batch, per rank.
            batches_per_epoch: Training batches per epoch on every rank (streams are resampled).
            num_workers: DataLoader worker processes per rank.
            shuffle_buffer: Episodes held by each worker's shuffle buffer.
            augment: Colour jitter and random shift in training (never in validation).
            jitter: Brightness/contrast amplitude of the colour jitter.
            shift: Largest random shift in pixels at the training resolution.
            frames: ``decoded`` (the shards' H.264 video) or ``rendered`` (rendered again at
                the stored poses with the embedded renderer, from the splits' house files: the
                exact frames evaluation sees, without the video's compression). Default: the
                dataset's own, ``rendered`` for a pose-only dataset (info.json ``frames:
                none``, whose samples hold no video), else ``decoded``.
            val_split: Split read for validation.
            train_splits: Splits trained on, together (default ``["train"]``); e.g. add a
                split of noise-injected expert episodes (``spoc-datagen --action_noise``).
            target_box: Give the policy the simulator's box of the target in every frame
                (``policy.target_box``, SPOC's "GT detection"): the samples' stored
                ``target_box.npy``, or for samples without it (written before it) from
                instance ids rendered at the stored poses with the splits' house files.
            room_labels: Label every step with the type of the room the agent stands in
                (``room_type``, from the splits' house files), for ``model.aux_room_weight``.
            room_anchors: With ``target_box``, the box a RoomNav goal gets: for each room type,
                an object type that stands for it (e.g. ``{Bedroom: Bed, Bathroom: Toilet,
                Kitchen: Fridge, LivingRoom: Sofa}``); a RoomNav step's box is that type's
                largest instance in view, rendered from ids at the stored pose (shards store
                none for RoomNav). Room types left out, and every RoomNav goal by default,
                get no box. Deployed, the detector must know the anchor types
                (``spoc-detector fit --types``).
            seed: Seed of the training streams (with epoch, rank and worker).
            max_missing_fraction: Largest fraction of a split read that may be missing before
                training stops with an error: of its shards (listed in info.json but not on
                disk, or on disk but not listed; checked here) and of its episodes (those a
                shard should hold by info.json but does not yield, e.g. a tar damaged
                mid-archive; checked as the shards are read, logged as
                ``data/lost_episodes``). Below it each loss is a warning naming the shard.
            appearance: Visual randomisation of the training frames (rendered frames only;
                validation is never changed): each episode's frames are rendered under
                bounded changes of object-type and surface colours, light and pixel noise,
                drawn anew every epoch (``sim.appearance.AppearanceConfig``: each part a
                fraction 0-1 of its bounds, e.g. ``--data.appearance.object_colors 1``).
        """
        super().__init__()
        self.save_hyperparameters()
        if appearance is not None:  # a plain dict in the checkpoint, not a pickled class
            self.hparams.appearance = asdict(appearance)
        self.appearance = appearance
        if seq_len < 1 or batch_size < 1 or batches_per_epoch < 1:
            raise DataOptionError(f"data: seq_len={seq_len}, batch_size={batch_size} and "
                                  f"batches_per_epoch={batches_per_epoch} must all be >= 1")
        check_frames(frames)
        self.root, self.image_size = Path(root), tuple(int(v) for v in image_size)
        self.info = load_info(self.root)
        self.frames = frame_source(frames, self.info, self.root)
        if appearance is not None and appearance.enabled and self.frames != "rendered":
            raise DataOptionError("data.appearance: the appearance changes rendered frames; "
                                  "add --data.frames rendered (pose-only datasets render by "
                                  "default) or set its parts to 0")
        if room_anchors and not target_box:
            raise DataOptionError("data.room_anchors: the anchors are RoomNav goals' boxes; "
                                  "add --data.target_box true or drop --data.room_anchors")
        self.room_anchors = check_room_anchors(room_anchors, self.info["goals"],
                                               "data.room_anchors")
        self.train_splits = list(train_splits or ["train"])
        fraction = check_fraction(max_missing_fraction)
        episodes = check_shards(self.root, self.info, [*self.train_splits, val_split], fraction)
        self.ledger = EpisodeLedger(self.root, episodes, fraction)
        self.train_urls = [u for u, _ in split_urls(self.root, self.train_splits)]
        self.val_urls = shard_urls(self.root, val_split)
        pose_only = dataset_frames(self.info) == FRAMES_NONE
        optional = [option for option, on in (("--data.frames decoded",
                                               self.frames == "rendered" and not pose_only),
                                              ("--data.target_box false", target_box),
                                              ("--data.room_labels false", room_labels)) if on]
        if optional or pose_only:  # checked here: in a loader worker it would be a traceback
            validated = [val_split] if self.val_urls else []
            PoseRenderer.house_entries(self.info, [*self.train_splits, *validated],
                                       self.root / INFO_FILE,
                                       ", or train with " + " and ".join(optional)
                                       if optional else "")
        self._train_scan: dict | None = None
        self._house_hashes: list[str] | None = None

    @property
    def actions(self) -> list[str]:
        return list(self.info["actions"])

    @property
    def goals(self) -> list[str]:
        return list(self.info["goals"])

    @property
    def train_scan(self) -> dict:
        """House ids (from every meta.json) and action counts of the train split, scanned once.

        info.json's ``splits.train.houses`` names the house file (path, sha256, count), not
        the ids, so the ids come from the samples. The episodes the scan reads from each shard
        go to the ledger: a shard that falls short is reported (or refused) before training.
        """
        if self._train_scan is None:
            scan = scan_split(self.train_urls, len(self.actions))
            for url, read in scan["episodes"].items():
                self.ledger.record(url, read)
            self._train_scan = scan
        return self._train_scan

    @property
    def train_house_hashes(self) -> list[str]:
        """:func:`sim.house.house_content_hash` of every house of the training splits' house
        files (info.json names each, with its sha256), sorted, computed once: what
        evaluation's held-out check compares house content with. Empty, with a warning, when a
        file is not where info.json says or not the one the episodes were generated from."""
        if self._house_hashes is None:
            hashes: set[str] = set()
            try:
                entries = PoseRenderer.house_entries(self.info, self.train_splits,
                                                     self.root / INFO_FILE)
                for path, sha256 in {(e["path"], e["sha256"]) for e in entries.values()}:
                    hashes.update(HouseLines(path, sha256).content_hashes())
            except InputError as exn:
                warnings.warn(f"{exn}; the checkpoint records the training houses' ids but not "
                              "their content hashes, so evaluation's held-out check can only "
                              "compare ids", stacklevel=2)
                hashes = set()
            self._house_hashes = sorted(hashes)
        return self._house_hashes

    @property
    def spec(self) -> dict:
        """What the model needs to know about the data; stored in every checkpoint."""
        return {
            "actions": self.actions,
            "goals": self.goals,
            "image_size": list(self.image_size),
            "target_box": bool(self.hparams.target_box),
            "room_types": room_types(self.goals) if self.hparams.room_labels else [],
            "room_anchors": dict(self.room_anchors),
            "train_house_ids": self.train_scan["house_ids"],
            "train_house_hashes": self.train_house_hashes,
            "train_action_counts": self.train_scan["action_counts"],
            "dataset": {"root": str(self.root.resolve()), "info": self.info,
                        "train_splits": self.train_splits,
                        "train_houses": self.info.get("splits", {}).get("train", {})
                        .get("houses")},
        }

    def _stream(self, train: bool) -> EpisodeChunkStream:
        hp = self.hparams
        trainer = self.trainer
        return EpisodeChunkStream(
            split_urls(self.root, self.train_splits if train else [hp.val_split]), self.info,
            train=train, seq_len=hp.seq_len, image_size=self.image_size,
            batch_size=hp.batch_size, batches_per_epoch=hp.batches_per_epoch,
            shuffle_buffer=hp.shuffle_buffer, jitter=hp.jitter if hp.augment else 0.0,
            shift=hp.shift if hp.augment else 0, frames=self.frames, seed=hp.seed,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            defer_colour=train and self._on_accelerator, target_box=hp.target_box,
            room_labels=hp.room_labels, room_anchors=self.room_anchors,
            appearance=self.appearance if train else None, ledger=self.ledger)

    @property
    def _on_accelerator(self) -> bool:
        """Whether the batches go to a GPU (or another accelerator) rather than staying here."""
        return self.trainer is not None and self.trainer.strategy.root_device.type != "cpu"

    def _loader(self, stream: EpisodeChunkStream) -> EpochDataLoader:
        # pinned batches copy to the accelerator without blocking the training loop
        return EpochDataLoader(stream, lambda: epoch_about_to_run(self.trainer),
                               num_workers=self.hparams.num_workers,
                               persistent_workers=False, pin_memory=self._on_accelerator)

    def train_dataloader(self) -> EpochDataLoader:
        return self._loader(self._stream(train=True))

    def val_dataloader(self) -> EpochDataLoader | list:
        return self._loader(self._stream(train=False)) if self.val_urls else []
