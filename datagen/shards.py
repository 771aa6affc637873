"""Episode shards: one webdataset sample per episode, written into shard files.

Shard ``k`` is a pure function of (config, seed, k): the same bytes on every run. It is
written to a hidden temporary name and renamed when complete, then its sidecar is written
atomically, then ``info.json`` is rebuilt (:mod:`datagen.dataset`). A rerun skips shards
whose tar matches its sidecar's sha256 and redoes the rest.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.files import json_bytes, sha256_file, temp_path, write_atomic
from datagen.config import DatagenConfig
from datagen.constants import (
    FRAMES_VIDEO,
    KEY_ACTIONS,
    KEY_EXECUTED,
    KEY_GOAL_DIST,
    KEY_META,
    KEY_RGB,
    KEY_TARGET_BOX,
    KEY_TARGET_PIXELS,
    META_KEYS,
    SHARD_TEMPLATE,
)
from datagen.dataset import complete_sidecar, refresh_info, remove_temps, shard_paths
from datagen.episodes import (
    Episode,
    HouseContext,
    HouseFile,
    episode_labels,
    iter_frames,
    sample_episode,
    stored_pose,
)
from datagen.video import encode_mp4
from sim.env import EmbeddedEnv


def shard_name(k: int) -> str:
    return Path(SHARD_TEMPLATE.format(split="x", index=k)).name


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


def write_episode_sample(tar: tarfile.TarFile, key: str, rgb_mp4: bytes | None,
                         actions: np.ndarray, meta: dict, executed: np.ndarray | None = None,
                         labels: tuple[np.ndarray, ...] | None = None) -> None:
    """Append one webdataset sample (``key.rgb.mp4``, none for a pose-only dataset's
    ``rgb_mp4=None``, ``key.actions.npy``, ``key.meta.json``, for noisy and DAgger episodes
    ``key.executed.npy``, the actions actually taken, and with ``labels`` = (goal_dist,
    target_pixels, target_box) the per-step labels of
    :func:`datagen.episodes.episode_labels`)."""
    if rgb_mp4 is not None:
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
    """Samples of a shard: ``{"__key__", "rgb.mp4": bytes (not in a pose-only dataset),
    "actions.npy": (T,) int8, "meta.json": dict}`` and the other ``.npy`` members as arrays,
    in file order."""
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


@dataclass
class ShardResult:
    """What one shard call did."""

    index: int
    sidecar: dict
    reused: bool
    """True when a complete shard was already on disk."""
    seconds: float = 0.0
    timings: ShardTimings = field(default_factory=ShardTimings)


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
    remove_temps(tar_path.parent, tar_path.name)
    tmp = temp_path(tar_path)
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
    remove_temps(sidecar_path.parent, sidecar_path.name)
    write_atomic(sidecar_path, json_bytes(sidecar))
    refresh_info(out_dir)
    return ShardResult(k, sidecar, False, time.perf_counter() - t_start, timings)


def _write_episode(tar: tarfile.TarFile, ctx: HouseContext, ep: Episode, cfg: DatagenConfig,
                   timings: ShardTimings) -> None:
    """One episode's sample: its frames rendered and encoded (``frames: video``; with
    ``none`` nothing is rendered but what the labels need), its labels, its meta.json."""
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
    mp4 = None
    if cfg.frames == FRAMES_VIDEO:
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
