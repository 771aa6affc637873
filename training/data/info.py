"""A dataset's ``info.json`` as the training loaders check it, and its shard lists."""

from __future__ import annotations

import io
import json
import tarfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from common.errors import InputError
from datagen.constants import (
    ACTION_VOCAB,
    DATASET_VERSION,
    INFO_FILE,
    KEY_ACTIONS,
    KEY_META,
    SHARD_GLOB,
)
from datagen.dataset import hint_upgrade, split_house_file


class DatasetMismatchError(InputError):
    """The dataset on disk is not one this reader understands."""


class DataOptionError(InputError):
    """A data option that cannot be used; the message names it and what it takes."""


# ---------------------------------------------------------------------------------------------
# info.json and shard lists


def load_info(root: str | Path, option: str = "--data.root") -> dict:
    """Read and check ``root/info.json``; raise ``DatasetMismatchError`` naming field and fix
    (``option``: the command's option that gave ``root``); one line on stderr when an older
    spoc-datagen wrote it (:func:`datagen.dataset.hint_upgrade`). Each split's ``houses.path`` is
    given as the absolute path of the file (:func:`datagen.dataset.split_house_file`: the
    dataset's copy, relative to ``root`` on disk), so what renders from it (a loader worker,
    a checkpoint's record) needs neither the root nor the working directory."""
    root = Path(root)
    path = root / INFO_FILE
    if not root.is_dir():
        raise DatasetMismatchError(f"{option} {root}: not a directory; point {option} at a "
                                   "directory written by `spoc-datagen episodes`")
    if not path.is_file():
        raise DatasetMismatchError(f"{path}: not found; point {option} at a directory written "
                                   "by `spoc-datagen episodes`")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exn:
        raise DatasetMismatchError(f"{path}: not readable as JSON ({exn}); point {option} at a "
                                   "directory written by `spoc-datagen episodes`, or rebuild "
                                   "its info.json by rerunning `spoc-datagen episodes`") from None
    check_info(info, path)
    hint_upgrade(root, info)
    for entry in info.get("splits", {}).values():
        houses = entry.get("houses")
        if isinstance(houses, dict) and isinstance(houses.get("path"), str):
            houses["path"] = str(split_house_file(root, houses).absolute())
    return info


def check_info(info: dict, path: str | Path = INFO_FILE) -> None:
    """Refuse a dataset whose version, action or goal vocabulary this code cannot read, or
    whose split table is not one (``splits``: split -> entry with a ``shards`` table)."""
    if not isinstance(info, dict):
        raise DatasetMismatchError(
            f"{path}: holds a JSON {type(info).__name__}, not a dataset's info.json object; "
            "point at a directory written by `spoc-datagen episodes`")
    version = info.get("version")
    if version != DATASET_VERSION:
        raise DatasetMismatchError(
            f"{path}: field 'version' is {version!r} but this reader needs {DATASET_VERSION!r}; "
            "regenerate the dataset with this version of `spoc-datagen episodes`")
    actions = info.get("actions")
    if list(actions or []) != ACTION_VOCAB:
        raise DatasetMismatchError(
            f"{path}: field 'actions' is {actions!r} but the policy's action vocabulary is "
            f"{ACTION_VOCAB!r}; regenerate the dataset with matching actions")
    goals = info.get("goals")
    if not goals or not all(isinstance(g, str) and "/" in g for g in goals):
        raise DatasetMismatchError(
            f"{path}: field 'goals' must be a non-empty list of 'task/target' strings; "
            "regenerate the dataset with `spoc-datagen episodes`")
    splits = info.get("splits", {})
    if not isinstance(splits, dict) or not all(map(_split_entry, splits.values())):
        raise DatasetMismatchError(
            f"{path}: field 'splits' must map each split to an entry with 'num_shards' and a "
            "'shards' table of sidecars with their 'episodes'; rebuild info.json by rerunning "
            "`spoc-datagen episodes` for the split")


def _split_entry(entry) -> bool:
    """Whether a split's info.json entry has the fields the loaders count shards with."""
    def count(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(entry, dict) or not count(entry.get("num_shards", 0)):
        return False
    shards = entry.get("shards", {})
    return isinstance(shards, dict) and all(
        isinstance(s, dict) and count(s.get("episodes")) for s in shards.values())


def shard_urls(root: str | Path, split: str) -> list[str]:
    """Sorted shard paths of one split (empty if the split has no shards)."""
    return [str(p) for p in sorted((Path(root) / split).glob(SHARD_GLOB))]


def split_urls(root: str | Path, splits: Iterable[str]) -> list[tuple[str, str]]:
    """(shard, split) pairs of the splits, what the streams read; a split without shards is a
    one-line DatasetMismatchError naming the command that writes it."""
    out = []
    for split in splits:
        urls = shard_urls(root, split)
        if not urls:
            raise DatasetMismatchError(f"{Path(root) / split}: no {SHARD_GLOB} shards; "
                                       f"generate the '{split}' split with "
                                       "`spoc-datagen episodes`")
        out += [(u, split) for u in urls]
    return out


def scan_split(urls: list[str], num_actions: int) -> dict:
    """House ids and action counts of a split, and the episodes (meta.json members) read from
    each shard (``episodes``: shard -> count), reading only the small members of each tar."""
    houses, counts = set(), np.zeros(num_actions, dtype=np.int64)
    episodes = dict.fromkeys(urls, 0)
    for url in urls:
        try:
            with tarfile.open(url, mode="r:") as tar:
                for member in tar:
                    if member.name.endswith("." + KEY_META):
                        houses.add(str(json.load(tar.extractfile(member))["house_id"]))
                        episodes[url] += 1
                    elif member.name.endswith("." + KEY_ACTIONS):
                        acts = np.load(io.BytesIO(tar.extractfile(member).read()))
                        counts += np.bincount(acts.astype(np.int64), minlength=num_actions)
        except (tarfile.TarError, OSError, ValueError, KeyError, EOFError) as exn:
            warnings.warn(f"{url}: scan stopped early ({exn}); skipping the rest of it",
                          stacklevel=2)
    return {"house_ids": sorted(houses), "action_counts": counts.tolist(),
            "episodes": episodes}
