"""The colour detector at act time: the target's box read from the RGB frame alone.

It stands where the simulator's box (:func:`sim.detect.target_box`) stands in a policy
trained with the target's box, and finds the map agent's targets (:mod:`agents.mapper`).
``spoc-detector fit`` fits it on training frames (:mod:`training.detector.fit`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import InputError
from common.files import json_bytes, write_atomic
from sim.detect import BOX_FEATURES, region_box
from sim.scene import chromaticity

MIN_BRIGHTNESS = 60
"""A pixel takes part in detection when its R + G + B is at least this: the chromaticity of
a dark pixel is noise."""

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
                raise InputError(f"'centre.{name}' (an RGB chromaticity or a list of them)")
            rows = rows.reshape(-1, 3)
            colours[name] = tuple(tuple(float(x) for x in row) for row in rows)
            mean = rows.mean(axis=0)
            self._hull[name] = (mean, float(np.abs(rows - mean).sum(-1).max()))
        object.__setattr__(self, "centre", colours)

    def mask(self, rgb: np.ndarray, target: str) -> np.ndarray:
        """(H, W) bool: the pixels of ``rgb`` ((H, W, 3) uint8) taken for ``target``: lit, and
        within the radius of one of its colours in chromaticity, compared times the pixel's
        sum (no division) one colour channel at a time (faster than over a last axis of 3,
        same mask: ``scripts/bench/bench_detector.py``). Several colours are tested only on the
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
            raise InputError(f"{where}: field {e} is missing or malformed; write the file "
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
            raise InputError(f"{path}: not a readable detector ({e}); write one with "
                             "`spoc-detector fit`") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: not a detector; write one with `spoc-detector fit`")
        return cls.from_json(data, str(path))
