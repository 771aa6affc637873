"""Reading episode shards for training: info.json checks, decoding, chunking, batching.

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
the labels, DAgger rounds written before they got them), and ``num_skipped`` () long (bad
shards or samples skipped while this batch was assembled); with ``target_box``, ``target_box``
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
(``scripts/bench_train.md``), and a GPU does it in microseconds.

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
import logging
import math
import tarfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

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
    SHARD_GLOB,
    TASK_OBJECTNAV,
)
from datagen.episodes import HouseFile
from datagen.files import sha256_file
from datagen.houses.io import HouseError, iter_house_lines
from datagen.shards import decode_frames
from datagen.tasks import box_corners, outside_frustum
from sim.assets import object_types
from sim.camera import CameraConfig
from sim.detect import BOX_FEATURES, box_target, target_box, target_table
from sim.env import EmbeddedEnv
from sim.lattice import MOVE_AHEAD, AgentConfig
from sim.scene import point_in_polygon, room_polygons
from training.policy import previous_action_tokens, resize_frames

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 200
"""A stream that skips this many samples in a row without one good one gives up with an error."""



class DatasetMismatchError(ValueError):
    """The dataset on disk is not one this reader understands."""


# ---------------------------------------------------------------------------------------------
# info.json and shard lists


def load_info(root: str | Path, option: str = "--data.root") -> dict:
    """Read and check ``root/info.json``; raise ``DatasetMismatchError`` naming field and fix
    (``option``: the command's option that gave ``root``)."""
    path = Path(root) / INFO_FILE
    if not path.is_file():
        raise DatasetMismatchError(f"{path}: not found; point {option} at a directory written "
                                   "by `spoc-datagen episodes`")
    info = json.loads(path.read_text())
    check_info(info, path)
    return info


def check_info(info: dict, path: str | Path = INFO_FILE) -> None:
    """Refuse a dataset whose version, action or goal vocabulary this code cannot read."""
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
    """House ids and action counts of a split, reading only the small members of each tar."""
    houses, counts = set(), np.zeros(num_actions, dtype=np.int64)
    for url in urls:
        try:
            with tarfile.open(url, mode="r:") as tar:
                for member in tar:
                    if member.name.endswith("." + KEY_META):
                        houses.add(str(json.load(tar.extractfile(member))["house_id"]))
                    elif member.name.endswith("." + KEY_ACTIONS):
                        acts = np.load(io.BytesIO(tar.extractfile(member).read()))
                        counts += np.bincount(acts.astype(np.int64), minlength=num_actions)
        except (tarfile.TarError, OSError, ValueError, KeyError, EOFError) as exn:
            warnings.warn(f"{url}: scan stopped early ({exn}); skipping the rest of it",
                          stacklevel=2)
    return {"house_ids": sorted(houses), "action_counts": counts.tolist()}


# ---------------------------------------------------------------------------------------------
# one episode -> one chunk


def chunk_starts(num_steps: int, length: int, rng: np.random.Generator | None) -> list[int]:
    """Chunk start steps: one random window (training) or consecutive windows covering all."""
    if rng is None:
        return list(range(0, num_steps, length))
    return [int(rng.integers(0, max(1, num_steps - length + 1)))]


def shift_replicate(x: torch.Tensor, offset: int, dim: int) -> torch.Tensor:
    """``out[i] = x[clamp(i + offset)]`` along ``dim`` (slice copies: ~20x an index_select)."""
    n = x.shape[dim]
    if offset == 0:
        return x
    out = torch.empty_like(x)
    k = min(abs(offset), n)
    if offset > 0:  # content moves towards 0; the last row/column fills the end
        out.narrow(dim, 0, n - k).copy_(x.narrow(dim, k, n - k))
        edge, fill = x.narrow(dim, n - 1, 1), out.narrow(dim, n - k, k)
    else:
        out.narrow(dim, k, n - k).copy_(x.narrow(dim, 0, n - k))
        edge, fill = x.narrow(dim, 0, 1), out.narrow(dim, 0, k)
    fill.copy_(edge.expand_as(fill))
    return out


def colour_jitter(frames: torch.Tensor, rng: np.random.Generator, jitter: float
                  ) -> torch.Tensor:
    """A chunk's colour jitter as a per-channel affine map: (2, 3) float32, scale and offset.

    Brightness and contrast factors in [1 - jitter, 1 + jitter] and a per-channel gain in
    [1 - jitter/4, 1 + jitter/4], fused; the contrast pivots on the mean of uint8 ``frames``
    (L, 3, H, W) (every 4th pixel). :func:`apply_colour` applies it.
    """
    bright, contrast = 1 + rng.uniform(-jitter, jitter, size=2)
    gain = 1 + rng.uniform(-jitter / 4, jitter / 4, size=3)
    mean = float(frames[..., ::4, ::4].float().mean())
    offset = bright * gain * mean * (1 - contrast) + 0.5  # +0.5: round on the cast to uint8
    return torch.as_tensor(np.stack([bright * contrast * gain, offset]), dtype=torch.float32)


def apply_colour(frames: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., 3, H, W) through affine maps (..., 2, 3) (:func:`colour_jitter`).

    ``colour``'s leading dimensions broadcast against the frames' (a chunk's map is (2, 3); a
    batch's (B, 1, 2, 3) for frames (B, L, 3, H, W)). Runs where the tensors are.
    """
    scale, offset = colour[..., 0, :, None, None], colour[..., 1, :, None, None]
    return torch.addcmul(offset, frames.float(), scale).clamp_(0, 255).to(torch.uint8)


def shift_box(box: torch.Tensor, dy: int, dx: int, height: int, width: int) -> torch.Tensor:
    """Box features (n, 6) (:data:`sim.detect.BOX_FEATURES`) as they are in frames (H, W) =
    (``height``, ``width``) shifted by ``dy`` rows and ``dx`` columns (:func:`shift_replicate`):
    the box moves by minus the offset and is clipped to the frame, an edge on the frame's
    border stays there (the border row or column is replicated), and a box moved wholly out of
    the frame is no box (zeros). The size feature is kept."""
    if dy == 0 and dx == 0:
        return box
    out = box.clone()
    for lo, hi, offset, n in ((1, 3, dx, width), (2, 4, dy, height)):
        a, b = box[:, lo], box[:, hi]
        out[:, lo] = torch.where(a <= 0, a, (a - offset / n).clamp(0.0, 1.0))
        out[:, hi] = torch.where(b >= 1, b, (b - offset / n).clamp(0.0, 1.0))
    gone = (out[:, 3] <= out[:, 1]) | (out[:, 4] <= out[:, 2])
    out[gone] = 0.0
    return out


def augment(frames: torch.Tensor, rng: np.random.Generator, jitter: float, shift: int,
            defer_colour: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int]]:
    """A small shift and colour jitter, the same over a chunk. uint8 (L, 3, H, W) -> same.

    Shift: up to ``shift`` pixels each way, edges replicated. Jitter: :func:`colour_jitter`,
    applied here, or with ``defer_colour`` returned (2, 3) for the accelerator to apply
    (:meth:`training.module.PolicyModule.on_after_batch_transfer`): the same random draws
    either way. Returns the frames, the deferred map (None when applied or without jitter) and
    the shift (rows, columns) for :func:`shift_box`.
    """
    x, dy, dx = frames, 0, 0
    if shift > 0:
        dy, dx = (int(v) - shift for v in rng.integers(0, 2 * shift + 1, size=2))
        x = shift_replicate(shift_replicate(x, dy, -2), dx, -1)
    if jitter <= 0:
        return x, None, (dy, dx)
    colour = colour_jitter(x, rng, jitter)
    if defer_colour:
        return x, colour, (dy, dx)
    return apply_colour(x, colour), None, (dy, dx)


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


# ---------------------------------------------------------------------------------------------
# frames rendered again


FRAME_SOURCES = ("decoded", "rendered")


def check_frames(frames: str) -> str:
    """``frames`` if it is a frame source, else a one-line ValueError naming the field."""
    if frames not in FRAME_SOURCES:
        raise ValueError(f"data.frames: {frames!r} is not one of {', '.join(FRAME_SOURCES)} "
                         "(decoded: the shards' video; rendered: the frames rendered again at "
                         "the stored poses, as evaluation sees them)")
    return frames


class HouseLines:
    """A house file held as text, each house parsed and checked when first asked for (30 MB
    for 1,000 houses; checking them all up front would cost every loader worker ~7 s)."""

    def __init__(self, path: str, sha256: str):
        if not Path(path).is_file():
            raise HouseError(path, None, "<file>", "not found (the episodes' frames and labels "
                             "are rendered from it)", "use the dataset where it was generated")
        found = sha256_file(path)
        if found != sha256:
            raise HouseError(path, None, "<file>", f"sha256 {found[:12]}... is not the "
                             f"{sha256[:12]}... the episodes were generated from",
                             "use the dataset where it was generated")
        self.texts = dict(iter_house_lines(path))
        self.file = HouseFile(str(path), found, tuple(self.texts))
        self._last: tuple[int, Any] | None = None

    def house(self, line: int) -> dict:
        """The checked house on ``line`` (the last one is kept: samples come grouped)."""
        if self._last is None or self._last[0] != line:
            if line not in self.texts:
                raise KeyError(f"house_index {line} is not a house of {self.file.path}")
            self._last = (line, self.file.parse(line, self.texts[line]).house)
        return self._last[1]


def room_types(goals: Iterable[str]) -> list[str]:
    """The room types a dataset's goal vocabulary names (its RoomNav targets), in its order:
    what ``room_type`` labels index."""
    return [g.split("/", 1)[1] for g in goals if g.startswith("roomnav/")]


def check_object_type(name: str, where: str) -> str:
    """``name`` if it is an object type of the asset database, else ValueError naming
    ``where``."""
    if name not in set(object_types()):
        raise ValueError(f"{where}: {name!r} is not an object type of the asset database; "
                         "name one, e.g. Bed, Toilet, Fridge or Sofa")
    return str(name)


def check_room_anchors(room_anchors: dict | None, goals: list[str], where: str
                       ) -> dict[str, str]:
    """``room_anchors`` (:func:`sim.detect.box_target`) as a plain dict, checked against a goal
    vocabulary: each key one of its room types, each value a known object type (ValueError
    naming ``where``.key)."""
    rooms = room_types(goals)
    out = {}
    for room, anchor in dict(room_anchors or {}).items():
        if room not in rooms:
            raise ValueError(f"{where}.{room}: not a RoomNav target of the dataset ({rooms}); "
                             "key the anchors by its room types")
        out[str(room)] = check_object_type(anchor, f"{where}.{room}")
    return out


class RoomLabels:
    """Each step's room type from the episode's house (its rooms' floor polygons at the stored
    poses): -1 outside every room or in a room of a type not in ``types``. The houses come
    from the splits' house files, checked by sha256, as :class:`PoseRenderer`'s."""

    def __init__(self, houses: dict[str, HouseLines], types: list[str]):
        self.houses, self.index = houses, {t: i for i, t in enumerate(types)}
        self._last: tuple[tuple[str, int], list] | None = None

    def rooms(self, split: str, line: int) -> list[tuple[int, np.ndarray]]:
        """(type index, (K, 2) floor polygon) of each room of a house (the last is kept)."""
        if self._last is None or self._last[0] != (split, line):
            house = self.houses[split].house(line)
            polygons = room_polygons(house)
            rooms = [(self.index.get(r["roomType"], -1), polygons[r["id"]])
                     for r in house["rooms"]]
            self._last = ((split, line), rooms)
        return self._last[1]

    def __call__(self, meta: dict, split: str) -> np.ndarray:
        """(T,) int64: the room type at each stored pose of an episode."""
        rooms = self.rooms(split, int(meta["house_index"]))
        out = np.full(len(meta["poses"]), -1, dtype=np.int64)
        for t, (x, z, _) in enumerate(meta["poses"]):
            for kind, poly in rooms:
                if point_in_polygon(x, z, poly):
                    out[t] = kind
                    break
        return out


class PoseRenderer:
    """Episodes' frames rendered again at their stored poses with the embedded renderer: the
    exact frames evaluation sees, without the shards' video compression (H.264, yuv420p:
    chroma at half resolution, which blurs the colour of a target a few pixels wide into its
    surroundings). The houses come from the splits' house files, checked by sha256."""

    def __init__(self, info: dict, houses: dict[str, HouseLines]):
        self.env = EmbeddedEnv(CameraConfig(**info["camera"]), AgentConfig(**info["agent"]))
        self.houses = houses

    @staticmethod
    def house_entries(info: dict, splits: Iterable[str], where: str | Path = INFO_FILE,
                      fix: str = "") -> dict[str, dict]:
        """info.json's (at ``where``) record of each split's house file (path, sha256, count),
        or a one-line DatasetMismatchError; ``fix``: what it suggests beside writing the split
        again."""
        out = {}
        for split in splits:
            entry = info.get("splits", {}).get(split, {}).get("houses")
            if not entry:
                raise DatasetMismatchError(
                    f"{where}: splits.{split}.houses is missing, and the frames and labels are "
                    f"rendered from the split's house file; write the split again with "
                    f"`spoc-datagen episodes`, which records it{fix}")
            out[split] = entry
        return out

    @staticmethod
    def house_files(info: dict, splits: Iterable[str], where: str | Path = INFO_FILE
                    ) -> dict[str, HouseLines]:
        """The house file of each split, as info.json names it (:meth:`house_entries`)."""
        return {split: HouseLines(entry["path"], entry["sha256"])
                for split, entry in PoseRenderer.house_entries(info, splits, where).items()}

    def load(self, meta: dict, split: str):
        """(Scene, Lattice) of an episode's house, loaded into ``env``."""
        return self.env.load(self.houses[split].house(int(meta["house_index"])))

    def frames(self, meta: dict, split: str, start: int = 0, stop: int | None = None
               ) -> np.ndarray:
        """(n, H, W, 3) uint8: the episode's frames ``start:stop``."""
        self.load(meta, split)
        render = self.env.renderer.render_rgb
        return np.stack([render(x, z, yaw) for x, z, yaw in meta["poses"][start:stop]])

    def boxes(self, meta: dict, split: str, start: int = 0, stop: int | None = None,
              room_anchors: dict[str, str] | None = None) -> np.ndarray:
        """(n, 6) float32: the target's box (:func:`sim.detect.target_box`) in the episode's
        frames ``start:stop``, from instance ids rendered at the stored poses. A RoomNav
        goal's target is its room type's anchor in ``room_anchors`` (all zeros without one)."""
        poses = meta["poses"][start:stop]
        out = np.zeros((len(poses), BOX_FEATURES), dtype=np.float32)
        target = box_target(meta["task"], meta["target"], room_anchors)
        if target is None:
            return out
        scene, _ = self.load(meta, split)
        table = target_table(scene.boxes.object_type, target)
        # a pose from which every target instance is outside the view frustum sees none of
        # them: no need to render (as datagen's target_pixels labels skip it)
        corners = box_corners(scene.boxes, np.flatnonzero(table[1:]))  # (K, 8, 3)
        for t, (x, z, yaw) in enumerate(poses):
            if not outside_frustum(corners, x, z, math.radians(yaw), self.env.camera).all():
                out[t] = target_box(self.env.renderer.render_ids(x, z, yaw), table)
        return out


# ---------------------------------------------------------------------------------------------
# streams


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
        if self.consecutive >= MAX_CONSECUTIVE_FAILURES:
            raise RuntimeError(f"{self.where}: {self.consecutive} bad samples in a row; "
                               "the shards look unreadable, check them with `spoc-datagen verify`")
        return True

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
    skipped and counted (the next batch's ``num_skipped``). ``urls``: (shard, split) pairs
    (:func:`split_urls`), the split naming the house file (in ``info``, the dataset's
    info.json) that frames are rendered from with ``frames="rendered"``
    (:class:`PoseRenderer`). A subclass says what a sample gives (:meth:`_sample_items`), how
    training draws (:meth:`_train_items`) and how items become a batch (:meth:`_collate`).
    """

    def __init__(self, urls: list[tuple[str, str]], info: dict, *, train: bool,
                 batch_size: int, batches_per_epoch: int = 0, frames: str = "decoded",
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__()
        if not urls:
            raise ValueError(f"{type(self).__name__} needs at least one shard")
        self.urls, self.split_of = [u for u, _ in urls], dict(urls)
        self.info, self.frames, self.train = info, check_frames(frames), train
        self.batch_size, self.batches_per_epoch = batch_size, batches_per_epoch
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.skips = SkipCounter("shards")

    def __len__(self) -> int:
        if not self.train:
            raise TypeError("the validation stream has no fixed length")
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        self.skips = SkipCounter(f"rank {self.rank} worker {worker}")
        if self.train:
            quota = self.batches_per_epoch // num_workers
            quota += int(worker < self.batches_per_epoch % num_workers)
            if quota <= 0:
                return iter(())
            seq = np.random.SeedSequence([self.seed, self.epoch, self.rank, worker])
            return self._batches(self._train_items(seq), quota)
        urls = self.urls
        if len(urls) >= self.world_size:
            urls = urls[self.rank::self.world_size]
        urls = urls[worker::num_workers]
        if not urls:
            return iter(())
        samples = self._samples(lambda: iter({"url": u} for u in urls))
        return self._batches(self._items(samples, None), None)

    def _house_files(self) -> dict[str, HouseLines]:
        """The house file of each split read (loaded in the worker that iterates)."""
        return PoseRenderer.house_files(self.info, set(self.split_of.values()))

    def _train_items(self, seq: np.random.SeedSequence) -> Iterator:
        """The training items of one worker, its randomness spawned from ``seq``."""
        raise NotImplementedError

    def _sample_items(self, sample: dict, rng: np.random.Generator | None) -> Iterable:
        """The items of one sample (random and augmented with ``rng``); raises when malformed."""
        raise NotImplementedError

    def _collate(self, items: list) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _samples(self, source, *stages) -> Iterator[dict]:
        stages = (source, wds.tarfile_to_samples(handler=self.skips), *stages)
        return wds.DataPipeline(*stages).iterator()

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
        buf, count = [], 0
        for item in items:
            buf.append(item)
            if len(buf) == self.batch_size:
                yield self._collate(buf)
                buf, count = [], count + 1
                if limit is not None and count >= limit:
                    return
        if buf and limit is None:
            yield self._collate(buf)


class EpisodeChunkStream(ShardStream):
    """Batches of episode chunks from webdataset shards (see the module docstring).

    ``train=True``: resampled, one random chunk per episode visit, augmented, exactly
    ``batches_per_epoch`` batches per rank (``defer_colour``: the colour jitter is left to the
    consumer, as ``colour``). ``train=False``: every shard once (split over ranks
    when there are enough shards, else each rank reads all), every step once, no augmentation.
    ``target_box``: each chunk also carries the target's box, the sample's stored one or else
    from ids rendered at its poses; ``room_anchors`` (room type -> object type) gives RoomNav
    goals the box of their room's anchor, rendered.
    """

    def __init__(self, urls: list[tuple[str, str]], info: dict, *, train: bool, seq_len: int,
                 image_size: tuple[int, int], batch_size: int, batches_per_epoch: int = 0,
                 shuffle_buffer: int = 32, jitter: float = 0.0, shift: int = 0,
                 frames: str = "decoded", seed: int = 0, rank: int = 0, world_size: int = 1,
                 defer_colour: bool = False, target_box: bool = False,
                 room_labels: bool = False, room_anchors: dict[str, str] | None = None):
        super().__init__(urls, info, train=train, batch_size=batch_size,
                         batches_per_epoch=batches_per_epoch, frames=frames, seed=seed,
                         rank=rank, world_size=world_size)
        self.goal_index = {g: i for i, g in enumerate(info["goals"])}
        self.seq_len, self.image_size = seq_len, tuple(image_size)
        self.shuffle_buffer, self.jitter, self.shift = shuffle_buffer, jitter, shift
        self.defer_colour, self.target_box = defer_colour, target_box
        self.room_labels, self.room_anchors = room_labels, dict(room_anchors or {})
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
                return self.poses.frames(meta, split, start, stop)
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
        return collate_chunks(chunks, self.seq_len, self.skips.take_pending())

    def _train_items(self, seq: np.random.SeedSequence) -> Iterator[dict]:
        shard_rng, shuffle_seed, chunk_rng = (np.random.default_rng(s) for s in seq.spawn(3))
        shuffle = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer,
                              seed=int(shuffle_seed.integers(2**31)))
        samples = self._samples(lambda: _resampled_urls(self.urls, shard_rng), shuffle)
        return self._items(samples, chunk_rng)


def epoch_about_to_run(trainer: pl.Trainer | None) -> int:
    """The epoch about to run (what Lightning gives samplers' ``set_epoch``, also on resume).

    Read when the loader starts its workers, which for the first epoch (and a resumed one) is
    before ``on_train_epoch_start``; ``trainer.current_epoch`` lags there on resume.
    """
    return 0 if trainer is None else trainer.fit_loop.epoch_progress.current.processed


class EpochDataLoader(DataLoader):
    """A DataLoader that tells its stream the current epoch before starting workers."""

    def __init__(self, dataset: EpisodeChunkStream, epoch_fn, **kwargs):
        super().__init__(dataset, batch_size=None, **kwargs)
        self._epoch_fn = epoch_fn

    def __iter__(self):
        self.dataset.epoch = int(self._epoch_fn())
        return super().__iter__()


# ---------------------------------------------------------------------------------------------
# the LightningDataModule


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
        frames: str = "decoded",
        val_split: str = "val",
        train_splits: list[str] | None = None,
        target_box: bool = False,
        room_labels: bool = False,
        room_anchors: dict[str, str] | None = None,
        seed: int = 0,
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
                exact frames evaluation sees, without the video's compression).
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
        """
        super().__init__()
        self.save_hyperparameters()
        if seq_len < 1 or batch_size < 1 or batches_per_epoch < 1:
            raise ValueError(f"data: seq_len={seq_len}, batch_size={batch_size} and "
                             f"batches_per_epoch={batches_per_epoch} must all be >= 1")
        check_frames(frames)
        self.root, self.image_size = Path(root), tuple(int(v) for v in image_size)
        self.info = load_info(self.root)
        if room_anchors and not target_box:
            raise ValueError("data.room_anchors: the anchors are RoomNav goals' boxes; add "
                             "--data.target_box true or drop --data.room_anchors")
        self.room_anchors = check_room_anchors(room_anchors, self.info["goals"],
                                               "data.room_anchors")
        self.train_splits = list(train_splits or ["train"])
        self.train_urls = [u for u, _ in split_urls(self.root, self.train_splits)]
        self.val_urls = shard_urls(self.root, val_split)
        rendering = [option for option, on in (("--data.frames decoded", frames == "rendered"),
                                               ("--data.target_box false", target_box),
                                               ("--data.room_labels false", room_labels)) if on]
        if rendering:  # checked here: in a loader worker it would be a worker's traceback
            validated = [val_split] if self.val_urls else []
            PoseRenderer.house_entries(self.info, [*self.train_splits, *validated],
                                       self.root / INFO_FILE,
                                       ", or train with " + " and ".join(rendering))
        self._train_scan: dict | None = None

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
        the ids, so the ids come from the samples.
        """
        if self._train_scan is None:
            self._train_scan = scan_split(self.train_urls, len(self.actions))
        return self._train_scan

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
            shift=hp.shift if hp.augment else 0, frames=hp.frames, seed=hp.seed,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            defer_colour=train and self._on_accelerator, target_box=hp.target_box,
            room_labels=hp.room_labels, room_anchors=self.room_anchors)

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
