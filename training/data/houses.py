"""Frames and labels rendered again from the episodes' houses at their stored poses: the
frames evaluation sees (:class:`PoseRenderer`), the target's box from the instance ids, and
each step's room type (:class:`RoomLabels`). The house files are the ones info.json names
(the dataset's own copies, as :func:`training.data.info.load_info` resolves them), checked by
sha256."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from common.files import sha256_file
from datagen.constants import FRAMES_NONE, INFO_FILE
from datagen.dataset import dataset_frames, split_house_file
from datagen.episodes import HouseFile
from datagen.tasks import box_corners, box_target, outside_frustum
from sim.appearance import Appearance
from sim.assets import object_types
from sim.camera import CameraConfig
from sim.detect import BOX_FEATURES, target_box, target_table
from sim.env import EmbeddedEnv
from sim.house import iter_house_lines, line_content_hash
from sim.house_check import HouseError
from sim.lattice import AgentConfig
from sim.scene import point_in_polygon, room_polygons
from training.data.info import DataOptionError, DatasetMismatchError

FRAME_SOURCES = ("decoded", "rendered")


def check_frames(frames: str | None) -> str | None:
    """``frames`` if it is a frame source or None (the dataset's own: :func:`dataset_frames`),
    else a one-line DataOptionError naming the field."""
    if frames is not None and frames not in FRAME_SOURCES:
        raise DataOptionError(f"data.frames: {frames!r} is not one of "
                              f"{', '.join(FRAME_SOURCES)} (decoded: the shards' video; "
                              "rendered: the frames rendered again at the stored poses, as "
                              "evaluation sees them)")
    return frames


def frame_source(frames: str | None, info: dict, root: str | Path) -> str:
    """The frames a loader reads from the dataset at ``root``: ``frames`` when given, else
    ``rendered`` for a pose-only dataset (info.json ``frames: none``) and ``decoded`` for a
    video one. ``decoded`` on a pose-only dataset is a one-line DataOptionError."""
    pose_only = dataset_frames(info) == FRAMES_NONE
    if frames is None:
        return "rendered" if pose_only else "decoded"
    if frames == "decoded" and pose_only:
        raise DataOptionError(f"data.frames: decoded, but {Path(root) / INFO_FILE} says "
                              f"frames: {FRAMES_NONE} (its samples hold no video); leave "
                              "data.frames out or set it to rendered")
    return check_frames(frames)


HOUSE_CACHE = 32
"""Houses a loader worker keeps parsed, and built (scene, lattice, renderer), at once: a
shuffle buffer mixes the episodes of a few shards, each of several houses, and building a
house again costs ~70 ms, far more than rendering its frames. Each kept house takes a few MB
at 224x384."""


class HouseLines:
    """A house file held as text, each house parsed and checked when first asked for (30 MB
    for 1,000 houses; checking them all up front would cost every loader worker ~7 s); the
    last :data:`HOUSE_CACHE` houses asked for are kept."""

    def __init__(self, path: str, sha256: str):
        if not Path(path).is_file():
            raise HouseError(path, None, "<file>", "not found (the episodes' frames and labels "
                             "are rendered from it)", "copy the dataset with its houses/ "
                             "folder, or write the split again with `spoc-datagen episodes`")
        found = sha256_file(path)
        if found != sha256:
            raise HouseError(path, None, "<file>", f"sha256 {found[:12]}... is not the "
                             f"{sha256[:12]}... the episodes were generated from",
                             "copy the dataset with its houses/ folder, or write the split "
                             "again with `spoc-datagen episodes`")
        self.texts = dict(iter_house_lines(path))
        self.file = HouseFile(str(path), found, tuple(self.texts))
        self._kept: OrderedDict[int, dict] = OrderedDict()

    def content_hashes(self) -> list[str]:
        """:func:`sim.house.line_content_hash` of every house, in line order (the file's
        sha256 is the one its episodes were generated from)."""
        return [line_content_hash(text, self.file.path, line) for line, text in self.texts.items()]

    def house(self, line: int) -> dict:
        """The checked house on ``line``."""
        if line not in self._kept:
            if line not in self.texts:
                raise KeyError(f"house_index {line} is not a house of {self.file.path}")
            self._kept[line] = self.file.parse(line, self.texts[line]).house
            while len(self._kept) > HOUSE_CACHE:
                self._kept.popitem(last=False)
        self._kept.move_to_end(line)
        return self._kept[line]


def room_types(goals: Iterable[str]) -> list[str]:
    """The room types a dataset's goal vocabulary names (its RoomNav targets), in its order:
    what ``room_type`` labels index."""
    return [g.split("/", 1)[1] for g in goals if g.startswith("roomnav/")]


def check_object_type(name: str, where: str) -> str:
    """``name`` if it is an object type of the asset database, else DataOptionError naming
    ``where``."""
    if name not in set(object_types()):
        raise DataOptionError(f"{where}: {name!r} is not an object type of the asset "
                              "database; name one, e.g. Bed, Toilet, Fridge or Sofa")
    return str(name)


def check_room_anchors(room_anchors: dict | None, goals: list[str], where: str
                       ) -> dict[str, str]:
    """``room_anchors`` (:func:`datagen.tasks.box_target`) as a plain dict, checked against a goal
    vocabulary: each key one of its room types, each value a known object type
    (DataOptionError naming ``where``.key)."""
    rooms = room_types(goals)
    out = {}
    for room, anchor in dict(room_anchors or {}).items():
        if room not in rooms:
            raise DataOptionError(f"{where}.{room}: not a RoomNav target of the dataset "
                                  f"({rooms}); key the anchors by its room types")
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
        self.env = EmbeddedEnv(CameraConfig(**info["camera"]), AgentConfig(**info["agent"]),
                               cache_houses=HOUSE_CACHE)
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
        """The house file of each split, as the info.json at ``where`` names it
        (:meth:`house_entries`), found by :func:`datagen.dataset.split_house_file` from
        ``where``'s folder (the paths of an ``info`` that
        :func:`training.data.info.load_info` read are already absolute)."""
        root = Path(where).parent
        return {split: HouseLines(str(split_house_file(root, entry)), entry["sha256"])
                for split, entry in PoseRenderer.house_entries(info, splits, where).items()}

    def load(self, meta: dict, split: str):
        """(Scene, Lattice) of an episode's house, loaded into ``env``."""
        return self.env.load(self.houses[split].house(int(meta["house_index"])))

    def frames(self, meta: dict, split: str, start: int = 0, stop: int | None = None,
               appearance: Appearance | None = None) -> np.ndarray:
        """(n, H, W, 3) uint8: the episode's frames ``start:stop``, under ``appearance``
        (:func:`sim.appearance.draw_appearance`, one per episode) when given."""
        self.load(meta, split)
        if appearance is None:
            render = self.env.renderer.render_rgb
            return np.stack([render(x, z, yaw) for x, z, yaw in meta["poses"][start:stop]])
        view = self.env.renderer.with_appearance(appearance)
        return np.stack([view.render_rgb(x, z, yaw, frame=start + t)
                         for t, (x, z, yaw) in enumerate(meta["poses"][start:stop])])

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
