"""Frames to the policy's input resolution: the same resize for the training loader and for
rollouts, so that training and acting see the same pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize uint8 frames (N, 3, H, W) to ``size`` (h, w), keeping the aspect ratio.

    Scales so the frame covers ``size`` (bilinear with antialiasing, torch's uint8
    channels-last kernel: ~0.1 ms a 224x384 frame), then centre-crops. The loader and ``act``
    both call this, so training and rollout pixels match.
    """
    h, w = size
    if tuple(frames.shape[-2:]) == (h, w):
        return frames
    rh, rw, top, left = cover_crop(tuple(frames.shape[-2:]), size)
    frames = frames.contiguous(memory_format=torch.channels_last)
    out = F.interpolate(frames, size=(rh, rw), mode="bilinear", antialias=True,
                        align_corners=False)  # (N, 3, rh, rw) uint8
    return out[..., top:top + h, left:left + w]


def cover_crop(in_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(rh, rw, top, left): the scaled size that covers ``size`` (h, w) keeping the aspect ratio
    of ``in_size``, and the offsets of the centred crop (:func:`resize_frames`)."""
    (in_h, in_w), (h, w) = in_size, size
    scale = max(h / in_h, w / in_w)
    rh, rw = max(h, round(in_h * scale)), max(w, round(in_w * scale))
    return rh, rw, (rh - h) // 2, (rw - w) // 2


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per-pixel class maps (N, H, W) uint8 to ``size`` (h, w) as :func:`resize_frames` moves
    the frames' pixels (nearest neighbour: classes are not blended)."""
    h, w = size
    if tuple(labels.shape[-2:]) == (h, w):
        return labels
    rh, rw, top, left = cover_crop(tuple(labels.shape[-2:]), size)
    out = F.interpolate(labels[:, None], size=(rh, rw), mode="nearest-exact")[:, 0]
    return out[..., top:top + h, left:left + w]
