"""The ``ai2thor`` backend: the :class:`sim.interface.Env` interface on AI2-THOR's Unity
simulator.

Two layers:

- **Translation** (pure functions, unit-tested without Unity): our camera/agent configs,
  poses and actions become the controller's initialisation parameters and action dicts
  (:func:`controller_params`, :func:`action_dict`, :func:`teleport_action`,
  :func:`create_house_action`); an event's metadata and frames become our types
  (:func:`parse_pose`, :func:`parse_observation`, :func:`parse_visible_objects`,
  :func:`instance_ids`).
- **The controller** (:class:`ThorEnv`), started on the Unity build
  :func:`sim.thor_build.resolve_build` finds (or a one-line
  :class:`sim.thor_build.ThorUnavailableError` when there is none).

Conventions and limitations (versus the embedded backend):

- Instance ids: object ``k`` (1-based) of the house JSON's objects in depth-first pre-order,
  children after their parent (the order :func:`sim.scene.build_boxes` uses, so both backends
  number objects alike); 0 is structure and anything not in the house JSON (walls, floor,
  doors, windows). A THOR sub-object whose id extends a house id (``Sink|2|3|SinkBasin``)
  takes its parent's id.
- ``visible_objects()`` lists THOR objects (``metadata.objects``) with at least one pixel in
  the instance masks, keyed by THOR objectId (sub-objects included). ``distance`` is the
  horizontal distance from the agent's centre to the object's axis-aligned bounding box
  footprint (``axisAlignedBoundingBox``) — exact for axis-aligned objects, a lower bound for
  rotated ones — and THOR's own ``distance`` (agent to object centre, 3-D) when the box is
  missing. THOR's ``visible`` flag (in view and within ``visibilityDistance``) is available
  from :meth:`ThorEnv.thor_visible`.
- Motion: ``move_ahead`` is ``MoveAhead`` by ``grid`` (``grid * sqrt(2)`` on the diagonal
  headings of H=8); ``rotate_*`` turn by ``360/H``; ``end`` sends ``Done`` (a no-op) and
  always succeeds. With H=4 the controller snaps to its grid (``snapToGrid=True``); THOR only
  snaps to 90 degree headings, so with H=8 ``snapToGrid=False`` and positions carry float
  noise (poses are rounded to 0.1 mm). THOR's collision (its agent capsule, real meshes)
  differs from the lattice's disc and boxes, so a move can succeed in one and fail in the
  other; the oracle's actions are not guaranteed feasible in THOR.
- The camera's ``eye_height`` is not applied: THOR's agent fixes its camera height (~1.5 m
  standing). Vertical FOV, resolution and pitch (``horizon``) are applied.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping

import numpy as np

from sim.camera import CameraConfig
from sim.interface import Env, Observation, Pose, StepResult, VisibleObject, action_index
from sim.lattice import END, MOVE_AHEAD, ROTATE_LEFT, ROTATE_RIGHT, AgentConfig
from sim.scene import point_in_polygon
from sim.thor_build import (
    DEFAULT_PLATFORM,
    BuildSpec,
    ThorUnavailableError,
    ai2thor_build,
    controller_class,
    resolve_build,
    unavailable,
    vulkan_available,
)

DEFAULT_AGENT_Y = 0.95  # metadata.agent.position.y of ProcTHOR houses


# ---------------------------------------------------------------------- translation: to THOR


def default_snap_to_grid(agent: AgentConfig) -> bool:
    """THOR's grid snapping also snaps headings to 90 degrees: on for H=4, off for H=8."""
    return agent.headings == 4


def controller_params(camera: CameraConfig = CameraConfig(), agent: AgentConfig = AgentConfig(),
                      *, visibility_distance: float = 1.0, snap_to_grid: bool | None = None,
                      agent_mode: str = "default") -> dict:
    """The ``Controller(...)`` keyword arguments (Initialize parameters) for our configs."""
    return dict(
        agentMode=agent_mode,
        scene="Procedural",
        width=camera.width,
        height=camera.height,
        fieldOfView=camera.vfov,
        gridSize=agent.grid,
        rotateStepDegrees=360.0 / agent.headings,
        snapToGrid=default_snap_to_grid(agent) if snap_to_grid is None else bool(snap_to_grid),
        visibilityDistance=visibility_distance,
        renderDepthImage=True,
        renderInstanceSegmentation=True,
    )


def heading_index(yaw: float, headings: int) -> int:
    """The nearest of ``headings`` equal steps to a yaw in degrees."""
    return int(round((yaw % 360.0) / (360.0 / headings))) % headings


def action_dict(action: int | str, agent: AgentConfig, yaw: float) -> dict:
    """The controller action for one of our actions taken at heading ``yaw`` (degrees)."""
    a = action_index(action)
    if a == MOVE_AHEAD:
        diagonal = agent.headings == 8 and heading_index(yaw, 8) % 2 == 1
        return {"action": "MoveAhead",
                "moveMagnitude": agent.grid * math.sqrt(2.0) if diagonal else agent.grid}
    if a == ROTATE_LEFT:
        return {"action": "RotateLeft", "degrees": 360.0 / agent.headings}
    if a == ROTATE_RIGHT:
        return {"action": "RotateRight", "degrees": 360.0 / agent.headings}
    assert a == END
    return {"action": "Done"}


def teleport_action(pose: Pose, y: float, horizon: float) -> dict:
    """``TeleportFull`` to a pose; ``horizon`` is the camera pitch (positive looks down)."""
    return {"action": "TeleportFull",
            "position": {"x": float(pose.x), "y": float(y), "z": float(pose.z)},
            "rotation": {"x": 0.0, "y": float(pose.yaw), "z": 0.0},
            "horizon": float(horizon), "standing": True}


def create_house_action(house: dict) -> dict:
    return {"action": "CreateHouse", "house": house}


def house_key(house: dict) -> str:
    """What decides whether a house must be (re)created: its id, else a hash of its JSON."""
    hid = house.get("metadata", {}).get("houseId")
    if hid is not None:
        return f"id:{hid}"
    text = json.dumps(house, sort_keys=True, default=str)
    return "sha1:" + hashlib.sha1(text.encode()).hexdigest()


def house_agent_y(house: dict, agent_mode: str = "default") -> float | None:
    """The agent's ``y`` from the house metadata (``agentPoses[mode]``, then ``agent``)."""
    meta = house.get("metadata", {}) or {}
    for pose in ((meta.get("agentPoses") or {}).get(agent_mode), meta.get("agent")):
        if isinstance(pose, dict) and "y" in (pose.get("position") or {}):
            return float(pose["position"]["y"])
    return None


def house_object_ids(house: dict) -> list[str]:
    """House object ids, depth-first pre-order (children after their parent)."""
    out, stack = [], list(reversed(house.get("objects", [])))
    while stack:
        o = stack.pop()
        out.append(str(o["id"]))
        stack.extend(reversed(o.get("children", []) or []))
    return out


def object_index(house: dict) -> dict[str, int]:
    """objectId -> instance id (1-based, :func:`house_object_ids` order)."""
    return {oid: k + 1 for k, oid in enumerate(house_object_ids(house))}


def room_polygons(house: dict) -> list[tuple[str, str, np.ndarray]]:
    return [(r["id"], r["roomType"],
             np.array([(p["x"], p["z"]) for p in r["floorPolygon"]], dtype=np.float64))
            for r in house.get("rooms", [])]


def room_at(rooms: list[tuple[str, str, np.ndarray]], x: float, z: float
            ) -> tuple[str, str] | None:
    for rid, rtype, poly in rooms:
        if point_in_polygon(x, z, poly):
            return rid, rtype
    return None


def on_lattice(pose: Pose, grid: float, tol: float = 1e-3) -> tuple[float, float] | None:
    """None if (x, z) is a multiple of ``grid``, else the nearest such point."""
    nx, nz = round(pose.x / grid) * grid, round(pose.z / grid) * grid
    if abs(nx - pose.x) <= tol and abs(nz - pose.z) <= tol:
        return None
    return nx, nz


# ---------------------------------------------------------------------- translation: from THOR


def parse_success(metadata: Mapping) -> bool:
    return bool(metadata["lastActionSuccess"])


def parse_pose(metadata: Mapping) -> Pose:
    """The agent's pose in an event's metadata (rounded to 0.1 mm and 0.001 degrees)."""
    a = metadata["agent"]
    p, yaw = a["position"], float(a["rotation"]["y"]) % 360.0
    yaw = round(yaw, 3) % 360.0
    return Pose(round(float(p["x"]), 4), round(float(p["z"]), 4), yaw)


def resolve_instance(object_id: str, index: Mapping[str, int]) -> int:
    """The instance id of a THOR objectId: its own, else that of the longest house id it
    extends by ``|``-separated parts (sub-objects), else 0 (structure)."""
    k = index.get(object_id)
    if k is not None:
        return k
    parts = object_id.split("|")
    for n in range(len(parts) - 1, 0, -1):
        k = index.get("|".join(parts[:n]))
        if k is not None:
            return k
    return 0


def instance_ids(masks: Mapping[str, np.ndarray], index: Mapping[str, int],
                 shape: tuple[int, int]) -> np.ndarray:
    """(H, W) int32 instance ids from ``event.instance_masks`` (objectId -> bool mask)."""
    ids = np.zeros(shape, dtype=np.int32)
    for oid, mask in masks.items():
        k = resolve_instance(oid, index)
        if k:
            ids[np.asarray(mask, dtype=bool)] = k
    return ids


def parse_observation(event, index: Mapping[str, int]) -> Observation:
    """RGB (``event.frame``), depth in metres (``event.depth_frame``) and instance ids."""
    if event.frame is None:
        raise RuntimeError("the AI2-THOR event carries no RGB frame")
    rgb = np.array(np.asarray(event.frame)[..., :3], dtype=np.uint8)  # a writable copy
    shape = rgb.shape[:2]
    if event.depth_frame is None:
        raise RuntimeError("the AI2-THOR event carries no depth frame; start the controller "
                           "with renderDepthImage=True")
    depth = np.array(event.depth_frame, dtype=np.float32)
    masks = getattr(event, "instance_masks", None) or {}
    return Observation(rgb, depth, instance_ids(masks, index, shape))


def footprint_distance(obj: Mapping, x: float, z: float) -> float:
    """Horizontal distance from (x, z) to an object's axis-aligned box footprint (0 inside),
    or THOR's ``distance`` when the object has no ``axisAlignedBoundingBox``."""
    box = obj.get("axisAlignedBoundingBox") or {}
    c, s = box.get("center"), box.get("size")
    if c and s:
        ex = max(abs(x - float(c["x"])) - float(s["x"]) / 2, 0.0)
        ez = max(abs(z - float(c["z"])) - float(s["z"]) / 2, 0.0)
        return float(math.hypot(ex, ez))
    return float(obj["distance"])


def parse_visible_objects(metadata: Mapping, masks: Mapping[str, np.ndarray], x: float,
                          z: float) -> dict[str, VisibleObject]:
    """THOR objects with at least one pixel, sorted by objectId."""
    objects = {o["objectId"]: o for o in metadata.get("objects") or []}
    out = {}
    for oid, mask in masks.items():
        obj = objects.get(oid)
        if obj is None:
            continue
        n = int(np.count_nonzero(mask))
        if n:
            out[oid] = VisibleObject(oid, str(obj["objectType"]), n,
                                     footprint_distance(obj, x, z))
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------- the env


class ThorEnv(Env):
    """The lattice agent on an AI2-THOR controller (see the module docstring).

    ``controller`` injects a ready controller (anything with ``step(dict)`` returning events,
    e.g. a test double); otherwise the Unity build is resolved (:func:`resolve_build`) and a
    controller started. Extra keyword arguments go to ``Controller`` (e.g. ``gpu_device``).
    """

    def __init__(self, camera: CameraConfig = CameraConfig(), agent: AgentConfig = AgentConfig(),
                 *, platform: str = DEFAULT_PLATFORM, local_executable_path: str | None = None,
                 commit_id: str | None = None, releases_dir: str | None = None,
                 visibility_distance: float = 1.0, snap_to_grid: bool | None = None,
                 agent_mode: str = "default", download: bool = True,
                 download_timeout: float = 3.0, server_start_timeout: float = 300.0,
                 controller=None, **controller_kwargs):
        self.camera, self.agent, self.agent_mode = camera, agent, agent_mode
        self.params = controller_params(camera, agent, visibility_distance=visibility_distance,
                                        snap_to_grid=snap_to_grid, agent_mode=agent_mode)
        self.build: BuildSpec | None = None
        if controller is None:
            self.build = resolve_build(platform, local_executable_path, commit_id, releases_dir,
                                       download, download_timeout)
            if platform == "CloudRendering" and not vulkan_available():
                raise unavailable(f"found the Unity build {self.build.executable_path} but no "
                                  "Vulkan library (libvulkan1)", platform,
                                  self.build.commit_id or "<commit>")
            try:
                controller = controller_class()(
                    ai2thor_build(self.build), server_start_timeout=server_start_timeout,
                    **self.params, **controller_kwargs)
            except Exception as e:
                msg = " ".join(str(e).split())
                raise ThorUnavailableError(
                    f"AI2-THOR failed to start {self.build.executable_path}: "
                    f"{type(e).__name__}: {msg}") from e
        self.controller = controller
        self._house_key: str | None = None
        self._house: dict | None = None
        self._index: dict[str, int] = {}
        self._rooms: list = []
        self._agent_y = DEFAULT_AGENT_Y
        self._event = None
        self._obs: Observation | None = None

    # ------------------------------------------------------------------ controller calls

    def _call(self, action: dict):
        if self.controller is None:
            raise RuntimeError("the AI2-THOR env is closed")
        return self.controller.step(action)

    def _take(self, event) -> Observation:
        self._event = event
        self._obs = parse_observation(event, self._index)
        return self._obs

    def _load(self, house: dict) -> None:
        key = house_key(house)
        if key == self._house_key:
            return
        self._house_key = None
        event = self._call(create_house_action(house))
        if not parse_success(event.metadata):
            raise ValueError(f"AI2-THOR CreateHouse failed for house {key}: "
                             f"{event.metadata.get('errorMessage') or 'no message'}")
        y = house_agent_y(house, self.agent_mode)
        if y is None:
            ev = self._call({"action": "GetReachablePositions"})
            points = (ev.metadata.get("actionReturn") or []) if parse_success(ev.metadata) else []
            y = float(points[0]["y"]) if points else float(
                event.metadata["agent"]["position"]["y"])
        self._house, self._house_key, self._agent_y = house, key, y
        self._index, self._rooms = object_index(house), room_polygons(house)

    # ------------------------------------------------------------------ Env

    def reset(self, house: dict, pose: Pose) -> Observation:
        nearest = on_lattice(pose, self.agent.grid)
        if nearest is not None:
            raise ValueError(f"pose ({pose.x}, {pose.z}) is not on the {self.agent.grid} m "
                             f"lattice; the nearest lattice point is "
                             f"({nearest[0]:.3f}, {nearest[1]:.3f})")
        self._load(house)
        yaw = heading_index(pose.yaw, self.agent.headings) * 360.0 / self.agent.headings
        event = self._call(teleport_action(Pose(pose.x, pose.z, yaw), self._agent_y,
                                           self.camera.pitch))
        if not parse_success(event.metadata):
            raise ValueError(f"AI2-THOR could not place the agent at ({pose.x}, {pose.z}) in "
                             f"house {self._house_key}: "
                             f"{event.metadata.get('errorMessage') or 'no message'}")
        return self._take(event)

    def step(self, action: int | str) -> StepResult:
        if self._event is None:
            raise RuntimeError("call reset(house, pose) before step()")
        a = action_index(action)
        event = self._call(action_dict(a, self.agent, self.pose.yaw))
        ok = True if a == END else parse_success(event.metadata)
        return StepResult(self._take(event), ok)

    @property
    def observation(self) -> Observation:
        return self._obs

    @property
    def pose(self) -> Pose:
        if self._event is None:
            raise RuntimeError("call reset(house, pose) first")
        return parse_pose(self._event.metadata)

    @property
    def last_event(self):
        """The controller's last event (metadata, frames) for anything not wrapped here."""
        return self._event

    def visible_objects(self) -> dict[str, VisibleObject]:
        p = self.pose
        masks = getattr(self._event, "instance_masks", None) or {}
        return parse_visible_objects(self._event.metadata, masks, p.x, p.z)

    def thor_visible(self) -> set[str]:
        """objectIds THOR flags ``visible`` (in view and within ``visibilityDistance``)."""
        return {o["objectId"] for o in self._event.metadata.get("objects") or []
                if o.get("visible")}

    def current_room(self) -> tuple[str, str] | None:
        p = self.pose
        return room_at(self._rooms, p.x, p.z)

    def close(self) -> None:
        controller, self.controller = self.controller, None
        if controller is not None and hasattr(controller, "stop"):
            controller.stop()
