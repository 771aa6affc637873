"""The environment interface every backend implements, and the values it passes.

``Env.reset(house, pose)`` places the agent; ``Env.step(action)`` applies one of
:data:`sim.lattice.ACTIONS`; ``Env.observation`` holds RGB, depth and instance ids;
``Env.visible_objects()`` maps object ids to pixel counts and distances. The backends:
:class:`sim.env.EmbeddedEnv` (the compiled renderer) and :class:`sim.thor.ThorEnv`
(AI2-THOR), built by :func:`sim.env.make_env`.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import numpy as np

from common.errors import InputError
from sim.lattice import ACTIONS


@dataclass(frozen=True)
class Pose:
    """Agent position on the floor (x, z metres) and heading (yaw degrees, 0 faces +z)."""

    x: float
    z: float
    yaw: float

    @classmethod
    def parse(cls, text: str) -> Pose:
        """``"X,Z,HEADING"`` -> Pose (the ``--pose`` syntax)."""
        try:
            x, z, yaw = (float(v) for v in text.split(","))
        except ValueError:
            raise InputError(f"--pose {text!r}: expected X,Z,HEADING (metres, metres, degrees)"
                             ) from None
        if not all(math.isfinite(v) for v in (x, z, yaw)):
            raise InputError(f"--pose {text!r}: every value must be a finite number")
        return cls(x, z, yaw)


@dataclass
class Observation:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32, metres along the optical axis
    ids: np.ndarray  # (H, W) int32 instance ids, 0 = structure


@dataclass(frozen=True)
class VisibleObject:
    object_id: str
    object_type: str
    pixels: int
    """Pixels of the object in the current frame."""
    distance: float
    """Horizontal distance in metres from the agent's centre to the object's footprint."""


@dataclass(frozen=True)
class StepResult:
    observation: Observation
    success: bool
    """False when a move was blocked (the agent stayed in place)."""


def action_index(action: int | str) -> int:
    """An action given by name or index, checked, as an index into ACTIONS."""
    if isinstance(action, str):
        if action not in ACTIONS:
            raise ValueError(f"action {action!r} is not one of {ACTIONS}")
        return ACTIONS.index(action)
    if not 0 <= int(action) < len(ACTIONS):
        raise ValueError(f"action {action} is not an index into {ACTIONS}")
    return int(action)


class Env(abc.ABC):
    """The interface every backend implements."""

    actions = ACTIONS

    @abc.abstractmethod
    def reset(self, house: dict, pose: Pose) -> Observation:
        """Load ``house`` (schema 1.0.0) if it is not loaded and place the agent at ``pose``."""

    @abc.abstractmethod
    def step(self, action: int | str) -> StepResult:
        """Apply one action."""

    @property
    @abc.abstractmethod
    def observation(self) -> Observation: ...

    @property
    @abc.abstractmethod
    def pose(self) -> Pose: ...

    @abc.abstractmethod
    def visible_objects(self) -> dict[str, VisibleObject]:
        """Objects with at least one pixel in the current frame."""

    @abc.abstractmethod
    def current_room(self) -> tuple[str, str] | None:
        """(room id, room type) of the room the agent stands in, or None."""

    def close(self) -> None:
        """Release the backend's resources."""
