"""The simulator's box of the target: where in the frame the goal's object is, from the
instance ids.

SPOC (Ehsani et al. 2023) trains a variant of its policy on the simulator's bounding box of
the target ("GT detection"), which measures what navigation reaches once perception is
solved; a detector takes the simulator's place at deployment (:mod:`agents.detector`). The
simulator's box comes from the instance-id image every backend renders
(:class:`sim.interface.Observation`): ids number the house JSON's objects the same way in
both backends (:mod:`sim.thor`), so one table of object types per house turns ids into "is a
target" (:func:`target_box`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BOX_FEATURES = 6
"""Length of a box feature: seen, x0, y0, x1, y1 (fractions of the frame's width and
height), sqrt(pixels / frame pixels)."""


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
