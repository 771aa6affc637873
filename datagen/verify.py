"""Check a dataset end to end: shard files against info.json, every episode decoded, and
every episode's actions replayed in the embedded env from its start.

A replay must pass through the stored poses, take the stored number of steps, end with
``end`` at a state that satisfies the task's success test, and see (up to video
compression) the stored frames. Each problem is one line naming the file and the episode.
A pose-only dataset (info.json ``frames: none``) is replayed the same way without the frame
checks; its samples must hold no video.

DAgger episodes (``source`` starting with ``dagger``, written by ``spoc-dagger``) and
noise-injected expert episodes (``expert-noise``) store the oracle's LABELS at the states the
agent visited, not the actions it executed, so they are not replayed: every label must equal
``Oracle.expert_action`` at its stored pose, each pose must follow the previous one by its
executed action, the frames must match renders at the poses, and ``success`` may only be
claimed at a goal.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from common.cli import progress_bar
from common.files import sha256_file
from datagen.constants import (
    FRAMES_NONE,
    INFO_FILE,
    KEY_ACTIONS,
    KEY_EXECUTED,
    KEY_GOAL_DIST,
    KEY_META,
    KEY_RGB,
    KEY_TARGET_BOX,
    KEY_TARGET_PIXELS,
    SOURCE_EXPERT,
    SOURCE_NOISY,
    TASK_OBJECTNAV,
)
from datagen.dataset import DatasetError, dataset_frames, read_info, split_house_file
from datagen.episodes import HouseContext, HouseFile
from datagen.shards import META_KEYS, iter_episodes, shard_name
from datagen.tasks import TaskConfig, goal_name, objectnav_success, roomnav_success
from datagen.video import decode_frames
from sim.camera import CameraConfig
from sim.detect import BOX_FEATURES
from sim.env import EmbeddedEnv
from sim.house_check import HouseError
from sim.lattice import END, AgentConfig

FRAME_TOLERANCE = 12.0
"""Largest mean absolute difference (0..255) between a decoded and a re-rendered episode."""
POSE_TOLERANCE = 1e-4


def verify_dataset(out_dir: str | os.PathLike, replay: bool = True, progress: bool = False
                   ) -> list[str]:
    """Every problem found in a dataset directory, one line each (empty when it is sound);
    DatasetError when it holds no dataset to check (no readable info.json of this version
    with its camera, agent and splits). With ``progress``, a bar of the episodes checked on
    stderr (:func:`common.cli.progress_bar`)."""
    out_dir = Path(out_dir)
    info = read_info(out_dir)
    problems: list[str] = []
    env = EmbeddedEnv(*_info_settings(info, out_dir))
    with progress_bar(_listed_episodes(info), "verify", "ep", progress) as bar:
        for split, entry in sorted(info["splits"].items()):
            houses = _houses(out_dir, entry, problems) if replay else None
            for tar, listed in _shards(out_dir, split, entry, problems):
                problems += [f"{tar}: {p}" for p in verify_shard(tar, listed, info, split, env,
                                                                 houses, bar.update)]
    return problems


def _listed_episodes(info: dict) -> int | None:
    """The episodes info.json lists (None where it cannot tell: the checks will say why)."""
    try:
        return sum(int(shard["episodes"]) for entry in info["splits"].values()
                   for shard in entry["shards"].values())
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _info_settings(info: dict, out_dir: Path) -> tuple[CameraConfig, AgentConfig]:
    """The camera and agent of an info.json, or DatasetError naming the field that cannot be
    read."""
    where = out_dir / INFO_FILE
    try:
        settings = CameraConfig(**info["camera"]), AgentConfig(**info["agent"])
        for split, entry in info["splits"].items():
            for key in ("shards", "num_shards", "houses"):
                if key not in entry:
                    raise KeyError(f"splits.{split}.{key}")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DatasetError(f"{where}: field {e} is missing or malformed; regenerate the dataset "
                           "with `spoc-datagen episodes`") from None
    return settings


def _houses(out_dir: Path, entry: dict, problems: list[str]) -> HouseFile | None:
    path, sha = split_house_file(out_dir, entry["houses"]), entry["houses"]["sha256"]
    try:
        houses = HouseFile.scan(path)
    except HouseError as e:
        problems.append(f"{e} (needed to replay episodes; copy the dataset with its "
                        "houses/ folder)")
        return None
    if houses.sha256 != sha:
        problems.append(f"{path}: sha256 {houses.sha256[:12]}... is not the {sha[:12]}... "
                        "the episodes were generated from; cannot replay")
        return None
    return houses


def _shards(out_dir: Path, split: str, entry: dict, problems: list[str]
            ) -> Iterator[tuple[Path, dict]]:
    """(tar path, info entry) of every listed shard that exists and matches its sha256."""
    listed = entry["shards"]
    expected = {shard_name(k) for k in range(entry["num_shards"])}
    for name in sorted(expected - set(listed)):
        problems.append(f"{out_dir / split / name}: missing (not in {INFO_FILE}); "
                        "rerun spoc-datagen episodes to write it")
    on_disk = {p.name for p in (out_dir / split).glob("shard-*.tar")}
    for name in sorted(on_disk - set(listed)):
        problems.append(f"{out_dir / split / name}: not listed in {INFO_FILE}")
    for name, meta in sorted(listed.items()):
        tar = out_dir / split / name
        if not tar.exists():
            problems.append(f"{tar}: listed in {INFO_FILE} but missing")
        elif sha256_file(tar) != meta["sha256"]:
            problems.append(f"{tar}: sha256 does not match {INFO_FILE} (corrupt or replaced)")
        else:
            yield tar, meta


def verify_shard(tar: Path, listed: dict, info: dict, split: str, env: EmbeddedEnv,
                 houses: HouseFile | None, tick: Callable[[int], None] = lambda n: None
                 ) -> list[str]:
    """Problems of one shard whose sha256 already matched (``tick(1)`` after each episode)."""
    problems, episodes, steps = [], 0, 0
    records: dict = {}
    try:
        for sample in iter_episodes(tar):
            episodes += 1
            steps += len(sample.get(KEY_ACTIONS, ()))
            problems += [f"{sample['__key__']}: {p}" for p in
                         check_episode(sample, info, split, env, houses, records)]
            tick(1)
    except Exception as e:  # a broken tar or sample: report, do not crash the whole check
        problems.append(f"cannot be read ({type(e).__name__}: {e})")
    if episodes != listed["episodes"] or steps != listed["steps"]:
        problems.append(f"holds {episodes} episodes / {steps} steps, {INFO_FILE} says "
                        f"{listed['episodes']} / {listed['steps']}")
    return problems


def check_episode(sample: dict, info: dict, split: str, env: EmbeddedEnv,
                  houses: HouseFile | None, records: dict) -> list[str]:
    """Problems of one sample: keys, counts, then (with ``houses``) the replay. A pose-only
    dataset's samples hold no video (``frames`` None below: the frame checks are skipped)."""
    pose_only = dataset_frames(info) == FRAMES_NONE
    wanted = (KEY_ACTIONS, KEY_META) if pose_only else (KEY_RGB, KEY_ACTIONS, KEY_META)
    missing = [k for k in wanted if k not in sample]
    if missing:
        return [f"missing {', '.join(missing)}"]
    if pose_only and KEY_RGB in sample:
        return [f"holds {KEY_RGB}, but {INFO_FILE} says frames: {FRAMES_NONE} (pose-only)"]
    meta, actions = sample[KEY_META], sample[KEY_ACTIONS]
    if tuple(sorted(meta)) != tuple(sorted(META_KEYS)):
        return [f"meta.json keys {sorted(meta)} are not {sorted(META_KEYS)}"]
    frames = None
    if not pose_only:
        try:
            frames = decode_frames(sample[KEY_RGB])  # (T, H, W, 3)
        except ValueError as exn:  # a video without frames
            return [f"{KEY_RGB}: {exn}"]
    T = len(actions)
    out = []
    counted = [] if frames is None else [len(frames)]
    if len({*counted, T, meta["num_steps"], len(meta["poses"])}) != 1:
        seen = "" if frames is None else f"{len(frames)} frames, "
        out.append(f"{seen}{T} actions, num_steps {meta['num_steps']}, "
                   f"{len(meta['poses'])} poses: all must be equal")
    dagger = str(meta["source"]).startswith("dagger")
    if T == 0 or (not dagger and (actions[-1] != END or (actions[:-1] == END).any())):
        out.append("actions must end with END, and only there")
    if meta["split"] != split or meta["goal"] != goal_name(meta["task"], meta["target"]) \
            or meta["goal"] not in info["goals"]:
        out.append(f"split/goal {meta['split']}/{meta['goal']} inconsistent with the dataset")
    out += check_aux_labels(sample, meta, T)
    if out or houses is None:
        return out
    if dagger or meta["source"] == SOURCE_NOISY:
        executed = sample.get(KEY_EXECUTED)
        if executed is None or len(executed) != T:
            return [f"a {meta['source']} episode needs {KEY_EXECUTED} with {T} actions"]
        return check_labels(meta, actions, frames, info, env, houses, records, executed)
    return replay_episode(meta, actions, frames, info, env, houses, records)


def check_aux_labels(sample: dict, meta: dict, T: int) -> list[str]:
    """Problems of the per-step auxiliary labels, where a sample has them: one per step, 0 m
    to go at the last step of an episode that ended at the goal, no pixels for a task
    without a target object, and a target box exactly where the target has pixels."""
    dist, pixels = sample.get(KEY_GOAL_DIST), sample.get(KEY_TARGET_PIXELS)
    if dist is None and pixels is None:
        return []
    if dist is None or pixels is None or len(dist) != T or len(pixels) != T:
        return [f"{KEY_GOAL_DIST} and {KEY_TARGET_PIXELS} must both hold {T} values"]
    out = []
    if meta["success"] and (dist[-1] != 0 or (dist < 0).any()):
        out.append(f"{KEY_GOAL_DIST} must be >= 0 and 0 at the last step, not {dist[-1]}")
    if (meta["task"] == TASK_OBJECTNAV) == bool((pixels < 0).any()):
        out.append(f"{KEY_TARGET_PIXELS} must be >= 0 for ObjectNav, -1 otherwise")
    box = sample.get(KEY_TARGET_BOX)
    if box is not None:  # written since the box labels; earlier datasets lack it
        if box.shape != (T, BOX_FEATURES):
            out.append(f"{KEY_TARGET_BOX} must be ({T}, {BOX_FEATURES}), not {box.shape}")
        elif not np.array_equal(box[:, 0] > 0, pixels > 0):
            out.append(f"{KEY_TARGET_BOX} must have a box exactly where {KEY_TARGET_PIXELS} > 0")
    return out


def _record(houses: HouseFile, index: int, records: dict):
    if index not in records:
        records.clear()  # samples come grouped by house
        records[index] = houses.read([houses.lines.index(index)])[houses.lines.index(index)]
    return records[index]


def replay_episode(meta: dict, actions: np.ndarray, frames: np.ndarray | None, info: dict,
                   env: EmbeddedEnv, houses: HouseFile, records: dict) -> list[str]:
    """Problems found replaying the stored actions from the stored start (``frames`` (T, H,
    W, 3), the decoded video, compared with the replay's; None for a pose-only sample)."""
    if meta["house_index"] not in houses.lines:
        return [f"house_index {meta['house_index']} is not a house of {houses.path}"]
    rec = _record(houses, meta["house_index"], records)
    env.load(rec.house)
    s = meta["start"]
    env.reset_state((s["i"], s["j"], s["h"]))
    metres, error = 0.0, 0.0
    for t, a in enumerate(actions):
        p = env.pose
        want = meta["poses"][t]
        if max(abs(p.x - want[0]), abs(p.z - want[1]),
               abs((p.yaw - want[2] + 180) % 360 - 180)) > POSE_TOLERANCE:
            return [f"step {t}: replay at ({p.x:.3f}, {p.z:.3f}, {p.yaw:.0f}), stored pose "
                    f"{want}"]
        if frames is not None:
            error += float(np.abs(env.observation.rgb.astype(np.int16) - frames[t]).mean())
        if a != END:
            before = env.pose
            if not env.step(int(a)).success:
                return [f"step {t}: action {int(a)} is blocked in the replay"]
            metres += math.hypot(env.pose.x - before.x, env.pose.z - before.z)
    problems = []
    if not _success(meta, env, info):
        problems.append(f"the replay ends at {env.pose} where {meta['goal']} is not satisfied")
    if abs(metres - meta["shortest_length"]) > 1e-3 and meta["source"] == SOURCE_EXPERT:
        problems.append(f"expert path is {metres:.3f} m, shortest_length says "
                        f"{meta['shortest_length']:.3f} m")
    if error / len(actions) > FRAME_TOLERANCE:
        problems.append(f"frames differ from the replay by {error / len(actions):.1f} "
                        f"(mean abs, 0..255; at most {FRAME_TOLERANCE})")
    return problems


def _context(houses: HouseFile, index: int, info: dict, env: EmbeddedEnv, records: dict
             ) -> HouseContext:
    """The house's context (goal sets, oracles), cached beside its record."""
    rec = _record(houses, index, records)
    key = ("context", index)
    if key not in records:  # _record clears the cache when the house changes
        records[key] = HouseContext(rec, env, TaskConfig(**info["config"]["tasks"]))
    return records[key]


def check_labels(meta: dict, actions: np.ndarray, frames: np.ndarray | None, info: dict,
                 env: EmbeddedEnv, houses: HouseFile, records: dict, executed: np.ndarray
                 ) -> list[str]:
    """Problems of a DAgger episode: labels against the oracle at the stored poses, and each
    executed action leading from its pose to the next stored one (and the decoded ``frames``
    against renders there; None for a pose-only sample)."""
    if meta["house_index"] not in houses.lines:
        return [f"house_index {meta['house_index']} is not a house of {houses.path}"]
    ctx = _context(houses, meta["house_index"], info, env, records)
    lat, table = ctx.lattice, ctx.table
    if meta["target"] not in ctx.goal_sets(meta["task"]):
        return [f"{meta['goal']} has no goal state in house {meta['house_id']}"]
    oracle = ctx.oracle(meta["task"], meta["target"])
    states, error, previous = [], 0.0, None
    for t, (x, z, yaw) in enumerate(meta["poses"]):
        state = (*lat.cell_of(x, z), lat.heading_of(yaw))
        px, pz, pyaw = ctx.pose(state)
        if max(abs(px - x), abs(pz - z), abs((pyaw - yaw + 180) % 360 - 180)) > POSE_TOLERANCE:
            return [f"step {t}: stored pose {[x, z, yaw]} is not a lattice pose"]
        try:
            node = table.node(state)
        except ValueError as e:
            return [f"step {t}: {e}"]
        if states and node != states[-1] and node not in table.succ[states[-1]]:
            return [f"step {t}: pose {[x, z, yaw]} is not one action from the previous pose"]
        if t > 0 and lat.step(previous, int(executed[t - 1]))[0] != state:
            return [f"step {t}: executed action {int(executed[t - 1])} from {previous} does not "
                    f"reach the stored pose {state}"]
        previous = state
        label = oracle.expert_action(state)
        if int(actions[t]) != label:
            return [f"step {t}: label {int(actions[t])} is not the oracle's action {label} at "
                    f"{state}"]
        states.append(node)
        if frames is not None:
            error += float(np.abs(ctx.renderer.render(px, pz, pyaw).rgb.astype(np.int16)
                                  - frames[t]).mean())
    s = meta["start"]
    problems = []
    if table.node((s["i"], s["j"], s["h"])) != states[0]:
        problems.append(f"start {s} is not the first stored pose")
    if meta["success"] and not oracle.goal[states[-1]]:
        problems.append("success is claimed but the last stored state is not a goal")
    shortest = oracle.path(table.state(states[0])).metres
    if abs(shortest - meta["shortest_length"]) > 1e-3:
        problems.append(f"shortest path from the start is {shortest:.3f} m, shortest_length "
                        f"says {meta['shortest_length']:.3f} m")
    if error / len(actions) > FRAME_TOLERANCE:
        problems.append(f"frames differ from renders at the stored poses by "
                        f"{error / len(actions):.1f} (mean abs, 0..255; at most "
                        f"{FRAME_TOLERANCE})")
    return problems


def _success(meta: dict, env: EmbeddedEnv, info: dict) -> bool:
    if meta["task"] == TASK_OBJECTNAV:
        t = info["tasks"][TASK_OBJECTNAV]
        return objectnav_success(env.visible_objects(), meta["target"], t["min_pixels"],
                                 t["max_distance"])
    return roomnav_success(env.current_room(), meta["target"])
