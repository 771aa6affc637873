"""The training augmentation of a chunk: a small shift and a colour jitter, the same over the
chunk, and the target's box moved with the shifted frames."""

from __future__ import annotations

import numpy as np
import torch


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
