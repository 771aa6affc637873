"""Episode videos of an evaluation: which episodes are filmed (:func:`choose_videos`: successes
and failures by how they ended), and their frames (:class:`EpisodeVideo`): the egocentric
view beside a top-down map with the path so far and the goal marked, over a line that names
the goal and the action taken from that frame, streamed into H.264 (PyAV) so a long episode is
never held in memory."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from datagen.constants import TASK_OBJECTNAV
from datagen.episodes import HouseContext
from eval.metrics import HOW_ENDED, EpisodeResult, how_ended
from eval.slots import video_slots
from sim.lattice import ACTIONS
from sim.topdown import MapFrame, draw_segment, topdown_image

VIDEO_DIR = "videos"
VIDEO_FPS = 8
MIN_VIDEO_HEIGHT = 192
CAPTION_HEIGHT = 16
"""Rows of the line under each frame (goal, step, action)."""
TOPDOWN_PX_PER_M = 40.0
"""Pixels per metre of the top-down map (:func:`sim.topdown.topdown_image`'s default)."""
GOAL_COLOR = (255, 0, 255)
"""Magenta on the map: the goal cells and, for ObjectNav, the outline of each target."""
GOAL_CELL = 0.1
"""Side in metres of the square that marks a goal cell."""


def choose_videos(results: list[EpisodeResult], count: int, max_steps: int) -> list[int]:
    """The episodes to film, a function of the results alone: successes and failures by how
    they ended (:data:`eval.metrics.HOW_ENDED`), taken in turn (a success, one that ended away
    from the goal, one that timed out, a success, ...; a kind with none left is passed over),
    each kind's spread evenly over its episodes in episode order. Returned kind by kind."""
    groups: dict[str, list[int]] = {kind: [] for kind in HOW_ENDED}
    for r in sorted(results, key=lambda r: r.episode):
        groups[how_ended(r, max_steps)].append(r.episode)
    take = dict.fromkeys(HOW_ENDED, 0)
    left = min(max(count, 0), len(results))
    while left:
        for kind in HOW_ENDED:
            if left and take[kind] < len(groups[kind]):
                take[kind] += 1
                left -= 1
    return [groups[kind][k] for kind in HOW_ENDED
            for k in sorted(video_slots(len(groups[kind]), take[kind]))]


@lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def caption_strip(text: str, width: int, height: int = CAPTION_HEIGHT) -> np.ndarray:
    """(height, width, 3) uint8: ``text`` in white on black, left-aligned (Pillow's default
    font: the same pixels for the same text)."""
    img = Image.new("RGB", (width, height))
    ImageDraw.Draw(img).text((4, 2), text, fill=(255, 255, 255), font=_font())
    return np.asarray(img)


def video_frame(ego: np.ndarray, topdown: np.ndarray, caption: str | None = None,
                min_height: int = MIN_VIDEO_HEIGHT) -> np.ndarray:
    """The egocentric frame (H, W, 3), enlarged by an integer factor to at least
    ``min_height`` rows, beside the top-down map scaled to the same height, over the
    ``caption`` line (none without one), padded to even sides for H.264's 4:2:0 chroma:
    (H', W', 3) uint8."""
    k = max(1, -(-min_height // ego.shape[0]))
    ego = np.repeat(np.repeat(ego, k, axis=0), k, axis=1)  # (kH, kW, 3)
    h = ego.shape[0]
    th, tw = topdown.shape[:2]
    new_w = max(1, round(tw * h / th))
    rows = np.minimum((np.arange(h) * th / h).astype(int), th - 1)
    cols = np.minimum((np.arange(new_w) * tw / new_w).astype(int), tw - 1)
    side = topdown[rows][:, cols]  # nearest-neighbour resize to (h, new_w, 3)
    frame = np.concatenate([ego, np.full((h, 2, 3), 255, np.uint8), side], axis=1)
    if caption is not None:
        frame = np.concatenate([frame, caption_strip(caption, frame.shape[1])], axis=0)
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)))


def goal_marks(ctx: HouseContext, goal: np.ndarray, task: str, target: str,
               px_per_m: float = TOPDOWN_PX_PER_M) -> np.ndarray:
    """(H, W) uint8 marks of the goal on the top-down map (:func:`sim.topdown.topdown_image` at
    ``px_per_m``): 2 where :data:`GOAL_COLOR` goes, 1 for its black edge, 0 elsewhere. A
    :data:`GOAL_CELL` square on each lattice cell where a state of the goal set ``goal`` ((N,)
    bool over ``ctx.table``'s nodes) lies, and for ObjectNav the outline of each instance of
    the target."""
    frame = MapFrame(ctx.scene, px_per_m)
    marks = np.zeros((frame.height, frame.width, 3), np.uint8)  # the helpers draw in colour
    half = max(1, round(GOAL_CELL * px_per_m / 2))
    centres = [frame.to_px(np.array(ctx.lattice.position(int(i), int(j)))).round().astype(int)
               for i, j in np.unique(ctx.table.states[np.asarray(goal, bool)][:, :2], axis=0)]
    for value, grow in ((1, 1), (2, 0)):
        for c, r in centres:
            marks[max(r - half - grow, 0):r + half + grow,
                  max(c - half - grow, 0):c + half + grow] = value
    if task == TASK_OBJECTNAV:
        boxes = ctx.scene.boxes
        width = max(1.5, 0.05 * px_per_m)
        for value, extra in ((1, 2.0), (2, 0.0)):
            for corners in boxes.footprints()[np.asarray(boxes.object_type) == target]:
                px = frame.to_px(corners)  # (4, 2)
                for a, b in zip(px, np.roll(px, -1, axis=0)):
                    draw_segment(marks, a, b, (value,) * 3, width + extra)
    return marks[..., 0]


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


class EpisodeVideo:
    """One frame per state of an episode: the egocentric view beside the top-down map with the
    path so far and the goal in :data:`GOAL_COLOR` edged in black (:func:`goal_marks`; the
    path and the agent are drawn over it), over the line ``task: target | step k: action``,
    the action being the one taken from that state. A state's frame is written once its
    action is known (:meth:`act`); :meth:`close` writes the last one of an episode that ran
    out of steps."""

    def __init__(self, path: Path, ctx: HouseContext, task: str, target: str,
                 goal: np.ndarray):
        self.writer, self.ctx = VideoWriter(path), ctx
        self.goal_text = f"{task}: {target}"
        self.trail: list[tuple[float, float]] = []
        self.static = topdown_image(ctx.scene, ctx.lattice, px_per_m=TOPDOWN_PX_PER_M)
        self.marks = goal_marks(ctx, goal, task, target)  # (H, W)
        self.pending: tuple[np.ndarray, np.ndarray] | None = None  # (ego, map) of the state
        self.steps = 0

    def add(self, rgb: np.ndarray, pose) -> None:
        """The state the agent is now in: its frame and pose (a :class:`sim.interface.Pose`)."""
        if not self.trail or self.trail[-1] != (pose.x, pose.z):
            self.trail.append((pose.x, pose.z))
        top = topdown_image(self.ctx.scene, self.ctx.lattice, path=self.trail, pose=pose,
                            px_per_m=TOPDOWN_PX_PER_M)
        free = np.all(top == self.static, axis=-1)  # (H, W): not under the path or the agent
        top[free & (self.marks == 1)] = 0
        top[free & (self.marks == 2)] = GOAL_COLOR
        self.pending = (rgb, top)

    def act(self, action: int) -> None:
        """The action taken from the current state: writes its frame."""
        self.steps += 1
        self._write(f"step {self.steps}: {ACTIONS[action]}")

    def _write(self, what: str) -> None:
        if self.pending is not None:
            ego, top = self.pending
            self.writer.add(video_frame(ego, top, f"{self.goal_text} | {what}"))
            self.pending = None

    def close(self) -> None:
        self._write("out of steps")
        self.writer.close()


def video_name(episode: int) -> str:
    """Path of an episode's video relative to the run directory."""
    return f"{VIDEO_DIR}/episode-{episode:05d}.mp4"


def video_episode(name: str) -> int:
    """The episode index of a :func:`video_name`."""
    return int(Path(name).stem.rsplit("-", 1)[1])
