"""Fitting the colour detector (:class:`agents.detector.ColourDetector`) on training frames:
each target type's colours, and the radius and smallest region that best tell the frames
showing it from the others. ``spoc-detector fit`` (:mod:`training.detector.cli`) feeds it the
frames rendered again at a dataset's stored poses.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from agents.detector import HULL_MARGIN, ColourDetector, lit_chromaticity, lit_pixels
from sim.scene import chromaticity

RADII = tuple(np.round(np.arange(0.01, 0.161, 0.01), 3))
"""Candidate chromaticity radii (L1) a type's colour is fitted over."""

MIN_PIXELS = (1, 2, 3, 4, 6, 8, 12, 16)
"""Candidate smallest detections (pixels of one connected region)."""

F1_SLACK = 0.03
"""A type's radius is the widest whose frame F1 on the fit frames is this close to the best."""


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
