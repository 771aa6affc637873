"""The pretraining losses and the validation's detection scores: per target type, cell and
frame precision and recall, the frame recall by the type's size in the frame
(:data:`SIZE_EDGES`) and the frame-level average precision (:data:`AP_MIN_PIXELS`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIZE_EDGES = (1, 12, 50, 200, 1000)
"""Lower edges of the size buckets of the frame recall, in pixels of the rendered frame (the
camera's resolution, whatever the training resolution): 1-11, 12-49, 50-199, 200-999, 1000+."""

AP_MIN_PIXELS = 50
"""The frame-level average precision ranks frames by a type's highest cell score and asks for
those where it covers at least this many rendered pixels before those without it (frames where
it shows less are left out): can the features tell the type apart at all, whatever the
threshold."""

SCORE_RANGE, SCORE_BINS = (-12.0, 12.0), 480
"""Logit histogram of the average precision (bins of 0.05; summed over DDP ranks)."""


def adaptive_bins(n: int, bins: int) -> list[tuple[int, int]]:
    """[start, end) of each of ``bins`` adaptive-pooling windows over ``n`` (torch's rule:
    floor(i n / bins) to ceil((i + 1) n / bins); neighbours overlap when ``bins`` does not
    divide ``n``)."""
    return [(i * n // bins, -(-(i + 1) * n // bins)) for i in range(bins)]


def object_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor,
                gamma: float = 0.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy of the cells, positives weighted by ``pos_weight``, each
    term scaled by (1 - p_t)^``gamma`` (focal loss; p_t the probability of the right answer);
    ``mask`` (bool, like ``target``): the cells that count, the mean taken over them."""
    if gamma == 0 and mask is None:
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weight = torch.where(target > 0, pos_weight, torch.ones_like(pos_weight))
    if gamma:
        weight = weight * (1 - torch.exp(-ce)) ** gamma
    if mask is None:
        return (weight * ce).mean()
    return (weight * ce * mask).sum() / mask.sum().clamp(min=1)


def cell_targets(pixels: torch.Tensor, min_pixels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-cell pixel counts (N, K, gh, gw) -> (targets float32, the cells that count or None):
    a cell is positive from ``min_pixels`` pixels of the type, negative at none, and left out
    of the loss in between (a type's few pixels far away say little about what it looks
    like)."""
    target = (pixels >= min_pixels).float()
    return target, (None if min_pixels <= 1 else (pixels == 0) | (pixels >= min_pixels))


def detection_counts(pred: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
    """(2, K, 3) long: hits, predictions and positives of each class over the cells (row 0) and
    over the frames, a frame counting a class when any of its cells does (row 1); ``pred`` and
    ``actual`` are (N, K, gh, gw) bool."""
    frame_pred, frame_actual = pred.flatten(2).any(2), actual.flatten(2).any(2)  # (N, K)
    rows = []
    for p, a, dims in ((pred, actual, (0, 2, 3)), (frame_pred, frame_actual, (0,))):
        rows.append(torch.stack([(p & a).sum(dims), p.sum(dims), a.sum(dims)], dim=-1))
    return torch.stack(rows)


def size_recall_counts(frame_pred: torch.Tensor, pixels: torch.Tensor,
                       edges: tuple[int, ...] = SIZE_EDGES) -> torch.Tensor:
    """(K, B, 2) long: per class and size bucket, the frames where the class is predicted and
    shows with that many pixels (hits), and the frames where it shows so (positives).
    ``frame_pred`` (N, K) bool, ``pixels`` (N, K) pixel counts, bucket b = [edges[b],
    edges[b + 1])."""
    bucket = torch.bucketize(pixels.long(), torch.tensor(edges, device=pixels.device),
                             right=True) - 1  # (N, K); -1 below the first edge
    onehot = bucket[..., None] == torch.arange(len(edges), device=pixels.device)  # (N, K, B)
    hits = (onehot & frame_pred[..., None]).sum(0)
    return torch.stack([hits, onehot.sum(0)], dim=-1)


def score_histogram(scores: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """(K, 2, SCORE_BINS) long: per class, the histogram of the frames' scores (N, K) over the
    frames without the class (row 0) and with at least ``AP_MIN_PIXELS`` of it (row 1)."""
    lo, hi = SCORE_RANGE
    k = scores.shape[1]
    idx = ((scores.float().clamp(lo, hi) - lo) * (SCORE_BINS / (hi - lo))).long()
    idx = idx.clamp(max=SCORE_BINS - 1)
    positive = (pixels >= AP_MIN_PIXELS).long()
    keep = (pixels == 0) | (pixels >= AP_MIN_PIXELS)
    codes = ((torch.arange(k, device=scores.device) * 2 + positive) * SCORE_BINS + idx)[keep]
    return torch.bincount(codes, minlength=k * 2 * SCORE_BINS).view(k, 2, SCORE_BINS)


def average_precision(hist: torch.Tensor) -> float | None:
    """Average precision from a (2, bins) negative/positive score histogram (frames in one bin
    count as tied, ranked together); None without positives."""
    neg, pos = hist.flip(-1).double()  # highest scores first
    if pos.sum() == 0:
        return None
    tp, fp = pos.cumsum(0), neg.cumsum(0)
    return float((pos * tp / (tp + fp).clamp(min=1)).sum() / pos.sum())


def false_positive_causes(logits: torch.Tensor, maps: torch.Tensor, absent: torch.Tensor,
                          num_types: int) -> torch.Tensor:
    """(K, A + 1) long: for each target class k, the frames without it where some cell still
    says k, counted by what the highest-scoring such cell mostly shows: object type a + 1 of
    ``maps`` (column a + 1), or no object at all (column 0: walls, floor, doors).

    ``logits`` (T, K, gh, gw) object scores; ``maps`` (T, h, w) uint8 object-type maps over
    all ``num_types`` types (0 = none) at the training resolution (``resize_labels``), cells
    as in ``cell_pixels``; ``absent`` (T, K) bool, frames where class k shows no pixel."""
    t, k, gh, gw = logits.shape
    out = torch.zeros(k, num_types + 1, dtype=torch.long)
    rows, cols = adaptive_bins(maps.shape[1], gh), adaptive_bins(maps.shape[2], gw)
    best, where = logits.flatten(2).max(2)  # (T, K)
    for f, c in zip(*torch.nonzero(absent & (best > 0), as_tuple=True)):
        (r0, r1), (c0, c1) = rows[int(where[f, c]) // gw], cols[int(where[f, c]) % gw]
        counts = torch.bincount(maps[f, r0:r1, c0:c1].flatten().long(),
                                minlength=num_types + 1)
        counts[0] = 0
        out[c, int(counts.argmax()) if counts.any() else 0] += 1
    return out


def bucket_names(edges: tuple[int, ...] = SIZE_EDGES) -> list[str]:
    """"12-49"-style names of the size buckets ("1000+" for the last)."""
    return [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+"]


def detection_table(names: list[str], counts: torch.Tensor, sizes: torch.Tensor,
                    scores: torch.Tensor) -> dict:
    """Per type: cell and frame precision / recall with their counts, the frame recall per
    size bucket (None where the bucket is empty) and the frame-level average precision with
    its base rate (what ranking the frames at random scores); ``counts`` from
    ``detection_counts``, ``sizes`` from ``size_recall_counts``, ``scores`` from
    ``score_histogram``, all summed over the validation set."""
    def ratio(a, b):
        return round(a / b, 4) if b else None

    out = {}
    for k, name in enumerate(names):
        row = {}
        for level, (hit, predicted, actual) in zip(("cell", "frame"), counts[:, k].tolist()):
            row[level] = {"precision": ratio(hit, predicted), "recall": ratio(hit, actual),
                          "hits": hit, "predicted": predicted, "actual": actual}
        row["frame_recall_by_pixels"] = [  # a list: JSON's sorted keys would misorder them
            {"pixels": bucket, "recall": ratio(hit, actual), "frames": actual}
            for bucket, (hit, actual) in zip(bucket_names(), sizes[k].tolist())]
        ap = average_precision(scores[k])
        negatives, positives = scores[k].sum(-1).tolist()
        row[f"frame_ap_{AP_MIN_PIXELS}px"] = {
            "ap": None if ap is None else round(ap, 4), "positives": positives,
            "negatives": negatives, "base_rate": ratio(positives, positives + negatives)}
        out[name] = row
    return out
