"""What DAgger reads from and appends to a dataset: the train split's houses and rollout
settings (:func:`open_view`), new shard indices, and its episodes written as shards in the
datagen format (sidecars, info.json refresh, atomic writes), pose-only in a pose-only
dataset."""

from __future__ import annotations

import os
import shutil
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.files import json_bytes, sha256_file, temp_path, write_atomic
from datagen.config import VideoConfig
from datagen.constants import FRAMES_VIDEO, INFO_FILE, SHARD_GLOB
from datagen.dataset import (
    DatasetError,
    complete_sidecar,
    dataset_frames,
    read_info,
    refresh_info,
    remove_temps,
    shard_paths,
    split_house_file,
    store_houses,
)
from datagen.episodes import HouseFile
from datagen.shards import episode_meta, write_episode_sample
from datagen.tasks import TaskConfig
from datagen.video import encode_mp4
from eval.episode import RolloutSettings
from eval.inputs import scan_houses
from sim.camera import CameraConfig
from sim.lattice import AgentConfig
from training.dagger.config import DaggerError
from training.dagger.rollouts import LabelledEpisode

TRAIN_SPLIT = "train"
"""The split DAgger appends to: the one ``ShardDataModule`` trains on."""


@dataclass
class DatasetView:
    """What DAgger needs from a dataset directory."""

    root: Path
    info: dict
    houses: HouseFile
    settings: RolloutSettings
    video: VideoConfig
    frames: str = FRAMES_VIDEO
    """The dataset's info.json ``frames``: its new shards hold video, or (``none``) not."""


def open_view(root: str | Path, train_houses: str | None, goals: list[str],
              max_steps: int, envs: int) -> DatasetView:
    """The dataset's info.json, its training houses (sha256 checked) and rollout settings."""
    root = Path(root)
    try:
        info = read_info(root)
    except DatasetError as e:
        raise DaggerError(f"--dataset {e}") from None
    entry = info["splits"].get(TRAIN_SPLIT)
    if entry is None:
        raise DaggerError(f"dataset: {root} has no '{TRAIN_SPLIT}' split; generate it with "
                          "`spoc-datagen episodes --split train`")
    houses = scan_houses(train_houses or str(split_house_file(root, entry["houses"])),
                         "--train_houses" if train_houses else
                         f"--dataset {root}: its train split's house file")
    if houses.sha256 != entry["houses"]["sha256"]:
        raise DaggerError(f"train_houses: {houses.path} is not the file {root}'s train split "
                          "was generated from (sha256 differs); give that file")
    config = info["config"]
    settings = RolloutSettings(camera=CameraConfig(**info["camera"]),
                               agent=AgentConfig(**info["agent"]),
                               tasks=TaskConfig(**config["tasks"]), max_steps=max_steps,
                               envs_per_worker=envs, goals=tuple(goals))
    return DatasetView(root, info, houses, settings, VideoConfig(**config["video"]),
                       dataset_frames(info))


def next_shard_index(root: Path, split: str = TRAIN_SPLIT) -> int:
    """One past the highest shard index of ``split`` (registered or on disk)."""
    info = read_info(root)
    indices = [int(p.stem.split("-")[1]) for p in (root / split).glob(SHARD_GLOB)]
    indices += [int(p.stem.split("-")[1]) for p in (root / split).glob("shard-*.json")]
    return max([info["splits"][split]["num_shards"] - 1, *indices]) + 1


def split_labels(root: Path, split: str = TRAIN_SPLIT) -> int:
    """Expert labels (steps) in a split, from info.json's shard table."""
    shards = read_info(root)["splits"][split]["shards"]
    return int(sum(s["steps"] for s in shards.values()))


def write_labelled_shard(root: Path, k: int, episodes: list[LabelledEpisode],
                         video: VideoConfig, skipped: dict | None = None,
                         frames: str = FRAMES_VIDEO) -> dict:
    """Write ``episodes`` as shard ``k`` of the train split (skipped when already complete),
    then its sidecar and info.json, like :func:`datagen.shards.write_shard`; without
    ``rgb.mp4`` when ``frames`` is ``none`` (a pose-only dataset's). Its sidecar."""
    tar_path, sidecar_path = shard_paths(root, TRAIN_SPLIT, k)
    done = complete_sidecar(tar_path, sidecar_path)
    if done is not None:
        return done
    remove_temps(tar_path.parent, tar_path.name)
    tmp = temp_path(tar_path)
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for e in episodes:
                mp4 = None
                if frames == FRAMES_VIDEO:
                    h, w = e.frames.shape[1:3]
                    mp4 = encode_mp4(e.frames, h, w, video)
                write_episode_sample(tar, e.episode.episode_id, mp4,
                                     np.array(e.episode.path.actions, dtype=np.int8),
                                     episode_meta(e.episode, TRAIN_SPLIT, e.success),
                                     executed=np.array(e.executed, dtype=np.int8),
                                     labels=e.labels)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sidecar = {"episodes": len(episodes),
               "steps": sum(len(e.episode.path.actions) for e in episodes),
               "sha256": sha256_file(tmp), "skipped": dict(sorted((skipped or {}).items()))}
    os.replace(tmp, tar_path)
    remove_temps(sidecar_path.parent, sidecar_path.name)
    write_atomic(sidecar_path, json_bytes(sidecar))
    refresh_info(root)
    return sidecar


def write_round_shards(root: Path, indices: list[int], episodes: list[LabelledEpisode],
                       video: VideoConfig, per_shard: int, skipped: Counter,
                       frames: str = FRAMES_VIDEO) -> None:
    """Episodes in consecutive groups of ``per_shard`` to shards ``indices`` (in order), with
    video or pose-only as ``frames`` (the dataset's) says."""
    for n, k in enumerate(indices):
        write_labelled_shard(root, k, episodes[n * per_shard:(n + 1) * per_shard], video,
                             skipped if n == 0 else None, frames)


def link_dataset(src: Path, dst: Path) -> None:
    """A copy of every shard of a dataset at ``dst`` (hard links where possible), with the
    house files it holds (:func:`datagen.dataset.store_houses`)."""
    info = read_info(src)
    for split, entry in info["splits"].items():
        path = split_house_file(src, entry["houses"])
        dst.mkdir(parents=True, exist_ok=True)
        entry["houses"]["path"] = (store_houses(dst, HouseFile(str(path),
                                                               entry["houses"]["sha256"], ()))
                                   if path.is_file() else str(path.absolute()))
        (dst / split).mkdir(parents=True, exist_ok=True)
        for name in entry["shards"]:
            for path in shard_paths(src, split, int(Path(name).stem.split("-")[1])):
                target = dst / split / path.name
                if not target.exists():
                    try:
                        os.link(path, target)
                    except OSError:
                        shutil.copy2(path, target)
    write_atomic(dst / INFO_FILE, json_bytes(info))
    refresh_info(dst)
