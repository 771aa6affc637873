"""One environment interface for every backend, and the embedded (pure-Python) backend.

``Env.reset(house, pose)`` places the agent; ``Env.step(action)`` applies one of
:data:`sim.lattice.ACTIONS`; ``Env.observation`` holds RGB, depth and instance ids;
``Env.visible_objects()`` maps object ids to pixel counts and distances. The embedded env is
pure and deterministic: the same house and pose give the same pixels.
"""

from __future__ import annotations

import abc
import json
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from sim.camera import CameraConfig
from sim.lattice import ACTIONS, AgentConfig, Lattice
from sim.scene import Scene, build_scene, stable_hash


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
            raise ValueError(f"--pose {text!r}: expected X,Z,HEADING (metres, metres, degrees)"
                             ) from None
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


class EmbeddedEnv(Env):
    """The lattice agent in the compiled embedded renderer (:mod:`sim.render`)."""

    def __init__(self, camera: CameraConfig = CameraConfig(), agent: AgentConfig = AgentConfig(),
                 cache_houses: int = 4):
        self.camera, self.agent = camera, agent
        self._cache: OrderedDict[str, tuple[Scene, Lattice, object]] = OrderedDict()
        self._cache_size = cache_houses
        self._scene: Scene | None = None
        self._obs: Observation | None = None
        self.state: tuple[int, int, int] | None = None

    def load(self, house: dict) -> tuple[Scene, Lattice]:
        """Scene and lattice of a house (cached by house id)."""
        from sim.render import Renderer

        hid = house.get("metadata", {}).get("houseId")
        if hid is None:  # no id: key by content, never by object address
            hid = f"sha-{stable_hash(json.dumps(house, sort_keys=True)):016x}"
        hid = str(hid)
        if hid not in self._cache:
            scene = build_scene(house, hid)
            self._cache[hid] = (scene, Lattice(scene, self.agent), Renderer(scene, self.camera))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(hid)
        self._scene, self.lattice, self.renderer = self._cache[hid]
        return self._scene, self.lattice

    def reset(self, house: dict, pose: Pose) -> Observation:
        _, lattice = self.load(house)
        i, j = lattice.cell_of(pose.x, pose.z)
        x, z = lattice.position(i, j)
        if abs(x - pose.x) > 1e-3 or abs(z - pose.z) > 1e-3:
            raise ValueError(f"pose ({pose.x}, {pose.z}) is not on the {self.agent.grid} m "
                             f"lattice; the nearest lattice point is ({x:.3f}, {z:.3f})")
        if not lattice.is_free(i, j):
            raise ValueError(f"pose ({pose.x}, {pose.z}) is not free space in house "
                             f"{self._scene.house_id}; pick a reachable cell "
                             "(spoc-houses show draws them)")
        return self.reset_state((i, j, lattice.heading_of(pose.yaw)))

    def reset_state(self, state: tuple[int, int, int]) -> Observation:
        """Place the agent at a lattice state of the loaded house."""
        self.state = tuple(int(v) for v in state)
        return self._render()

    def step(self, action: int | str) -> StepResult:
        self.state, ok = self.lattice.step(self.state, action_index(action))
        return StepResult(self._render(), ok)

    def _render(self) -> Observation:
        p = self.pose
        frame = self.renderer.render(p.x, p.z, p.yaw)
        self._obs = Observation(frame.rgb, frame.depth, frame.ids)
        return self._obs

    @property
    def observation(self) -> Observation:
        return self._obs

    @property
    def pose(self) -> Pose:
        i, j, h = self.state
        x, z = self.lattice.position(i, j)
        return Pose(x, z, self.lattice.yaw(h))

    @property
    def scene(self) -> Scene:
        return self._scene

    def visible_objects(self) -> dict[str, VisibleObject]:
        return visible_objects(self._scene, self._obs.ids, self.pose)

    def current_room(self) -> tuple[str, str] | None:
        k = self.lattice.room_of(*self.state[:2])
        return None if k < 0 else (self._scene.rooms[k].id, self._scene.rooms[k].room_type)


def visible_objects(scene: Scene, ids: np.ndarray, pose: Pose) -> dict[str, VisibleObject]:
    """Objects seen in an instance-id image, with pixel counts and footprint distances."""
    counts = np.bincount(ids.ravel(), minlength=len(scene.boxes) + 1)
    seen = np.flatnonzero(counts[1:])
    if len(seen) == 0:
        return {}
    dist = scene.boxes.distance_xz(pose.x, pose.z)
    b = scene.boxes
    return {b.object_id[k]: VisibleObject(b.object_id[k], b.object_type[k], int(counts[k + 1]),
                                          float(dist[k])) for k in seen}


BACKENDS = {"embedded": EmbeddedEnv}


def make_env(backend: str = "embedded", **kwargs) -> Env:
    """An environment by backend name: ``embedded`` or ``ai2thor``."""
    if backend == "ai2thor":
        from sim.thor import ThorEnv

        return ThorEnv(**kwargs)
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is unknown; use one of "
                         f"{sorted([*BACKENDS, 'ai2thor'])}")
    return BACKENDS[backend](**kwargs)
