"""Ground-truth detections of the target: where in the frame the goal's object is.

SPOC (Ehsani et al. 2023) trains a variant of its policy on the simulator's bounding box of
the target ("GT detection"), which measures what navigation reaches once perception is
solved; a detector can take the simulator's place at deployment. Here the box comes from the
instance-id image every backend renders (:class:`sim.env.Observation`): ids number the house
JSON's objects the same way in both backends (:mod:`sim.thor`), so one table of object types
per house turns ids into "is a target".
"""

from __future__ import annotations

import numpy as np

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


def target_box(ids: np.ndarray, is_target: np.ndarray) -> np.ndarray:
    """(6,) float32 box feature (:data:`BOX_FEATURES`) of the target instance with the most
    pixels in the (H, W) instance-id image, all zeros when no target pixel is in view."""
    counts = np.bincount(ids.ravel(), minlength=len(is_target))[:len(is_target)]
    counts = np.where(is_target, counts, 0)
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
