"""Episode videos of an evaluation: the egocentric frame beside a top-down map with the path,
streamed into H.264 (PyAV) so a long episode is never held in memory."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

VIDEO_DIR = "videos"
VIDEO_FPS = 8
MIN_VIDEO_HEIGHT = 192


def video_frame(ego: np.ndarray, topdown: np.ndarray, min_height: int = MIN_VIDEO_HEIGHT
                ) -> np.ndarray:
    """The egocentric frame (H, W, 3), enlarged by an integer factor to at least
    ``min_height`` rows, beside the top-down map scaled to the same height, padded to even
    sides for H.264's 4:2:0 chroma: (H', W', 3) uint8."""
    k = max(1, -(-min_height // ego.shape[0]))
    ego = np.repeat(np.repeat(ego, k, axis=0), k, axis=1)  # (kH, kW, 3)
    h = ego.shape[0]
    th, tw = topdown.shape[:2]
    new_w = max(1, round(tw * h / th))
    rows = np.minimum((np.arange(h) * th / h).astype(int), th - 1)
    cols = np.minimum((np.arange(new_w) * tw / new_w).astype(int), tw - 1)
    side = topdown[rows][:, cols]  # nearest-neighbour resize to (h, new_w, 3)
    frame = np.concatenate([ego, np.full((h, 2, 3), 255, np.uint8), side], axis=1)
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)))


class VideoWriter:
    """Streams frames into an H.264 mp4 (PyAV), so a long episode is never held in memory."""

    def __init__(self, path: Path, fps: int = VIDEO_FPS):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.stem + ".tmp.mp4")
        self._container = av.open(str(self._tmp), mode="w")
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": "veryfast", "crf": "23"}
        self._started = False

    def add(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 frame with even H and W (all frames the same size)."""
        if not self._started:
            self._stream.height, self._stream.width = frame.shape[:2]
            self._started = True
        video_frame_ = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame_):
            self._container.mux(packet)

    def close(self) -> Path:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._tmp.replace(self.path)
        return self.path


def video_name(episode: int) -> str:
    """Path of an episode's video relative to the run directory."""
    return f"{VIDEO_DIR}/episode-{episode:05d}.mp4"


def video_episode(name: str) -> int:
    """The episode index of a :func:`video_name`."""
    return int(Path(name).stem.rsplit("-", 1)[1])
