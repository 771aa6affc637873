"""A dataset directory's ``info.json``: made when a split is first written, checked against
every later writer's config, and rebuilt from the per-shard sidecars under a file lock.

Layout (names from :mod:`datagen.constants`)::

    DATASET_DIR/info.json                    version, vocabularies, camera, config, per-shard
    DATASET_DIR/houses/{sha256[:16]}.jsonl.gz  each split's house file, named by content
    DATASET_DIR/{split}/shard-000000.tar     one sample per episode (:mod:`datagen.shards`)
    DATASET_DIR/{split}/shard-000000.json    the sidecar: episodes, steps, sha256, skipped

info.json names a split's house file relative to the dataset root, so a dataset directory
can be moved or copied and read from anywhere; every reader finds the file through
:func:`split_house_file`.

Concurrent writers (a SLURM array, Ray tasks, several splits) keep ``info.json`` complete:
each writes its shard's sidecar atomically, then rebuilds ``info.json`` from every sidecar
under the lock (temporary file + ``os.replace``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
from pathlib import Path

from common.errors import InputError
from common.files import json_bytes, sha256_file, temp_path, write_atomic
from datagen.config import DatagenConfig
from datagen.constants import (
    ACTION_VOCAB,
    DATASET_VERSION,
    FRAMES_VIDEO,
    HOUSES_DIR,
    INFO_FILE,
    SHARD_TEMPLATE,
    TASK_OBJECTNAV,
    TASK_ROOMNAV,
)
from datagen.episodes import HouseFile
from sim.house import HOUSE_SUFFIXES

SIDECAR_TEMPLATE = "{split}/shard-{index:06d}.json"
LOCK_FILE = ".info.lock"


class DatasetError(InputError):
    """A dataset directory that cannot be written or read, with what to do about it."""


def remove_temps(folder: Path, name: str) -> None:
    """Delete temporaries of ``name`` left by killed runs."""
    for stale in folder.glob(f".{name}.tmp-*"):
        stale.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(out_dir: Path):
    """An exclusive fcntl lock on the dataset directory (released if the process dies)."""
    with open(out_dir / LOCK_FILE, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def new_info(cfg: DatagenConfig) -> dict:
    """The split-independent part of info.json for a config."""
    tasks = cfg.tasks
    return {
        "version": DATASET_VERSION,
        "actions": list(ACTION_VOCAB),
        "camera": dataclasses.asdict(cfg.camera),
        "agent": dataclasses.asdict(cfg.agent),
        "fps": cfg.video.fps,
        "frames": cfg.frames,
        "tasks": {TASK_OBJECTNAV: {"targets": list(tasks.objectnav_targets),
                                   "min_pixels": tasks.min_pixels,
                                   "max_distance": tasks.max_distance},
                  TASK_ROOMNAV: {"targets": list(tasks.roomnav_targets)}},
        "goals": tasks.goals(),
        "config": cfg.dataset_config(),
        "splits": {},
    }


def dataset_frames(info: dict) -> str:
    """What a dataset's samples hold of the frames: ``video`` or ``none`` (pose-only); a
    dataset written before the choice existed is ``video``."""
    return info.get("frames", FRAMES_VIDEO)


def split_entry(cfg: DatagenConfig, houses: HouseFile, path: str | None = None) -> dict:
    """info.json's entry for a split, before any shard is written (``path``: the house file
    relative to the dataset root, :func:`store_houses`; ``source``: the file as given)."""
    return {"num_shards": cfg.num_shards,
            "houses": {"path": path or houses.path, "sha256": houses.sha256,
                       "count": len(houses), "source": houses.path},
            "sampling": cfg.split_config(), "shards": {}}


def houses_name(houses: HouseFile) -> str:
    """The path, relative to the dataset root, of the dataset's copy of a house file: named
    by its content, so splits drawn from one file share one copy."""
    suffix = max((s for s in HOUSE_SUFFIXES if Path(houses.path).name.endswith(s)), key=len,
                 default=".jsonl.gz")
    return f"{HOUSES_DIR}/{houses.sha256[:16]}{suffix}"


def store_houses(out_dir: Path, houses: HouseFile) -> str:
    """Copy a split's house file into the dataset (unless a copy is there), through a
    temporary name and a rename; its path relative to the dataset root. DatasetError when the
    file changed since it was scanned."""
    name = houses_name(houses)
    target = out_dir / name
    if target.is_file() and target.stat().st_size == Path(houses.path).stat().st_size:
        return name  # named by content: a complete copy of the same size is the same file
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_temps(target.parent, target.name)
    tmp = temp_path(target)
    try:
        shutil.copyfile(houses.path, tmp)
        if sha256_file(tmp) != houses.sha256:
            raise DatasetError(f"{houses.path}: changed while the split was being registered "
                               "(its sha256 is not the one scanned); run again")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return name


def split_house_file(root: str | os.PathLike, houses: dict) -> Path:
    """Where a split's house file is, from its info.json entry ``houses``: ``path`` relative
    to the dataset root (the copy under ``houses/``), or absolute. A dataset written before
    datasets held their house files recorded the path as given on the command line: a
    relative one that names no file under the root is taken from the working directory, as
    it was then. Readers check the file against ``houses.sha256``."""
    path = Path(houses["path"])
    if path.is_absolute():
        return path
    inside = Path(root) / path
    if inside.exists() or not path.exists():
        return inside
    return path


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} there, {b!r} here")
    return out


def check_compatible(info: dict, cfg: DatagenConfig, houses: HouseFile, out_dir: Path) -> None:
    """DatasetError unless ``info`` (an existing info.json) can take this config's shards."""
    if info.get("version") != DATASET_VERSION:
        raise DatasetError(f"{out_dir}: holds a dataset of version {info.get('version')!r}, "
                           f"this writer makes {DATASET_VERSION!r}; use another --out")
    mine = new_info(cfg)
    # Datasets written before the frames option held video.
    theirs = {**info, "frames": dataset_frames(info),
              "config": {"frames": FRAMES_VIDEO, **info.get("config", {})}}
    diff = _differences({k: v for k, v in theirs.items() if k != "splits"},
                        {k: v for k, v in mine.items() if k != "splits"})
    old = info.get("splits", {}).get(cfg.split)
    if old is not None:
        new = split_entry(cfg, houses)
        # Splits written before action noise existed were noiseless.
        before = {"num_shards": old.get("num_shards"),
                  "sampling": {"action_noise": 0.0, **old.get("sampling", {})}}
        for key in ("num_shards", "sampling"):
            diff += _differences({key: before[key]}, {key: new[key]}, f"splits.{cfg.split}.")
        if old.get("houses", {}).get("sha256") != houses.sha256:
            diff.append(f"splits.{cfg.split}.houses: {old.get('houses')} there, "
                        f"{houses.path} (sha256 {houses.sha256[:12]}...) here")
    if diff:
        raise DatasetError(f"{out_dir}: holds a dataset made with an incompatible config "
                           f"({'; '.join(diff[:3])}{'; ...' if len(diff) > 3 else ''}); "
                           "use another --out or the same config")


def _read_info(out_dir: Path) -> dict | None:
    path = out_dir / INFO_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: is not valid JSON ({e}); delete it so it is rebuilt "
                           "from the shard sidecars, or use another --out") from None


def open_dataset(cfg: DatagenConfig, houses: HouseFile, out_dir: str | os.PathLike) -> None:
    """Create ``out_dir`` and its info.json, or check that an existing one is compatible, and
    register the split, with its house file copied into the dataset (:func:`store_houses`;
    a split registered before datasets held their houses gets its copy now)."""
    out_dir = Path(out_dir)
    info = _read_info(out_dir) if out_dir.exists() else None
    if info is not None:
        check_compatible(info, cfg, houses, out_dir)  # before touching anything
    (out_dir / cfg.split).mkdir(parents=True, exist_ok=True)
    with _locked(out_dir):
        info = _read_info(out_dir)
        if info is None:
            info = new_info(cfg)
        check_compatible(info, cfg, houses, out_dir)
        path = store_houses(out_dir, houses)
        entry = info["splits"].setdefault(cfg.split, split_entry(cfg, houses, path))
        entry["houses"].setdefault("source", entry["houses"]["path"])
        entry["houses"]["path"] = path
        _commit_info(out_dir, info)


def _commit_info(out_dir: Path, info: dict) -> None:
    """Rebuild every split's shard table from its sidecars and write info.json (under lock)."""
    for split, entry in info["splits"].items():
        shards = {}
        for sidecar in sorted((out_dir / split).glob("shard-*.json")):
            tar = sidecar.with_suffix(".tar")
            if tar.exists():
                shards[tar.name] = json.loads(sidecar.read_text())
        entry["shards"] = shards
    remove_temps(out_dir, INFO_FILE)
    write_atomic(out_dir / INFO_FILE, json_bytes(info))


def refresh_info(out_dir: str | os.PathLike) -> None:
    """Rebuild info.json's shard tables from the sidecars on disk."""
    out_dir = Path(out_dir)
    with _locked(out_dir):
        info = _read_info(out_dir)
        if info is None:
            raise DatasetError(f"{out_dir}: no {INFO_FILE}; run spoc-datagen episodes first")
        _commit_info(out_dir, info)


def read_info(out_dir: str | os.PathLike) -> dict:
    """A dataset's info.json (DatasetError when missing, unreadable or of another version)."""
    out_dir = Path(out_dir)
    info = _read_info(out_dir)
    if info is None:
        raise DatasetError(f"{out_dir}: no {INFO_FILE}; is this a dataset directory?")
    if info.get("version") != DATASET_VERSION:
        raise DatasetError(f"{out_dir}: dataset version {info.get('version')!r} is not "
                           f"{DATASET_VERSION!r}; regenerate it with this version")
    return info


def shard_paths(out_dir: str | os.PathLike, split: str, k: int) -> tuple[Path, Path]:
    """(tar, sidecar) paths of shard ``k``."""
    out_dir = Path(out_dir)
    return (out_dir / SHARD_TEMPLATE.format(split=split, index=k),
            out_dir / SIDECAR_TEMPLATE.format(split=split, index=k))


def complete_sidecar(tar: Path, sidecar: Path) -> dict | None:
    """The sidecar of a complete shard (tar present, sha256 matches), else None."""
    if not (tar.exists() and sidecar.exists()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError:
        return None
    return meta if meta.get("sha256") == sha256_file(tar) else None
