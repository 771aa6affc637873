"""One episode sample -> training chunks -> a padded batch.

A batch is a dict of
``frames`` (B, L, 3, H, W) uint8 at the training resolution, ``actions`` (B, L) long,
``prev_actions`` (B, L) long (the executed action before each step; ``len(actions)`` = start
token at an episode's first step, ``len(actions) + 1`` after a blocked ``move_ahead``),
``goals`` (B,) long (index into info.json ``goals``), ``mask`` (B, L) bool (False = padding),
``steps`` (N,) long, the flat indices (into B*L, row-major) of the N unpadded steps: the policy
encodes only those frames, without a boolean index (which would wait for the device),
the per-step auxiliary labels ``goal_dist`` (B, L) float32 (metres to the goal set) and
``target_pixels`` (B, L) long (most pixels of one target instance in the frame), -1 where a
step has none (padding, RoomNav pixels, episodes written without them: datasets from before
the labels, DAgger rounds written before they got them), ``num_skipped`` () long (bad
shards or samples skipped while this batch was assembled) and, from the streams,
``num_lost`` () long (episodes the shards read to their end meanwhile fell short of
info.json's count by) with ``shard_reads`` (n, 2) long (those readings, which the loader takes
out: :mod:`training.data.streams`); with ``target_box``, ``target_box``
(B, L, 6) float32, the simulator's box of the target in each frame (:mod:`sim.detect`, zeros
for padding and RoomNav; with ``room_anchors``, a RoomNav goal's anchor's), the shard's
``target_box.npy`` where the sample has it, else from the instance ids rendered at the stored
poses (:class:`PoseRenderer`; the same box, at 1.64x the loader's CPU per frame); with
``room_labels``, ``room_type`` (B, L) long, the type of the room the agent stands in at each
step (index into the dataset's RoomNav targets, from the house's floor polygons at the stored
poses; -1 for padding and outside every room);
training batches for an accelerator also carry ``colour`` (B, 2, 3) float32, each chunk's
colour jitter, which the model applies on the device (``PolicyModule.on_after_batch_transfer``):
the jitter's float arithmetic is ~40% of a loader worker's time at 112x192
(``docs/performance.md``), and a GPU does it in microseconds.

The frames are the shards' decoded H.264 video, or, with ``frames="rendered"``, the embedded
renderer's at each stored pose (:class:`PoseRenderer`): what evaluation sees.

Training streams are resampled (shards drawn with replacement) from a seed that is a pure
function of (seed, epoch, rank, worker), and every rank yields exactly ``batches_per_epoch``
batches: DDP never waits on a rank that ran dry, and a resumed run sees the same batches as an
uninterrupted one. Validation reads every step of every episode of the ``val`` split once.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from agents.frames import resize_frames
from agents.policy import previous_action_tokens
from datagen.constants import (
    ACTION_VOCAB,
    KEY_ACTIONS,
    KEY_EXECUTED,
    KEY_GOAL_DIST,
    KEY_META,
    KEY_RGB,
    KEY_TARGET_BOX,
    KEY_TARGET_PIXELS,
    TASK_OBJECTNAV,
)
from datagen.video import decode_frames
from sim.detect import BOX_FEATURES
from sim.lattice import MOVE_AHEAD
from training.data.augment import augment, shift_box


def chunk_starts(num_steps: int, length: int, rng: np.random.Generator | None) -> list[int]:
    """Chunk start steps: one random window (training) or consecutive windows covering all."""
    if rng is None:
        return list(range(0, num_steps, length))
    return [int(rng.integers(0, max(1, num_steps - length + 1)))]


START_TOKEN, BLOCKED_TOKEN = previous_action_tokens(len(ACTION_VOCAB))


def previous_tokens(taken: np.ndarray, poses: list) -> np.ndarray:
    """(T,) int64 previous-action inputs: the start token, then each executed action, or
    :data:`BLOCKED_TOKEN` where a ``move_ahead`` left the position unchanged."""
    if len(poses) != len(taken):
        raise ValueError(f"{len(poses)} poses for {len(taken)} actions")
    xz = np.asarray(poses, dtype=np.float64).reshape(len(taken), 3)[:, :2]
    prev = np.empty(len(taken), dtype=np.int64)
    prev[0] = START_TOKEN
    prev[1:] = taken[:-1]
    stayed = (np.abs(xz[1:] - xz[:-1]) < 1e-6).all(axis=1)  # (T-1,)
    prev[1:][(taken[:-1] == MOVE_AHEAD) & stayed] = BLOCKED_TOKEN
    return prev


def episode_aux_labels(sample: dict, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(T,) float32 ``goal_dist`` and (T,) int64 ``target_pixels`` of a sample, -1 where the
    sample has none (episodes written without them)."""
    out = []
    for key, dtype in ((KEY_GOAL_DIST, np.float32), (KEY_TARGET_PIXELS, np.int64)):
        if key not in sample:
            out.append(np.full(num_steps, -1, dtype=dtype))
            continue
        values = np.load(io.BytesIO(sample[key])).astype(dtype)
        if values.shape != (num_steps,):
            raise ValueError(f"bad {key} array {values.shape} for {num_steps} actions")
        out.append(values)
    return out[0], out[1]


def episode_target_box(sample: dict, num_steps: int) -> np.ndarray | None:
    """(T, 6) float32 ``target_box`` of a sample, None where the sample has none (written
    before it)."""
    if KEY_TARGET_BOX not in sample:
        return None
    box = np.load(io.BytesIO(sample[KEY_TARGET_BOX])).astype(np.float32)
    if box.shape != (num_steps, BOX_FEATURES):
        raise ValueError(f"bad {KEY_TARGET_BOX} array {box.shape} for {num_steps} actions")
    return box


def episode_chunks(sample: dict, goal_index: dict[str, int], seq_len: int,
                   image_size: tuple[int, int], rng: np.random.Generator | None,
                   jitter: float = 0.0, shift: int = 0, defer_colour: bool = False,
                   render: Callable[[dict, int, int], np.ndarray] | None = None,
                   boxes: Callable[[dict, int, int], np.ndarray] | None = None,
                   rooms: Callable[[dict], np.ndarray] | None = None,
                   anchored: bool = False) -> list[dict[str, Any]]:
    """Turn one webdataset sample into training chunks (one random one when ``rng`` is given).

    With ``defer_colour`` each augmented chunk carries its colour jitter as ``colour`` (2, 3)
    instead of having it applied (see :func:`augment`). ``render(meta, start, stop)``, when
    given, makes the frames instead of the shard's video (:class:`PoseRenderer`);
    ``boxes(meta, start, stop)``, when given, the chunks' ``target_box`` (n, 6) for samples
    that do not store theirs (and, when ``anchored``, for every RoomNav sample: shards store
    no box for a RoomNav goal, its room's anchor type is rendered instead, see
    ``ShardDataModule.room_anchors``); ``rooms(meta)``, when given, the episode's
    ``room_type`` (T,) (:class:`RoomLabels`).

    Raises on anything malformed; the caller skips and counts the sample.
    """
    actions = np.load(io.BytesIO(sample[KEY_ACTIONS])).astype(np.int64)  # (T,)
    meta = json.loads(sample[KEY_META])
    goal = goal_index[meta["goal"]]
    if actions.ndim != 1 or len(actions) == 0 or actions.min() < 0 \
            or actions.max() >= len(ACTION_VOCAB):
        raise ValueError(f"bad actions array {actions.shape}")
    # The previous-action input is what was executed: the labels themselves for expert
    # episodes, executed.npy for DAgger episodes (whose labels are the oracle's, not taken).
    taken = actions
    if KEY_EXECUTED in sample:
        taken = np.load(io.BytesIO(sample[KEY_EXECUTED])).astype(np.int64)  # (T,)
        if taken.shape != actions.shape or taken.min() < 0 or taken.max() >= len(ACTION_VOCAB):
            raise ValueError(f"bad executed array {taken.shape} for actions {actions.shape}")
    prev_all = previous_tokens(taken, meta["poses"])  # (T,)
    dist_all, pixels_all = episode_aux_labels(sample, len(actions))  # (T,) each
    rooms_all = None if rooms is None else torch.from_numpy(rooms(meta))  # (T,)
    starts = chunk_starts(len(actions), seq_len, rng)
    first, stop = starts[0], min(len(actions), starts[-1] + seq_len)
    if render is None:
        rgb = decode_frames(sample[KEY_RGB], first, stop)  # (stop - first, H, W, 3)
    else:
        rgb = render(meta, first, stop)
    box_all = None
    if boxes is not None:  # the sample's own boxes where it stores them, else rendered
        stored = episode_target_box(sample, len(actions))  # (T, 6)
        if anchored and meta["task"] != TASK_OBJECTNAV:
            stored = None
        box_all = torch.from_numpy(boxes(meta, first, stop) if stored is None
                                   else stored[first:stop])  # (n, 6)
    chunks = []
    for start in starts:
        end = min(len(actions), start + seq_len)
        frames = torch.from_numpy(rgb[start - first:end - first])  # (l, H, W, 3)
        frames = resize_frames(frames.permute(0, 3, 1, 2), image_size)  # (l, 3, h, w)
        colour, offset = None, (0, 0)
        if rng is not None and (jitter > 0 or shift > 0):
            frames, colour, offset = augment(frames, rng, jitter, shift, defer_colour)
        acts = torch.from_numpy(actions[start:end])  # (l,)
        prev = torch.from_numpy(prev_all[start:end])
        chunks.append({"frames": frames, "actions": acts, "prev_actions": prev, "goal": goal,
                       "goal_dist": torch.from_numpy(dist_all[start:end]),
                       "target_pixels": torch.from_numpy(pixels_all[start:end])})
        if colour is not None:
            chunks[-1]["colour"] = colour
        if rooms_all is not None:
            chunks[-1]["room_type"] = rooms_all[start:end]
        if box_all is not None:
            chunks[-1]["target_box"] = shift_box(box_all[start - first:end - first], *offset,
                                                 *frames.shape[-2:])
    return chunks


def unpadded_steps(mask: torch.Tensor) -> torch.Tensor:
    """A batch's ``steps``: the flat (row-major into B*L) indices (N,) of ``mask``'s (B, L)
    unpadded steps. Found on the host, so the policy selects them with no device wait."""
    return mask.flatten().nonzero()[:, 0]


def collate_chunks(chunks: list[dict[str, Any]], seq_len: int, num_skipped: int = 0
                   ) -> dict[str, torch.Tensor]:
    """Pad chunks to ``seq_len`` and stack them into a batch (see the module docstring)."""
    b = len(chunks)
    _, c, h, w = chunks[0]["frames"].shape
    frames = torch.empty(b, seq_len, c, h, w, dtype=torch.uint8)  # padding zeroed below
    actions = torch.zeros(b, seq_len, dtype=torch.long)
    prev = torch.zeros(b, seq_len, dtype=torch.long)
    mask = torch.zeros(b, seq_len, dtype=torch.bool)
    dist = torch.full((b, seq_len), -1.0)
    pixels = torch.full((b, seq_len), -1, dtype=torch.long)
    for i, chunk in enumerate(chunks):
        n = len(chunk["actions"])
        frames[i, :n] = chunk["frames"]
        frames[i, n:] = 0
        actions[i, :n] = chunk["actions"]
        prev[i, :n] = chunk["prev_actions"]
        mask[i, :n] = True
        dist[i, :n] = chunk["goal_dist"]
        pixels[i, :n] = chunk["target_pixels"]
    goals = torch.tensor([chunk["goal"] for chunk in chunks], dtype=torch.long)
    batch = {"frames": frames, "actions": actions, "prev_actions": prev, "goals": goals,
             "mask": mask, "steps": unpadded_steps(mask), "goal_dist": dist,
             "target_pixels": pixels, "num_skipped": torch.tensor(num_skipped)}
    if "target_box" in chunks[0]:
        boxes = torch.zeros(b, seq_len, BOX_FEATURES)
        for i, chunk in enumerate(chunks):
            boxes[i, :len(chunk["actions"])] = chunk["target_box"]
        batch["target_box"] = boxes
    if "room_type" in chunks[0]:
        rooms = torch.full((b, seq_len), -1, dtype=torch.long)
        for i, chunk in enumerate(chunks):
            rooms[i, :len(chunk["actions"])] = chunk["room_type"]
        batch["room_type"] = rooms
    if "colour" in chunks[0]:
        batch["colour"] = torch.stack([chunk["colour"] for chunk in chunks])  # (B, 2, 3)
    return batch
