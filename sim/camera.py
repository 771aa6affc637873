"""The egocentric camera: intrinsics and pose conventions shared by every renderer."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.errors import InputError


@dataclass(frozen=True)
class CameraConfig:
    """A pinhole camera on the agent, pitched down like AI2-THOR's ObjectNav horizon."""

    height: int = 224
    """Image height in pixels."""
    width: int = 384
    """Image width in pixels."""
    vfov: float = 59.0
    """Vertical field of view in degrees."""
    eye_height: float = 1.5
    """Camera height above the floor in metres."""
    pitch: float = 30.0
    """Downward pitch in degrees (0 is level, positive looks down)."""

    def __post_init__(self):
        if not (8 <= self.height <= 4096 and 8 <= self.width <= 4096):
            raise InputError(f"camera.height/width: {self.height}x{self.width} out of range; "
                             "use 8..4096 pixels")
        if not 1.0 <= self.vfov <= 170.0:
            raise InputError(f"camera.vfov: {self.vfov} out of range; use 1..170 degrees")
        if not -89.0 <= self.pitch <= 89.0:
            raise InputError(f"camera.pitch: {self.pitch} out of range; use -89..89 degrees")

    @property
    def focal(self) -> float:
        """Focal length in pixels (square pixels)."""
        return (self.height / 2) / math.tan(math.radians(self.vfov) / 2)

    @property
    def hfov(self) -> float:
        """Horizontal field of view in degrees."""
        return math.degrees(2 * math.atan((self.width / 2) / self.focal))

    def intrinsics(self) -> np.ndarray:
        """3x3 K: pixel (u right, v down) = K @ (x right, y down, z forward) / z."""
        f = self.focal
        return np.array([[f, 0, self.width / 2], [0, f, self.height / 2], [0, 0, 1.0]])

    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) ray directions in the *pitched* camera frame (x right, y down, z forward)
        through pixel centres, with z = 1."""
        f = self.focal
        u = (np.arange(self.width) + 0.5 - self.width / 2) / f
        v = (np.arange(self.height) + 0.5 - self.height / 2) / f
        uu, vv = np.meshgrid(u, v)
        return np.stack([uu, vv, np.ones_like(uu)], axis=-1)
