"""A vectorised, output-identical replacement for procthor's rectangle join.

``procthor.generation.objects.OrthogonalPolygon._join_neighboring_rectangles`` (procthor
0.0.1.dev2) takes a set of axis-aligned rectangles ``(x0, z0, x1, z1)`` and returns every
rectangle obtained by joining two of them that share exactly two corner points, minus the
input. It compares every ordered pair in pure Python (O(n^2) set constructions) and is ~97% of
house-generation time.

Output identity matters, not just equal sets: the caller iterates the returned set (the
rectangle sampled for the next object depends on set iteration order), and a CPython set's
iteration order depends on the order elements were first inserted. So this module

1. computes the match matrix with numpy, visiting the pairs in the exact order the original
   loops visit them (see :func:`_pair_orders`);
2. keeps every joined rectangle at its first occurrence, computing it with the original's
   Python ``min``/``max`` expression (so even ``-0.0`` vs ``0.0`` picks match);
3. builds the result with the same set operations the original ends with.

Corner sets: a rectangle's four corners ``{(a, c), (a, d), (b, d), (b, c)}`` are the product
``{a, b} x {c, d}``, so two rectangles share ``|X1 & X2| * |Z1 & Z2|`` corners.
Coordinates are assumed finite (no NaN), as procthor's are.
"""

from __future__ import annotations

import numpy as np

Rect = tuple[float, float, float, float]

_BLOCK_ELEMS = 1 << 22  # pair-matrix elements evaluated per numpy block (bounds memory)


def join_neighboring_rectangles_reference(rects: set[Rect]) -> set[Rect]:
    """procthor's algorithm, verbatim apart from names: the oracle for tests."""
    orig_rects = rects.copy()
    out = set()
    for rect1 in rects.copy():
        x0_0, z0_0, x1_0, z1_0 = rect1
        points1 = {(x0_0, z0_0), (x0_0, z1_0), (x1_0, z1_0), (x1_0, z0_0)}
        for rect2 in rects - {rect1}:
            x0_1, z0_1, x1_1, z1_1 = rect2
            points2 = {(x0_1, z0_1), (x0_1, z1_1), (x1_1, z1_1), (x1_1, z0_1)}
            if len(points1 & points2) == 2:
                out.add(_joined(rect1, rect2))
    return out - orig_rects


def _joined(rect1: Rect, rect2: Rect) -> Rect:
    """The original's join expression, including its ``x1_1`` typo (``x0_1`` never enters
    the minimum). The typo only matters when rect2 starts left of rect1, and then the result
    is rect1 itself, which the final ``- orig_rects`` removes."""
    x0_0, z0_0, x1_0, z1_0 = rect1
    x0_1, z0_1, x1_1, z1_1 = rect2
    return (
        min(x0_0, x1_0, x1_1, x1_1),
        min(z0_0, z1_0, z0_1, z1_1),
        max(x0_0, x1_0, x0_1, x1_1),
        max(z0_0, z1_0, z0_1, z1_1),
    )


def _pair_orders(rects: set[Rect]) -> tuple[list[Rect], list[list[Rect]] | None]:
    """The outer iteration order and, for small sets, each inner iteration order.

    The outer loop iterates ``rects.copy()``. The inner loop iterates ``rects - {rect1}``:
    for ``len(rects) >= 8`` CPython's ``set_difference`` copies ``rects`` (same layout as the
    outer copy) and discards ``rect1``, so the inner order is the outer order without rect1
    (returned as ``None``). Smaller sets build a fresh set whose order can differ, so it is
    read off explicitly.
    """
    outer = list(rects.copy())
    if len(rects) >> 2 > 1:
        return outer, None
    return outer, [list(rects - {r}) for r in outer]


def _shared_counts(a: np.ndarray, b: np.ndarray, i0: int, i1: int, j0: int, j1: int
                   ) -> np.ndarray:
    """Number of distinct common values between ``{a[i], b[i]}`` and ``{a[j], b[j]}``
    for rows ``i`` in ``[i0, i1)`` and all ``j``: shape (i1 - i0, n)."""
    ai, bi = a[i0:i1, None], b[i0:i1, None]
    aj, bj = a[None, j0:j1], b[None, j0:j1]
    first = (ai == aj) | (ai == bj)
    second = ((bi == aj) | (bi == bj)) & (bi != ai)
    return first.astype(np.int8) + second.astype(np.int8)


def _matching_pairs(outer: list[Rect]) -> np.ndarray:
    """(k, 2) int array of (i, j) with rect i and rect j sharing exactly two corners,
    in row-major order (i over ``outer``, then j over ``outer``, skipping j == i)."""
    arr = np.asarray(outer, dtype=np.float64).reshape(-1, 4)
    n = len(arr)
    x0, z0, x1, z1 = arr.T
    rows = max(1, _BLOCK_ELEMS // max(n, 1))
    found = []
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        shared = _shared_counts(x0, x1, i0, i1, 0, n) * _shared_counts(z0, z1, i0, i1, 0, n)
        ii, jj = np.nonzero(shared == 2)  # row-major; j == i shares 4 (or 1) corners, never 2
        found.append(np.stack([ii + i0, jj], axis=1))
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def _first_occurrences(outer: list[Rect], pairs: np.ndarray) -> list[Rect]:
    """The distinct joined rectangles in the order the original first adds them."""
    if len(pairs) == 0:
        return []
    arr = np.asarray(outer, dtype=np.float64)
    a, b = arr[pairs[:, 0]], arr[pairs[:, 1]]
    joined = np.stack([
        np.minimum(np.minimum(a[:, 0], a[:, 2]), b[:, 2]),
        np.minimum(np.minimum(a[:, 1], a[:, 3]), np.minimum(b[:, 1], b[:, 3])),
        np.maximum(np.maximum(a[:, 0], a[:, 2]), np.maximum(b[:, 0], b[:, 2])),
        np.maximum(np.maximum(a[:, 1], a[:, 3]), np.maximum(b[:, 1], b[:, 3])),
    ], axis=1)
    first = np.sort(_first_index_of_each_row(joined))
    if not np.any((arr == 0) & np.signbit(arr)):
        # No -0.0 anywhere: numpy's min/max values are exactly Python's.
        return [tuple(r) for r in joined[first].tolist()]
    return [_joined(outer[pairs[k, 0]], outer[pairs[k, 1]]) for k in first]


def _first_index_of_each_row(rows: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each distinct row (rows compared with ==).

    Rows are encoded as one int64 key over the ranks of their values (``np.unique`` treats
    -0.0 == 0.0 like Python does), which sorts much faster than ``np.unique(axis=0)``.
    """
    values, ranks = np.unique(rows, return_inverse=True)
    base = np.int64(len(values))
    if base ** 4 >= np.iinfo(np.int64).max:
        return np.unique(rows + 0.0, axis=0, return_index=True)[1]
    ranks = ranks.reshape(rows.shape).astype(np.int64)
    keys = ((ranks[:, 0] * base + ranks[:, 1]) * base + ranks[:, 2]) * base + ranks[:, 3]
    return np.unique(keys, return_index=True)[1]


def _first_occurrences_small(outer: list[Rect], inner: list[list[Rect]]) -> list[Rect]:
    """Same as :func:`_first_occurrences` for small sets with explicit inner orders."""
    seen: dict[Rect, None] = {}
    for rect1, others in zip(outer, inner):
        xs1, zs1 = {rect1[0], rect1[2]}, {rect1[1], rect1[3]}
        for rect2 in others:
            if len(xs1 & {rect2[0], rect2[2]}) * len(zs1 & {rect2[1], rect2[3]}) == 2:
                seen.setdefault(_joined(rect1, rect2))
    return list(seen)


def join_neighboring_rectangles(rects: set[Rect]) -> set[Rect]:
    """Drop-in, output-identical (same elements, same iteration order) replacement for
    ``OrthogonalPolygon._join_neighboring_rectangles(self, rects)``."""
    orig_rects = rects.copy()
    outer, inner = _pair_orders(rects)
    if inner is None:
        ordered = _first_occurrences(outer, _matching_pairs(outer))
    else:
        ordered = _first_occurrences_small(outer, inner)
    out = set()
    for rect in ordered:  # first-insertion order fixes the set's layout, as in the original
        out.add(rect)
    return out - orig_rects


def patched_method(self, rects: set[Rect]) -> set[Rect]:
    """``join_neighboring_rectangles`` with the method signature, for monkeypatching."""
    return join_neighboring_rectangles(rects)
