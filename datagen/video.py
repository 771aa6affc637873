"""The episodes' video: H.264 in MP4 (:func:`encode_mp4`, :func:`decode_frames`).

RGB goes to yuv420p by integer BT.601 (limited range, the matrix swscale uses by default),
chroma averaged over each 2x2 block, written straight into a PyAV frame
(:func:`yuv420p_frame`). It replaces swscale's rgb24 -> yuv420p conversion inside
``stream.encode`` (about a quarter of the encoding time at 224x384); integer arithmetic keeps
the bytes identical on every platform.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from numba import njit

from datagen.config import VideoConfig

ONE_SWSCALE_THREAD = {"threads": 1} if int(av.__version__.split(".")[0]) >= 17 else {}
"""Keyword for one-thread RGB conversion: PyAV >= 17 lets swscale start a thread per core;
older versions have no ``threads`` option and convert on the calling thread."""

_SHIFT = 16
_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB


def _fixed(scale: float, coeffs: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(int(round(scale * c * (1 << _SHIFT))) for c in coeffs)


# Y = 16 + 219/255 (KR R + KG G + KB B); Cb, Cr = 128 + 224/255 (...) of the 2x2 mean (the
# sum of four pixels, hence the / 4).
_Y = np.array(_fixed(219 / 255, (_KR, _KG, _KB)), np.int32)
_U = np.array(_fixed(224 / 255 / 4, (-_KR / (2 - 2 * _KB), -_KG / (2 - 2 * _KB), 0.5)), np.int32)
_V = np.array(_fixed(224 / 255 / 4, (0.5, -_KG / (2 - 2 * _KR), -_KB / (2 - 2 * _KR))), np.int32)
_Y_OFF = (16 << _SHIFT) + (1 << (_SHIFT - 1))  # offset plus rounding
_C_OFF = (128 << _SHIFT) + (1 << (_SHIFT - 1))


@njit(cache=True)
def _rgb_to_yuv420p(rgb, y, u, v, cy, cu, cv, y_off, c_off, shift):
    """rgb (H, W, 3) uint8 -> y (H, W), u and v (H / 2, W / 2) uint8 (H, W even)."""
    for k in range(rgb.shape[0] // 2):
        for c in range(rgb.shape[1] // 2):
            sr = sg = sb = 0
            for dk in range(2):
                for dc in range(2):
                    r = np.int32(rgb[2 * k + dk, 2 * c + dc, 0])
                    g = np.int32(rgb[2 * k + dk, 2 * c + dc, 1])
                    b = np.int32(rgb[2 * k + dk, 2 * c + dc, 2])
                    y[2 * k + dk, 2 * c + dc] = (cy[0] * r + cy[1] * g + cy[2] * b + y_off) >> shift
                    sr, sg, sb = sr + r, sg + g, sb + b
            u[k, c] = (cu[0] * sr + cu[1] * sg + cu[2] * sb + c_off) >> shift
            v[k, c] = (cv[0] * sr + cv[1] * sg + cv[2] * sb + c_off) >> shift


def _plane(frame: av.VideoFrame, i: int) -> np.ndarray:
    """Writable (height, width) view of plane ``i`` (rows are ``line_size`` bytes apart)."""
    p = frame.planes[i]
    return np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]


def yuv420p_frame(rgb: np.ndarray) -> av.VideoFrame:
    """A yuv420p VideoFrame of one (H, W, 3) uint8 RGB image (H, W even)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] % 2 \
            or rgb.shape[1] % 2:
        raise ValueError(f"frame of shape {rgb.shape} {rgb.dtype}: expected (H, W, 3) uint8 "
                         "with H and W even")
    h, w = rgb.shape[:2]
    frame = av.VideoFrame(w, h, "yuv420p")
    _rgb_to_yuv420p(rgb, _plane(frame, 0), _plane(frame, 1), _plane(frame, 2),
                    _Y, _U, _V, _Y_OFF, _C_OFF, _SHIFT)
    return frame


def encode_mp4(frames: Iterable[np.ndarray], height: int, width: int, video: VideoConfig) -> bytes:
    """H.264 MP4 bytes of (H, W, 3) uint8 frames; the same frames give the same bytes.

    Frames are converted to yuv420p by :func:`yuv420p_frame` (BT.601 limited
    range, as swscale's default, which decoders assume)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=video.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(video.crf), "preset": video.preset, "threads": "1"}
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(yuv420p_frame(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def decode_frames(mp4: bytes, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames ``start:stop`` of an mp4 (to the end when ``stop`` is None) -> uint8 (n, H, W, 3).

    Frames before ``start`` are decoded (H.264 needs them) but not converted to RGB. One
    decoder thread and one swscale context for the whole video (``frame.to_ndarray`` sets up
    a new one per frame, multi-threaded in PyAV >= 17, which costs more than the conversion):
    a loader worker is one core. Raises ``ValueError`` if the video ends before ``stop`` (or
    has no frames).
    """
    frames, count = [], 0
    to_rgb = VideoReformatter()
    with av.open(io.BytesIO(mp4), mode="r", format="mp4") as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        for frame in container.decode(stream):
            if count >= start:
                frames.append(to_rgb.reformat(frame, format="rgb24", **ONE_SWSCALE_THREAD)
                              .to_ndarray())
            count += 1
            if count == stop:
                break
    if not frames or (stop is not None and count < stop):
        raise ValueError(f"video has {count} frames, frames {start}:{stop} were asked for")
    return np.stack(frames)
