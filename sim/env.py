"""The embedded backend of the environment interface (:mod:`sim.interface`), and
:func:`make_env`, which builds any backend by name.

The embedded env is pure and deterministic: the same house and pose give the same pixels.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np

from common.errors import InputError
from sim.appearance import Appearance
from sim.camera import CameraConfig
from sim.interface import Env, Observation, Pose, StepResult, VisibleObject, action_index
from sim.lattice import AgentConfig, Lattice
from sim.scene import Scene, build_scene, stable_hash
from sim.thor import ThorEnv


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
        self.appearance: Appearance | None = None
        """The look the next loaded house is rendered under
        (:meth:`sim.render.Renderer.with_appearance`); None: the house's own."""
        self._view = None
        self._frame = 0

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
        self._view = (self.renderer if self.appearance is None else
                      self.renderer.with_appearance(self.appearance))
        return self._scene, self.lattice

    def reset(self, house: dict, pose: Pose) -> Observation:
        _, lattice = self.load(house)
        i, j = lattice.cell_of(pose.x, pose.z)
        x, z = lattice.position(i, j)
        if abs(x - pose.x) > 1e-3 or abs(z - pose.z) > 1e-3:
            raise InputError(f"pose ({pose.x}, {pose.z}) is not on the {self.agent.grid} m "
                             f"lattice; the nearest lattice point is ({x:.3f}, {z:.3f})")
        if not lattice.is_free(i, j):
            raise InputError(f"pose ({pose.x}, {pose.z}) is not free space in house "
                             f"{self._scene.house_id}; pick a reachable cell "
                             "(spoc-houses show draws them)")
        return self.reset_state((i, j, lattice.heading_of(pose.yaw)))

    def reset_state(self, state: tuple[int, int, int]) -> Observation:
        """Place the agent at a lattice state of the loaded house."""
        self.state = tuple(int(v) for v in state)
        self._frame = 0
        return self._render()

    def step(self, action: int | str) -> StepResult:
        self.state, ok = self.lattice.step(self.state, action_index(action))
        self._frame += 1
        return StepResult(self._render(), ok)

    def _render(self) -> Observation:
        p = self.pose
        frame = self._view.render(p.x, p.z, p.yaw, frame=self._frame)
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


BACKENDS = {"embedded": EmbeddedEnv, "ai2thor": ThorEnv}
"""Environment classes by backend name (:func:`make_env`)."""


def make_env(backend: str = "embedded", **kwargs) -> Env:
    """An environment by backend name: ``embedded`` or ``ai2thor``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is unknown; use one of {sorted(BACKENDS)}")
    return BACKENDS[backend](**kwargs)
