"""Detections of the target: where in the frame the goal's object is.

SPOC (Ehsani et al. 2023) trains a variant of its policy on the simulator's bounding box of
the target ("GT detection"), which measures what navigation reaches once perception is
solved; a detector takes the simulator's place at deployment. The simulator's box comes from
the instance-id image every backend renders (:class:`sim.env.Observation`): ids number the
house JSON's objects the same way in both backends (:mod:`sim.thor`), so one table of object
types per house turns ids into "is a target" (:func:`target_box`). The detector's comes from
the RGB frame alone (:class:`ColourDetector`, fitted on training frames by
``spoc-detector fit``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from datagen.constants import TASK_OBJECTNAV
from datagen.files import json_bytes, write_atomic
from sim.scene import chromaticity

BOX_FEATURES = 6
"""Length of a box feature: seen, x0, y0, x1, y1 (fractions of the frame's width and
height), sqrt(pixels / frame pixels)."""


def box_target(task: str, target: str, room_anchors: dict[str, str] | None = None
               ) -> str | None:
    """The object type whose box a goal's policy input shows: an ObjectNav goal's target;
    for a RoomNav goal, the object type that stands for its room type in ``room_anchors``
    (e.g. ``{"Bedroom": "Bed"}``: a room is recognised by what is in it), else None (no
    box)."""
    if task == TASK_OBJECTNAV:
        return target
    return (room_anchors or {}).get(target)


def target_table(object_types: list[str], target: str | None) -> np.ndarray:
    """(M + 1,) bool: which instance ids are the target type (id k + 1 is object k; id 0 is
    structure). ``target`` None (a RoomNav goal) marks nothing."""
    table = np.zeros(len(object_types) + 1, dtype=bool)
    if target is not None:
        table[1:] = np.asarray(object_types, dtype=object) == target
    return table


def target_box(ids: np.ndarray, is_target: np.ndarray, counts: np.ndarray | None = None
               ) -> np.ndarray:
    """(6,) float32 box feature (:data:`BOX_FEATURES`) of the target instance with the most
    pixels in the (H, W) instance-id image, all zeros when no target pixel is in view.
    ``counts``: the image's pixel count per id (``np.bincount`` of ``ids``), where the caller
    has it already."""
    if counts is None:
        counts = np.bincount(ids.ravel(), minlength=len(is_target))
    counts = np.where(is_target, counts[:len(is_target)], 0)
    k = int(counts.argmax())
    out = np.zeros(BOX_FEATURES, dtype=np.float32)
    if counts[k] == 0:
        return out
    h, w = ids.shape
    mask = ids == k  # (H, W)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    out[:] = (1.0, cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h,
              np.sqrt(counts[k] / (h * w)))
    return out


# --------------------------------------------------------------------------- a colour detector

MIN_BRIGHTNESS = 60
"""A pixel takes part in detection when its R + G + B is at least this: the chromaticity of
a dark pixel is noise."""

RADII = tuple(np.round(np.arange(0.01, 0.161, 0.01), 3))
"""Candidate chromaticity radii (L1) a type's colour is fitted over."""

MIN_PIXELS = (1, 2, 3, 4, 6, 8, 12, 16)
"""Candidate smallest detections (pixels of one connected region)."""

F1_SLACK = 0.03
"""A type's radius is the widest whose frame F1 on the fit frames is this close to the best."""


def lit_chromaticity(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) uint8 RGB -> ((..., 3) float32 chromaticity, (...) bool lit: at least
    :data:`MIN_BRIGHTNESS`)."""
    return chromaticity(rgb, np.float32), lit_pixels(rgb)


def lit_pixels(rgb: np.ndarray) -> np.ndarray:
    """(...) bool: which pixels of (..., 3) uint8 RGB are at least :data:`MIN_BRIGHTNESS`."""
    return rgb.sum(-1, dtype=np.int32) >= MIN_BRIGHTNESS


HULL_MARGIN = 1e-3
"""Added to a type's colour spread in :meth:`ColourDetector.mask`'s first, coarse test."""


def l1_times_total(f: np.ndarray, total: np.ndarray, centre) -> np.ndarray:
    """(P,) L1 distance in chromaticity of pixels ``f`` (P, 3) float32 from ``centre``, times
    their channel sums ``total`` (P,): no division."""
    dist = np.abs(f[:, 0] - np.float32(centre[0]) * total)
    dist += np.abs(f[:, 1] - np.float32(centre[1]) * total)
    dist += np.abs(f[:, 2] - np.float32(centre[2]) * total)
    return dist


def largest_region(mask: np.ndarray, least: int) -> tuple[np.ndarray, int, int] | None:
    """The largest 8-connected region of the (H, W) bool ``mask`` as (the (H, W) int region
    labels, its label, its pixels), or None when it has fewer than ``least`` pixels."""
    if mask.sum() < least:
        return None
    regions, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    sizes = np.bincount(regions.ravel(), minlength=n + 1)
    sizes[0] = 0
    k = int(sizes.argmax())
    return None if sizes[k] < least else (regions, k, int(sizes[k]))


def region_box(mask: np.ndarray, least: int) -> np.ndarray:
    """(6,) float32 box feature (:data:`BOX_FEATURES`) of the largest 8-connected region of
    the (H, W) bool ``mask``, all zeros when it has fewer than ``least`` pixels."""
    found = largest_region(mask, least)
    if found is None:
        return np.zeros(BOX_FEATURES, dtype=np.float32)
    regions, k, _ = found
    return target_box(regions, np.arange(int(regions.max()) + 1) == k)


Colour = tuple[float, float, float]


@dataclass(frozen=True)
class ColourDetector:
    """A detector of the target types fitted on training frames: a type is the pixels within
    ``radius[type]`` (L1 in chromaticity) of one of its colours ``centre[type]`` (one per asset
    colour the fit saw; a single colour is accepted and taken as one), and its box is the
    largest 8-connected region of them with at least ``min_pixels``; the box feature is
    :func:`target_box`'s. It reads only the RGB frame, so it stands where the simulator's
    box stands in a policy trained with ``target_box``, on any house."""

    centre: dict[str, tuple[Colour, ...]]
    radius: dict[str, float]
    min_pixels: dict[str, int]
    fitted_on: dict = field(default_factory=dict)
    """Where the fit came from (dataset, split, frames) and its scores on those frames."""
    _hull: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """Per type: (the mean of its colours, the largest L1 distance of a colour from it)."""

    def __post_init__(self):
        colours = {}
        for name, value in self.centre.items():
            rows = np.asarray(value, dtype=np.float64)
            if rows.size == 0 or rows.shape[-1] != 3 or rows.ndim > 2:
                raise ValueError(f"'centre.{name}' (an RGB chromaticity or a list of them)")
            rows = rows.reshape(-1, 3)
            colours[name] = tuple(tuple(float(x) for x in row) for row in rows)
            mean = rows.mean(axis=0)
            self._hull[name] = (mean, float(np.abs(rows - mean).sum(-1).max()))
        object.__setattr__(self, "centre", colours)

    def mask(self, rgb: np.ndarray, target: str) -> np.ndarray:
        """(H, W) bool: the pixels of ``rgb`` ((H, W, 3) uint8) taken for ``target``: lit, and
        within the radius of one of its colours in chromaticity, compared times the pixel's
        sum (no division) one colour channel at a time (faster than over a last axis of 3,
        same mask: ``scripts/bench_detector.py``). Several colours are tested only on the
        pixels near their mean (within the radius plus the colours' largest distance from
        it): by the triangle inequality no other pixel is within the radius of any of them."""
        f = rgb.reshape(-1, 3).astype(np.float32)  # (P, 3)
        total = f[:, 0] + f[:, 1] + f[:, 2]  # (P,)
        radius, colours = self.radius[target], self.centre[target]
        mean, spread = self._hull[target]
        if len(colours) > 1:
            spread += HULL_MARGIN  # the bound holds in exact arithmetic; this covers rounding
        near = (total >= MIN_BRIGHTNESS) & (l1_times_total(f, total, mean)
                                            <= (radius + spread) * total)
        if len(colours) > 1 and near.any():
            idx = np.flatnonzero(near)
            f, total = f[idx], total[idx]
            hit = np.zeros(len(idx), dtype=bool)
            for centre in colours:
                hit |= l1_times_total(f, total, centre) <= radius * total
            near[idx] = hit
        return near.reshape(rgb.shape[:2])

    def box(self, rgb: np.ndarray, target: str | None) -> np.ndarray:
        """(6,) float32 box feature (:data:`BOX_FEATURES`) of ``target`` in ``rgb``, all zeros
        when it is not detected (or ``target`` is None, a RoomNav goal)."""
        if target is None or target not in self.centre:
            return np.zeros(BOX_FEATURES, dtype=np.float32)
        return region_box(self.mask(rgb, target), self.min_pixels[target])

    def to_json(self) -> dict:
        return {"kind": "colour",
                "centre": {k: [list(c) for c in v] for k, v in self.centre.items()},
                "radius": self.radius, "min_pixels": self.min_pixels,
                "fitted_on": self.fitted_on}

    @classmethod
    def from_json(cls, data: dict, where: str = "detector") -> ColourDetector:
        try:
            if data.get("kind") != "colour":
                raise KeyError("kind")
            centre = {str(k): v for k, v in data["centre"].items()}
            radius = {k: float(data["radius"][k]) for k in centre}
            least = {k: int(data["min_pixels"][k]) for k in centre}
            return cls(centre, radius, least, dict(data.get("fitted_on", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{where}: field {e} is missing or malformed; write the file "
                             "with `spoc-detector fit`") from None

    def save(self, path: str | Path) -> None:
        """Write the detector as JSON, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json_bytes(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> ColourDetector:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable detector ({e}); write one with "
                             "`spoc-detector fit`") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a detector; write one with `spoc-detector fit`")
        return cls.from_json(data, str(path))


COLOUR_MERGE = 0.01
"""Asset colours of a type closer than this (L1 in chromaticity) are fitted as one colour."""

MAX_COLOURS = 16
"""A type keeps at most this many colours, those covering the most fit pixels."""

MIN_COLOUR_SHARE = 0.02
"""A colour covering less than this share of its type's fit pixels is dropped (a few dim
pixels' rounding, not an asset), unless it is the type's only one."""


def type_colours(frames: Iterable[tuple], types: int) -> list[np.ndarray]:
    """Each type's colours ((C, 3) float32, C >= 0) in ``frames`` (:func:`fit_colour_detector`):
    the chromaticity of each instance's summed lit pixels in each frame (bright pixels weigh
    more: their uint8 rounding moves it less), merged greedily (most pixels first) within
    :data:`COLOUR_MERGE`; the :data:`MAX_COLOURS` covering most pixels are kept, less those
    under :data:`MIN_COLOUR_SHARE`."""
    seen: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(types)]  # (pixels, colour)
    for rgb, type_map, *rest in frames:
        instances = rest[0] if rest else type_map
        sel = lit_pixels(rgb) & (type_map > 0)
        # one key per (type, instance) pair, in the order of the type, then the instance
        key = type_map[sel].astype(np.int64) << 32 | instances[sel].astype(np.int64)  # (n,)
        pairs, which = np.unique(key, return_inverse=True)
        pixels, lit = np.bincount(which, minlength=len(pairs)), rgb[sel]  # (pairs,), (n, 3)
        sums = np.stack([np.bincount(which, lit[:, ch], len(pairs)) for ch in range(3)],
                        axis=1).astype(np.int64)  # (pairs, 3): exact, far below 2**53
        for pair, n, total in zip(pairs, pixels, sums):
            seen[int(pair >> 32) - 1].append((int(n), chromaticity(total)))
    out = []
    for found in seen:
        centres: list[np.ndarray] = []
        weight: list[int] = []
        for n, colour in sorted(found, key=lambda pair: -pair[0]):
            near = [j for j, c in enumerate(centres) if np.abs(c - colour).sum() <= COLOUR_MERGE]
            if near:
                weight[near[0]] += n
            else:
                centres.append(colour)
                weight.append(n)
        order = np.argsort(weight, kind="stable")[::-1][:MAX_COLOURS]
        keep = [j for j in order if weight[j] >= MIN_COLOUR_SHARE * sum(weight)] or order[:1]
        out.append(np.array([centres[j] for j in keep], np.float32).reshape(-1, 3))
    return out


def colour_reach(colours: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """(mean, reach) of ``colours`` ((C, 3) float32): their mean, and how far from it a pixel
    within the largest of :data:`RADII` of one of them can be (their largest distance from the
    mean plus that radius, plus :data:`HULL_MARGIN` for rounding)."""
    mean = colours.mean(axis=0)
    return mean, np.float32(float(np.abs(colours - mean).sum(-1).max()) + RADII[-1] + HULL_MARGIN)


def radius_counts(rows: np.ndarray, colours: np.ndarray, reach: tuple | None = None
                  ) -> np.ndarray:
    """(len(RADII),) int64: how many of the pixels ``rows`` ((3, P) float32 chromaticities,
    a row per channel) are within each of :data:`RADII` (L1) of one of ``colours`` ((C, 3)
    float32, C >= 1), the distance summed one channel at a time (faster than over a last axis
    of 3, the same sums).

    Only the pixels within ``reach`` (:func:`colour_reach`, computed when not given) of the
    colours' mean are measured against every colour: by the triangle inequality no other
    pixel is within the largest radius of any of them. The counts are those of measuring every
    pixel (tested), at ~1/C of the cost where most pixels are of other colours."""
    mean, far = colour_reach(colours) if reach is None else reach
    near = np.abs(rows[0] - mean[0])
    near += np.abs(rows[1] - mean[1])
    near += np.abs(rows[2] - mean[2])
    rows = rows[:, near <= far]  # (3, P')
    dist = np.full(rows.shape[1], np.inf, np.float32)
    for colour in colours:
        d = np.abs(rows[0] - colour[0])
        d += np.abs(rows[1] - colour[1])
        d += np.abs(rows[2] - colour[2])
        np.minimum(dist, d, out=dist)
    bins = np.searchsorted(np.asarray(RADII, np.float32), dist)  # first radius holding it
    return np.cumsum(np.bincount(bins, minlength=len(RADII) + 1))[:-1]


def fit_colour_detector(frames: Iterable[tuple], targets: list[str],
                        fitted_on: dict | None = None) -> ColourDetector:
    """Fit a :class:`ColourDetector` of ``targets`` on ``frames``: (rgb (H, W, 3) uint8, type
    map (H, W) with k + 1 where ``targets[k]`` is and 0 elsewhere[, instance ids (H, W)])
    tuples; without instance ids, a type's pixels in a frame count as one instance.

    ``frames`` is read twice, first for the colours, then for the radii: a list, or an iterable
    giving the same frames each time it is iterated (``spoc-detector fit`` renders them again),
    so that no more than one frame need be held at a time.

    A type's colours are its instances' (:func:`type_colours`): assets of one type differ in
    colour, and a single median between them misses the ones far from it. Its radius and
    smallest detection are the pair of :data:`RADII` x :data:`MIN_PIXELS` that best tells the
    frames showing the type from the others (F1 of "at least that many pixels within the
    radius of one of its colours" against "any pixel of the type"). A type never seen lit
    keeps no colour and is never detected."""
    colours = type_colours(frames, len(targets))
    fitted = [k for k in range(len(targets)) if len(colours[k])]
    radii = np.asarray(RADII, np.float32)
    reach = {k: colour_reach(colours[k]) for k in fitted}
    within_rows, shown_rows = [], []  # per frame: pixels within each radius, types shown
    for rgb, types, *_ in frames:
        c, lit = lit_chromaticity(rgb)
        rows = np.ascontiguousarray(c[lit].T)  # (3, P) lit pixels
        within_rows.append([radius_counts(rows, colours[k], reach[k]) for k in fitted])
        shown_rows.append(np.isin(np.asarray(fitted) + 1, types))
    num_frames = len(within_rows)
    within = np.array(within_rows, np.int64).reshape(num_frames, len(fitted), len(radii))
    shown = np.array(shown_rows, bool).reshape(num_frames, len(fitted))
    centre, radius, least, f1s = {}, {}, {}, {}
    for j, k in enumerate(fitted):
        scores = {}  # (radius index, min pixels) -> F1
        for r in range(len(radii)):
            for m in MIN_PIXELS:
                said = within[:, j, r] >= m
                tp = int((said & shown[:, j]).sum())
                scores[(r, m)] = 2 * tp / max(int(said.sum()) + int(shown[:, j].sum()), 1)
        best = max(scores.values())
        # the widest radius within F1_SLACK of the best: new assets' colours vary about the
        # fitted ones, so a margin costs little on the fit frames and keeps them detected
        r, m = max((pair for pair, f1 in scores.items() if f1 >= best - F1_SLACK),
                   key=lambda pair: (pair[0], -pair[1]))
        name = targets[k]
        centre[name] = tuple(tuple(float(x) for x in row) for row in colours[k])
        radius[name], least[name] = round(float(radii[r]), 3), int(m)
        f1s[name] = round(scores[(r, m)], 4)
    info = dict(fitted_on or {}, frames=num_frames, frame_f1=f1s)
    return ColourDetector(centre, radius, least, info)
