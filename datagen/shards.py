"""Episode shards: the datagen config, one webdataset sample per episode, shard files and
the dataset's ``info.json``.

Layout (names from :mod:`datagen.constants`)::

    DATASET_DIR/info.json                    version, vocabularies, camera, config, per-shard
    DATASET_DIR/{split}/shard-000000.tar     one sample per episode: rgb.mp4, actions.npy,
    DATASET_DIR/{split}/shard-000000.json    meta.json; the sidecar: episodes, steps, sha256

Shard ``k`` is a pure function of (config, seed, k): the same bytes on every run. It is
written to a hidden temporary name and renamed when complete, then its sidecar is written
atomically, then ``info.json`` is rebuilt from every sidecar under a file lock (temp file +
``os.replace``), so concurrent writers (a SLURM array, Ray tasks, several splits) keep it
complete. A rerun skips shards whose tar matches its sidecar's sha256 and redoes the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import math
import os
import re
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from datagen.constants import (
    ACTION_VOCAB,
    DATASET_VERSION,
    INFO_FILE,
    KEY_ACTIONS,
    KEY_EXECUTED,
    KEY_GOAL_DIST,
    KEY_META,
    KEY_RGB,
    KEY_TARGET_BOX,
    KEY_TARGET_PIXELS,
    SHARD_TEMPLATE,
    TASK_OBJECTNAV,
    TASK_ROOMNAV,
)
from datagen.episodes import (
    Episode,
    HouseContext,
    HouseFile,
    episode_labels,
    iter_frames,
    sample_episode,
    stored_pose,
)
from datagen.files import json_bytes, sha256_file, write_atomic
from datagen.tasks import TaskConfig
from datagen.video import yuv420p_frame
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv
from sim.lattice import AgentConfig

SIDECAR_TEMPLATE = "{split}/shard-{index:06d}.json"
LOCK_FILE = ".info.lock"
ONE_SWSCALE_THREAD = {"threads": 1} if int(av.__version__.split(".")[0]) >= 17 else {}
"""Keyword for one-thread RGB conversion: PyAV >= 17 lets swscale start a thread per core;
older versions have no ``threads`` option and convert on the calling thread."""
META_KEYS = ("episode_id", "house_id", "house_index", "split", "task", "target", "goal", "start",
             "poses", "shortest_length", "shortest_steps", "num_steps", "seed", "success",
             "source")
"""Exactly the keys of every sample's meta.json."""


class DatasetError(ValueError):
    """A dataset directory that cannot be written or read, with what to do about it."""


# --------------------------------------------------------------------------- config


@dataclass
class VideoConfig:
    """How episode frames are encoded (H.264 in MP4, yuv420p, one thread: deterministic)."""

    fps: int = 10
    """Frame rate written in the MP4 (frames are steps; it only matters for playback)."""
    crf: int = 26
    """x264 constant rate factor: lower is better quality and bigger (18..30 is sane)."""
    preset: str = "ultrafast"
    """x264 preset."""


@dataclass
class DatagenConfig:
    """Everything that decides the bytes of a split's shards."""

    houses: str = "houses/train.jsonl.gz"
    """House dataset file (.jsonl.gz, .jsonl or one .json) for this split."""
    split: str = "train"
    """Split name: the shard folder under the dataset directory."""
    num_shards: int = 1
    """Number of shards in the split."""
    episodes_per_shard: int = 64
    """Episodes per shard (fewer only when a shard's houses run out of valid episodes)."""
    episodes_per_house: int = 16
    """Episodes drawn per house before moving on (amortises its goal-set cost)."""
    seed: int = 0
    """Base seed; shard k's episodes depend only on (config, seed, k)."""
    max_steps: int = 500
    """Episodes whose expert path is longer than this many actions are skipped."""
    action_noise: float = 0.0
    """Probability that a step executes another motion than the expert's (DART noise
    injection: labels stay the expert's, ``executed.npy`` holds what was taken, meta
    ``source`` is ``expert-noise``). 0: plain expert episodes."""
    camera: CameraConfig = field(default_factory=CameraConfig)
    """The agent's camera."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """The lattice agent."""
    tasks: TaskConfig = field(default_factory=TaskConfig)
    """Tasks, targets and success thresholds."""
    video: VideoConfig = field(default_factory=VideoConfig)
    """Frame encoding."""

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", self.split):
            raise ValueError(f"split: {self.split!r} must be a plain name like 'train' or 'val'")
        for name in ("num_shards", "episodes_per_shard", "episodes_per_house", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: {getattr(self, name)} must be >= 1")
        if self.camera.height % 2 or self.camera.width % 2:
            raise ValueError(f"camera.height/width: {self.camera.height}x{self.camera.width} "
                             "must be even for yuv420p video")
        if not 0 <= self.action_noise < 1:
            raise ValueError(f"action_noise: {self.action_noise} must be in [0, 1)")
        if not 0 <= self.video.crf <= 51:
            raise ValueError(f"video.crf: {self.video.crf} must be in 0..51")

    def dataset_config(self) -> dict:
        """The part every split of a dataset must share."""
        d = dataclasses.asdict(self)
        return {k: d[k] for k in ("camera", "agent", "tasks", "video", "max_steps")}

    def split_config(self) -> dict:
        """The part that decides one split's shards (besides the house file)."""
        return {k: getattr(self, k) for k in ("num_shards", "episodes_per_shard",
                                              "episodes_per_house", "seed", "action_noise")}


def shard_name(k: int) -> str:
    return Path(SHARD_TEMPLATE.format(split="x", index=k)).name


# --------------------------------------------------------------------------- video


def encode_mp4(frames: Iterable[np.ndarray], height: int, width: int, video: VideoConfig) -> bytes:
    """H.264 MP4 bytes of (H, W, 3) uint8 frames; the same frames give the same bytes.

    Frames are converted to yuv420p by :func:`datagen.video.yuv420p_frame` (BT.601 limited
    range, as swscale's default, which decoders assume)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=video.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(video.crf), "preset": video.preset, "threads": "1"}
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(yuv420p_frame(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def decode_frames(mp4: bytes, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames ``start:stop`` of an mp4 (to the end when ``stop`` is None) -> uint8 (n, H, W, 3).

    Frames before ``start`` are decoded (H.264 needs them) but not converted to RGB. One
    decoder thread and one swscale context for the whole video (``frame.to_ndarray`` sets up
    a new one per frame, multi-threaded in PyAV >= 17, which costs more than the conversion):
    a loader worker is one core. Raises ``ValueError`` if the video ends before ``stop`` (or
    has no frames).
    """
    frames, count = [], 0
    to_rgb = VideoReformatter()
    with av.open(io.BytesIO(mp4), mode="r", format="mp4") as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        for frame in container.decode(stream):
            if count >= start:
                frames.append(to_rgb.reformat(frame, format="rgb24", **ONE_SWSCALE_THREAD)
                              .to_ndarray())
            count += 1
            if count == stop:
                break
    if not frames or (stop is not None and count < stop):
        raise ValueError(f"video has {count} frames, frames {start}:{stop} were asked for")
    return np.stack(frames)


# --------------------------------------------------------------------------- samples


def episode_meta(ep: Episode, split: str, success: bool = True) -> dict:
    """The meta.json of an episode (exactly :data:`META_KEYS`)."""
    i, j, h = ep.start
    x, z, yaw = stored_pose(ep.poses[0])
    meta = {
        "episode_id": ep.episode_id, "house_id": ep.house_id, "house_index": ep.house_index,
        "split": split, "task": ep.task, "target": ep.target, "goal": ep.goal,
        "start": {"x": x, "z": z, "yaw": yaw, "i": i, "j": j, "h": h},
        "poses": [list(stored_pose(pose)) for pose in ep.poses],
        "shortest_length": round(ep.path.metres, 6), "shortest_steps": ep.shortest_steps,
        "num_steps": len(ep.path.actions), "seed": ep.seed, "success": bool(success),
        "source": ep.source,
    }
    assert tuple(meta) == META_KEYS
    return meta


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_episode_sample(tar: tarfile.TarFile, key: str, rgb_mp4: bytes, actions: np.ndarray,
                         meta: dict, executed: np.ndarray | None = None,
                         labels: tuple[np.ndarray, ...] | None = None) -> None:
    """Append one webdataset sample (``key.rgb.mp4``, ``key.actions.npy``, ``key.meta.json``,
    for noisy and DAgger episodes ``key.executed.npy``, the actions actually taken, and with
    ``labels`` = (goal_dist, target_pixels, target_box) the per-step labels of
    :func:`datagen.episodes.episode_labels`)."""
    _add_member(tar, f"{key}.{KEY_RGB}", rgb_mp4)
    _add_member(tar, f"{key}.{KEY_ACTIONS}", _npy_bytes(np.asarray(actions, dtype=np.int8)))
    if executed is not None:
        _add_member(tar, f"{key}.{KEY_EXECUTED}", _npy_bytes(np.asarray(executed, np.int8)))
    if labels is not None:
        dist, pixels, box = labels
        _add_member(tar, f"{key}.{KEY_GOAL_DIST}", _npy_bytes(np.asarray(dist, np.float32)))
        _add_member(tar, f"{key}.{KEY_TARGET_PIXELS}", _npy_bytes(np.asarray(pixels, np.int32)))
        _add_member(tar, f"{key}.{KEY_TARGET_BOX}", _npy_bytes(np.asarray(box, np.float32)))
    _add_member(tar, f"{key}.{KEY_META}", json.dumps(meta, sort_keys=True).encode())


def iter_episodes(shard_path: str | os.PathLike) -> Iterator[dict]:
    """Samples of a shard: ``{"__key__", "rgb.mp4": bytes, "actions.npy": (T,) int8,
    "meta.json": dict}`` and the other ``.npy`` members as arrays, in file order."""
    sample: dict = {}
    with tarfile.open(shard_path, "r") as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            if sample and key != sample["__key__"]:
                yield sample
                sample = {}
            sample["__key__"] = key
            data = tar.extractfile(member).read()
            if ext in (KEY_ACTIONS, KEY_EXECUTED, KEY_GOAL_DIST, KEY_TARGET_PIXELS,
                       KEY_TARGET_BOX):
                sample[ext] = np.load(io.BytesIO(data), allow_pickle=False)
            elif ext == KEY_META:
                sample[ext] = json.loads(data)
            else:
                sample[ext] = data
    if sample:
        yield sample


# --------------------------------------------------------------------------- shard contents


@dataclass
class ShardTimings:
    """Seconds per stage of one shard (what the benchmark reports)."""

    setup: float = 0.0
    goal_sets: float = 0.0
    oracle: float = 0.0
    render: float = 0.0
    encode: float = 0.0
    labels: float = 0.0
    write: float = 0.0
    goal_frames: int = 0


def episode_seed(seed: int, split: str, k: int, attempt: int) -> int:
    """The seed of attempt ``attempt`` in shard ``k`` (independent streams, stable across
    processes and platforms)."""
    split_code = int.from_bytes(hashlib.blake2b(split.encode(), digest_size=4).digest(), "little")
    return int(np.random.SeedSequence([seed, split_code, k, attempt]).generate_state(1)[0])


def shard_house_positions(cfg: DatagenConfig, num_houses: int, k: int) -> list[int]:
    """The house positions shard ``k`` visits, in order: ``ceil(M / E)`` consecutive houses
    from ``k * ceil(M / E)`` (wrapping), then up to one more lap for episodes that were skipped."""
    per_shard = math.ceil(cfg.episodes_per_shard / cfg.episodes_per_house)
    start = (k * per_shard) % num_houses
    return [(start + r) % num_houses for r in range(per_shard + num_houses)]


def shard_episodes(cfg: DatagenConfig, k: int, houses: HouseFile, env: EmbeddedEnv,
                   skipped: Counter, timings: ShardTimings) -> Iterator[tuple[HouseContext,
                                                                               Episode]]:
    """Shard ``k``'s episodes with their house contexts; skips are counted in ``skipped``."""
    order = shard_house_positions(cfg, len(houses), k)
    per_shard = math.ceil(cfg.episodes_per_shard / cfg.episodes_per_house)
    records = houses.read(sorted(set(order[:per_shard])))
    written = attempt = 0
    for pos in order:
        if written >= cfg.episodes_per_shard:
            return
        if pos not in records:
            records.update(houses.read([pos]))
        t0 = time.perf_counter()
        ctx = HouseContext(records[pos], env, cfg.tasks)
        timings.setup += time.perf_counter() - t0
        for _ in range(min(cfg.episodes_per_house, cfg.episodes_per_shard - written)):
            seed = episode_seed(cfg.seed, cfg.split, k, attempt)
            attempt += 1
            t0 = time.perf_counter()
            ep = sample_episode(ctx, f"{cfg.split}_{k:06d}_{written:06d}", seed, cfg.max_steps,
                                cfg.action_noise)
            timings.oracle += time.perf_counter() - t0
            if isinstance(ep, str):
                skipped[ep] += 1
                continue
            written += 1
            yield ctx, ep
        timings.goal_sets += ctx.stats.goal_seconds
        timings.oracle -= ctx.stats.goal_seconds
        timings.goal_frames += ctx.stats.goal_frames


# --------------------------------------------------------------------------- files


def _remove_temps(folder: Path, name: str) -> None:
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


# --------------------------------------------------------------------------- info.json


def new_info(cfg: DatagenConfig) -> dict:
    """The split-independent part of info.json for a config."""
    tasks = cfg.tasks
    return {
        "version": DATASET_VERSION,
        "actions": list(ACTION_VOCAB),
        "camera": dataclasses.asdict(cfg.camera),
        "agent": dataclasses.asdict(cfg.agent),
        "fps": cfg.video.fps,
        "tasks": {TASK_OBJECTNAV: {"targets": list(tasks.objectnav_targets),
                                   "min_pixels": tasks.min_pixels,
                                   "max_distance": tasks.max_distance},
                  TASK_ROOMNAV: {"targets": list(tasks.roomnav_targets)}},
        "goals": tasks.goals(),
        "config": cfg.dataset_config(),
        "splits": {},
    }


def split_entry(cfg: DatagenConfig, houses: HouseFile) -> dict:
    """info.json's entry for a split, before any shard is written."""
    return {"num_shards": cfg.num_shards,
            "houses": {"path": houses.path, "sha256": houses.sha256, "count": len(houses)},
            "sampling": cfg.split_config(), "shards": {}}


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
    diff = _differences({k: v for k, v in info.items() if k != "splits"},
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
    register the split."""
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
        info["splits"].setdefault(cfg.split, split_entry(cfg, houses))
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
    _remove_temps(out_dir, INFO_FILE)
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


# --------------------------------------------------------------------------- writing a shard


@dataclass
class ShardResult:
    """What one shard call did."""

    index: int
    sidecar: dict
    reused: bool
    """True when a complete shard was already on disk."""
    seconds: float = 0.0
    timings: ShardTimings = field(default_factory=ShardTimings)


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


def _env(cfg: DatagenConfig, _cache: dict = {}) -> EmbeddedEnv:  # noqa: B006 (per process)
    key = (cfg.camera, cfg.agent)
    if key not in _cache:
        _cache.clear()
        _cache[key] = EmbeddedEnv(cfg.camera, cfg.agent)
    return _cache[key]


def write_shard(cfg: DatagenConfig, k: int, out_dir: str | os.PathLike,
                houses: HouseFile | None = None,
                progress: Callable[[int], None] | None = None) -> ShardResult:
    """Write shard ``k`` of ``cfg.split`` (skipped when already complete) and update info.json.

    ``open_dataset`` must have registered the split. ``progress(n)`` is called per episode.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    tar_path, sidecar_path = shard_paths(out_dir, cfg.split, k)
    done = complete_sidecar(tar_path, sidecar_path)
    if done is not None:
        if progress:
            progress(done["episodes"])
        return ShardResult(k, done, True)
    houses = houses or HouseFile.scan(cfg.houses)
    _remove_temps(tar_path.parent, tar_path.name)
    tmp = tar_path.with_name(f".{tar_path.name}.tmp-{os.getpid()}")
    timings, skipped, episodes, steps = ShardTimings(), Counter(), 0, 0
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for ctx, ep in shard_episodes(cfg, k, houses, _env(cfg), skipped, timings):
                _write_episode(tar, ctx, ep, cfg, timings)
                episodes, steps = episodes + 1, steps + len(ep.path.actions)
                if progress:
                    progress(1)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sidecar = {"episodes": episodes, "steps": steps, "sha256": sha256_file(tmp),
               "skipped": dict(sorted(skipped.items()))}
    os.replace(tmp, tar_path)
    _remove_temps(sidecar_path.parent, sidecar_path.name)
    write_atomic(sidecar_path, json_bytes(sidecar))
    refresh_info(out_dir)
    return ShardResult(k, sidecar, False, time.perf_counter() - t_start, timings)


def _write_episode(tar: tarfile.TarFile, ctx: HouseContext, ep: Episode, cfg: DatagenConfig,
                   timings: ShardTimings) -> None:
    render = [0.0]  # seconds spent rendering, inside encode_mp4's loop

    def frames():  # rendered one at a time and encoded while still in cache
        it = iter_frames(ctx, ep.path.states)
        while True:
            t = time.perf_counter()
            rgb = next(it, None)
            render[0] += time.perf_counter() - t
            if rgb is None:
                return
            yield rgb

    t0 = time.perf_counter()
    mp4 = encode_mp4(frames(), cfg.camera.height, cfg.camera.width, cfg.video)
    t1 = time.perf_counter()
    labels = episode_labels(ctx, ep)
    t2 = time.perf_counter()
    write_episode_sample(tar, ep.episode_id, mp4, np.array(ep.path.actions, dtype=np.int8),
                         episode_meta(ep, cfg.split), ep.executed, labels)
    timings.render += render[0]
    timings.encode += t1 - t0 - render[0]
    timings.labels += t2 - t1
    timings.write += time.perf_counter() - t2
