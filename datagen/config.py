"""The datagen config: everything that decides the bytes of a split's shards."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from common.errors import InputError
from datagen.constants import FRAME_KINDS, FRAMES_VIDEO
from datagen.tasks import TaskConfig
from sim.camera import CameraConfig
from sim.lattice import AgentConfig

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
"""What ``--video.preset`` takes (x264's presets)."""


class ConfigError(InputError):
    """A datagen option that cannot be used; the message names it and what it takes."""


@dataclass
class VideoConfig:
    """How episode frames are encoded (H.264 in MP4, yuv420p, one thread: deterministic)."""

    fps: int = 10
    """Frame rate written in the MP4 (frames are steps; it only matters for playback)."""
    crf: int = 26
    """x264 constant rate factor: lower is better quality and bigger (18..30 is sane)."""
    preset: str = "ultrafast"
    """x264 preset."""


@dataclass
class DatagenConfig:
    """Everything that decides the bytes of a split's shards."""

    houses: str = "houses/train.jsonl.gz"
    """House dataset file (.jsonl.gz, .jsonl or one .json) for this split."""
    split: str = "train"
    """Split name: the shard folder under the dataset directory."""
    num_shards: int = 1
    """Number of shards in the split."""
    episodes_per_shard: int = 64
    """Episodes per shard (fewer only when a shard's houses run out of valid episodes)."""
    episodes_per_house: int = 16
    """Episodes drawn per house before moving on (amortises its goal-set cost)."""
    seed: int = 0
    """Base seed; shard k's episodes depend only on (config, seed, k)."""
    max_steps: int = 500
    """Episodes whose expert path is longer than this many actions are skipped."""
    action_noise: float = 0.0
    """Probability that a step executes another motion than the expert's (DART noise
    injection: labels stay the expert's, ``executed.npy`` holds what was taken, meta
    ``source`` is ``expert-noise``). 0: plain expert episodes."""
    camera: CameraConfig = field(default_factory=CameraConfig)
    """The agent's camera."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """The lattice agent."""
    tasks: TaskConfig = field(default_factory=TaskConfig)
    """Tasks, targets and success thresholds."""
    frames: str = FRAMES_VIDEO
    """What the samples hold of the frames: ``video`` (``rgb.mp4``, H.264) or ``none`` (poses,
    actions and labels only, ~15x smaller at 224x384: the loaders render the frames at the stored
    poses from the house file the dataset holds, at the resolution they train at)."""
    video: VideoConfig = field(default_factory=VideoConfig)
    """Frame encoding (``frames: video``)."""

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", self.split):
            raise ConfigError(f"split: {self.split!r} must be a plain name like 'train' or "
                              "'val'")
        for name in ("num_shards", "episodes_per_shard", "episodes_per_house", "max_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: {getattr(self, name)} must be >= 1")
        if self.seed < 0:
            raise ConfigError(f"seed: {self.seed} must be >= 0")
        if self.frames not in FRAME_KINDS:
            raise ConfigError(f"frames: {self.frames!r} is not one of {', '.join(FRAME_KINDS)} "
                              "(video: H.264 frames in every sample; none: poses only, the "
                              "frames rendered when the dataset is read)")
        if self.frames == FRAMES_VIDEO and (self.camera.height % 2 or self.camera.width % 2):
            raise ConfigError(f"camera.height/width: {self.camera.height}x{self.camera.width} "
                              "must be even for yuv420p video (or use --frames none)")
        if not 0 <= self.action_noise < 1:
            raise ConfigError(f"action_noise: {self.action_noise} must be in [0, 1)")
        if not 0 <= self.video.crf <= 51:
            raise ConfigError(f"video.crf: {self.video.crf} must be in 0..51")
        if self.video.fps < 1:
            raise ConfigError(f"video.fps: {self.video.fps} must be >= 1")
        if self.video.preset not in X264_PRESETS:
            raise ConfigError(f"video.preset: {self.video.preset!r} is not an x264 preset; use "
                              f"one of {', '.join(X264_PRESETS)}")

    def dataset_config(self) -> dict:
        """The part every split of a dataset must share."""
        d = dataclasses.asdict(self)
        return {k: d[k] for k in ("camera", "agent", "tasks", "video", "max_steps", "frames")}

    def split_config(self) -> dict:
        """The part that decides one split's shards (besides the house file)."""
        return {k: getattr(self, k) for k in ("num_shards", "episodes_per_shard",
                                              "episodes_per_house", "seed", "action_noise")}
