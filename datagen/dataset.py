"""A dataset directory's ``info.json``: made when a split is first written, checked against
every later writer's config, and rebuilt from the per-shard sidecars under a file lock.

Layout (names from :mod:`datagen.constants`)::

    DATASET_DIR/info.json                    version, vocabularies, camera, config, per-shard
    DATASET_DIR/houses/{sha256[:16]}.jsonl.gz  each split's house file, named by content
    DATASET_DIR/{split}/shard-000000.tar     one sample per episode (:mod:`datagen.shards`)
    DATASET_DIR/{split}/shard-000000.json    the sidecar: episodes, steps, sha256, skipped

info.json names a split's house file relative to the dataset root, so a dataset directory
can be moved or copied and read from anywhere; every reader finds the file through
:func:`split_house_file`. info.json is also the dataset's card (:func:`card`): what each
sample holds, the totals, and the software that wrote it; :func:`upgrade_dataset` gives an
older dataset its house files and card.

Concurrent writers (a SLURM array, Ray tasks, several splits) keep ``info.json`` complete:
each writes its shard's sidecar atomically, then rebuilds ``info.json`` from every sidecar
under the lock (temporary file + ``os.replace``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from common.errors import InputError
from common.files import json_bytes, sha256_file, temp_path, write_atomic
from common.version import DISTRIBUTION, git_commit, package_version
from datagen.config import DatagenConfig
from datagen.constants import (
    ACTION_VOCAB,
    DATASET_VERSION,
    FRAMES_VIDEO,
    HOUSES_DIR,
    INFO_FILE,
    KEY_RGB,
    SAMPLE_FEATURES,
    SHARD_TEMPLATE,
    TASK_OBJECTNAV,
    TASK_ROOMNAV,
)
from datagen.episodes import HouseFile
from sim.house import HOUSE_SUFFIXES

SIDECAR_TEMPLATE = "{split}/shard-{index:06d}.json"
LOCK_FILE = ".info.lock"
CARD_KEYS = ("features", "totals", "generator")
"""The info.json fields that describe the dataset as it is on disk, rebuilt whenever
info.json is (:func:`card`); a later writer need not share them."""
TOTAL_KEYS = ("shards", "episodes", "steps", "bytes")


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


# --------------------------------------------------------------------------- the card


def card(out_dir: str | os.PathLike, info: dict) -> dict:
    """info.json's :data:`CARD_KEYS` for ``info`` as its shards are on disk: ``features``
    (what each member of a sample holds, :data:`datagen.constants.SAMPLE_FEATURES` for the
    dataset's frames and camera), ``totals`` (:func:`dataset_totals`) and ``generator``
    (:func:`generator`)."""
    return {"features": sample_features(info), "totals": dataset_totals(out_dir, info),
            "generator": dict(generator())}


def sample_features(info: dict) -> dict:
    """Member -> dtype, shape (``T``: the episode's steps; H and W: the camera's), encoding,
    presence and meaning; no ``rgb.mp4`` in a pose-only dataset."""
    dims = {"H": info["camera"]["height"], "W": info["camera"]["width"]}
    out = {}
    for key, feature in SAMPLE_FEATURES.items():
        if key == KEY_RGB and dataset_frames(info) != FRAMES_VIDEO:
            continue
        out[key] = dict(feature)
        if "shape" in feature:
            out[key]["shape"] = [dims.get(d, d) for d in feature["shape"]]
    return out


def dataset_totals(out_dir: str | os.PathLike, info: dict) -> dict:
    """Shards, episodes, steps and bytes (of the shards' tars on disk) of the shards info.json
    lists, overall and per split (``splits``)."""
    splits = {}
    for split, entry in sorted(info.get("splits", {}).items()):
        shards = entry.get("shards", {})
        tars = [Path(out_dir) / split / name for name in shards]
        splits[split] = {"shards": len(shards),
                         "episodes": sum(s.get("episodes", 0) for s in shards.values()),
                         "steps": sum(s.get("steps", 0) for s in shards.values()),
                         "bytes": sum(t.stat().st_size for t in tars if t.is_file())}
    return {**{k: sum(s[k] for s in splits.values()) for k in TOTAL_KEYS}, "splits": splits}


@functools.cache
def generator() -> dict:
    """The software writing info.json: ``package``, its installed ``version`` and the git
    ``commit`` of the checkout it runs from (None when either is unknown,
    :mod:`common.version`)."""
    return {"package": DISTRIBUTION, "version": package_version(), "commit": git_commit()}


# --------------------------------------------------------------------------- splits


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
    skip = ("splits", *CARD_KEYS)
    diff = _differences({k: v for k, v in theirs.items() if k not in skip},
                        {k: v for k, v in mine.items() if k not in skip})
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
    info.update(card(out_dir, info))
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


def read_info(out_dir: str | os.PathLike, hint: bool = True) -> dict:
    """A dataset's info.json (DatasetError when missing, unreadable or of another version);
    with ``hint``, one line on stderr when an older spoc-datagen wrote it
    (:func:`hint_upgrade`)."""
    info = _read_current(Path(out_dir))
    if hint:
        hint_upgrade(out_dir, info)
    return info


def _read_current(out_dir: Path) -> dict:
    info = _read_info(out_dir)
    if info is None:
        raise DatasetError(f"{out_dir}: no {INFO_FILE}; is this a dataset directory?")
    if not isinstance(info, dict) or info.get("version") != DATASET_VERSION:
        version = info.get("version") if isinstance(info, dict) else None
        raise DatasetError(f"{out_dir}: dataset version {version!r} is not "
                           f"{DATASET_VERSION!r}; regenerate it with this version")
    return info


# --------------------------------------------------------------------------- older datasets


def older_format(info: dict) -> list[str]:
    """What an info.json written by an older spoc-datagen lacks, in words (empty for a
    current one): splits whose house file is not the dataset's copy under ``houses/``, and
    the card's fields (:data:`CARD_KEYS`)."""
    outside = [split for split, entry in sorted(info.get("splits", {}).items())
               if isinstance(entry.get("houses"), dict)
               and not str(entry["houses"].get("path", "")).startswith(f"{HOUSES_DIR}/")]
    missing = [key for key in CARD_KEYS if key not in info]
    lacks = [f"house files of {', '.join(outside)} outside the dataset"] if outside else []
    return lacks + ([f"no {', '.join(missing)}"] if missing else [])


_HINTED: set[str] = set()
"""The datasets :func:`hint_upgrade` has spoken of in this process."""


def hint_upgrade(out_dir: str | os.PathLike, info: dict) -> None:
    """One line on stderr, once per dataset and process, when an older spoc-datagen wrote
    ``info`` (:func:`older_format`): what it lacks and the command that adds it."""
    lacks = older_format(info)
    key = str(Path(out_dir).resolve())
    if not lacks or key in _HINTED:
        return
    _HINTED.add(key)
    print(f"{Path(out_dir) / INFO_FILE}: written by an older spoc-datagen ({'; '.join(lacks)});"
          f" run `spoc-datagen upgrade {out_dir}` (where its house files are found) so that the "
          "dataset can be moved and describes itself", file=sys.stderr)


def upgrade_dataset(out_dir: str | os.PathLike, house_files: Sequence[str] = ()
                    ) -> list[str]:
    """Give a dataset an older spoc-datagen wrote its house files and card: each split's
    house file (where :func:`split_house_file` finds it, else among ``house_files``; matched
    by sha256) copied into ``houses/``, ``frames`` written out, info.json rebuilt under the
    lock (temporary file + rename). The changes, one line each; DatasetError naming the split
    whose house file is nowhere, before anything is written. Shards are never touched."""
    out_dir = Path(out_dir)
    found = _find_house_files(out_dir, _read_current(out_dir), house_files)
    with _locked(out_dir):
        info = _read_current(out_dir)
        changes = []
        for split, houses in found.items():
            entry = info["splits"][split]["houses"]
            path = store_houses(out_dir, houses)
            if entry["path"] != path:
                changes.append(f"splits.{split}.houses.path: {entry['path']} -> {path} "
                               "(copied in)")
                entry.setdefault("source", entry["path"])
                entry["path"] = path
        if "frames" not in info or "frames" not in info.get("config", {}):
            info["frames"] = dataset_frames(info)
            info.setdefault("config", {}).setdefault("frames", info["frames"])
            changes.append(f"frames: {info['frames']} (what a dataset without it holds)")
        missing = [key for key in CARD_KEYS if key not in info]
        if missing:
            changes.append(f"{', '.join(missing)}: written")
        _commit_info(out_dir, info)
    return changes


def _find_house_files(out_dir: Path, info: dict, house_files: Sequence[str]
                      ) -> dict[str, HouseFile]:
    """Split -> its house file (sha256 checked): where info.json names it (relative to the
    dataset, absolute, or, as older versions wrote it, relative to the working directory),
    else the one of ``house_files`` with its sha256; DatasetError for a split whose file is
    found nowhere."""
    given: dict[str, Path] = {}
    for name in house_files:
        if not Path(name).is_file():
            raise DatasetError(f"--houses {name}: no such file; give a house file a split of "
                               f"{out_dir} was generated from")
        given.setdefault(sha256_file(Path(name)), Path(name))
    out = {}
    for split, entry in sorted(info.get("splits", {}).items()):
        houses = entry.get("houses")
        if not isinstance(houses, dict) or "sha256" not in houses or "path" not in houses:
            continue  # nothing recorded to copy: the split is written again to record it
        path = split_house_file(out_dir, houses)
        if not (path.is_file() and sha256_file(path) == houses["sha256"]):
            path = given.get(houses["sha256"])
        if path is None:
            raise DatasetError(
                f"{out_dir / INFO_FILE}: splits.{split}.houses.path {houses['path']} is not "
                f"found from {Path.cwd()} (or not the file with sha256 "
                f"{houses['sha256'][:12]}...); run the upgrade from the directory the dataset "
                "was written in, or give the file with --houses FILE")
        out[split] = HouseFile(str(path), houses["sha256"], ())
    return out


# --------------------------------------------------------------------------- spoc-datagen info


def summary(out_dir: str | os.PathLike, info: dict) -> dict:
    """What ``spoc-datagen info`` shows of a dataset, from its info.json and the sizes of its
    shards on disk: kind, camera, splits, totals, features, the software that wrote it, and
    what an older info.json lacks (``upgrade``). DatasetError for a malformed info.json."""
    try:
        return _summary(out_dir, info)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise DatasetError(f"{Path(out_dir) / INFO_FILE}: field {e} is missing or malformed; "
                           "rebuild it by rerunning `spoc-datagen episodes`") from None


def _summary(out_dir: str | os.PathLike, info: dict) -> dict:
    totals = dataset_totals(out_dir, info)
    splits = {}
    for split, entry in sorted(info.get("splits", {}).items()):
        houses = entry.get("houses") or {}
        splits[split] = {**totals["splits"][split], "num_shards": entry.get("num_shards"),
                         "houses": houses.get("path"), "houses_count": houses.get("count")}
    return {"path": str(out_dir), "format": info["version"],
            "kind": "video" if dataset_frames(info) == FRAMES_VIDEO else "pose-only",
            "camera": info.get("camera"), "fps": info.get("fps"),
            "actions": info.get("actions"), "goals": len(info.get("goals", [])),
            "splits": splits, "totals": {k: totals[k] for k in TOTAL_KEYS},
            "features": _in_write_order(info.get("features") or sample_features(info)),
            "generator": info.get("generator"), "upgrade": older_format(info)}


def _in_write_order(features: dict) -> dict:
    """``features`` in the order the members are written (:data:`SAMPLE_FEATURES`)."""
    order = list(SAMPLE_FEATURES)
    return dict(sorted(features.items(),
                       key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def describe(s: dict) -> str:
    """:func:`summary` as text for people."""
    cam = s["camera"] or {}
    kind = ("video dataset: frames stored as H.264" if s["kind"] == "video" else
            "pose-only dataset: no frames stored, readers render them at the stored poses")
    lines = [f"{s['path']}: {kind} (format {s['format']})",
             f"camera: {cam.get('height')}x{cam.get('width')} pixels (H x W), vfov "
             f"{cam.get('vfov')} deg, pitch {cam.get('pitch')} deg down, eye height "
             f"{cam.get('eye_height')} m; {s['fps']} fps",
             f"actions: {', '.join(s['actions'] or [])}; goals: {s['goals']}"]
    w = max([8, *(len(split) + 1 for split in s["splits"])])  # the split column's width
    lines += [f"{'split':<{w}}{'shards':>9}{'episodes':>10}{'steps':>10}{'bytes':>11}  houses"]
    for split, e in s["splits"].items():
        lines.append(f"{split:<{w}}{e['shards']:>5}/{e['num_shards']:<3}{e['episodes']:>10}"
                     f"{e['steps']:>10}{_size(e['bytes']):>11}  {e['houses']} "
                     f"({e['houses_count']} houses)")
    t = s["totals"]
    lines.append(f"{'total':<{w}}{t['shards']:>5}    {t['episodes']:>10}{t['steps']:>10}"
                 f"{_size(t['bytes']):>11}")
    lines.append("features of a sample (T: the episode's steps):")
    for key, f in s["features"].items():
        keys = f.get("keys", [])
        shape = f"({', '.join(map(str, f['shape']))}{',' if len(f['shape']) == 1 else ''})" \
            if "shape" in f else f"{len(keys)} keys ({', '.join(keys[:3])}, ...)"
        lines.append(f"  {key:<18}{f.get('dtype', ''):<9}{shape}; {f.get('present', '')}")
    g = s["generator"]
    lines.append(f"written by {g['package']} {g['version'] or '(version unknown)'}, commit "
                 f"{g['commit'] or 'unknown'}" if g else
                 "written by: not recorded (an older spoc-datagen)")
    if s["upgrade"]:
        lines.append(f"older info.json ({'; '.join(s['upgrade'])}): run "
                     f"`spoc-datagen upgrade {s['path']}`")
    return "\n".join(lines)


def _size(n: int) -> str:
    """Bytes for people: 1.2 MB, 34.5 kB, 812 B."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


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
