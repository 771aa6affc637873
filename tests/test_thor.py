"""The ai2thor backend (sim/thor.py) without Unity: the translation layer against a
recorded-response double, fast failure when no Unity build is available, and the
controller wiring. One integration test runs against a real build when there is one.

The fixtures in tests/fixtures/thor_responses/ are hand-constructed in ai2thor 5.0.0's event
format (not recorded from Unity; see each file's ``_comment``). The double turns them into
real ``ai2thor.server.Event`` objects, so ai2thor's own frame and instance-mask decoding runs.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sim import thor, thor_build
from sim.camera import CameraConfig
from sim.env import make_env
from sim.interface import Pose
from sim.lattice import AgentConfig
from sim.thor import ThorEnv, ThorUnavailableError

pytest.importorskip("ai2thor", reason="the ai2thor backend's tests need the thor extra: "
                    "pip install -e '.[thor]' (bash scripts/test.sh installs it)")

FIXTURES = Path(__file__).parent / "fixtures"
RESPONSES = FIXTURES / "thor_responses"
REPO = Path(__file__).resolve().parents[1]
CAMERA = CameraConfig(height=8, width=12)
START = Pose(3.75, 3.25, 180.0)


def load_house() -> dict:
    return json.loads((FIXTURES / "house_3703.json").read_text())


def load_event(name: str):
    """A real ai2thor Event from a fixture (frames packed as Unity sends them: bottom row
    first, ids as RGBA32)."""
    from ai2thor.server import DepthFormat, Event

    raw = json.loads((RESPONSES / f"{name}.json").read_text())
    ev = Event(raw["metadata"])
    ev.add_image(np.flipud(np.array(raw["frame"], dtype=np.uint8)).tobytes())
    ev.add_image_depth(np.flipud(np.array(raw["depth_frame"], dtype=np.float32)).tobytes(),
                       depth_format=DepthFormat.Meters, camera_near_plane=0.1,
                       camera_far_plane=20.0)
    seg = np.array(raw["instance_segmentation_frame"], dtype=np.uint8)
    rgba = np.concatenate([seg, np.full(seg.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    ev.add_image_ids(np.flipud(rgba).tobytes())
    return ev


def fixture_layout(name: str) -> tuple[np.ndarray, dict[str, tuple[int, ...]]]:
    raw = json.loads((RESPONSES / f"{name}.json").read_text())
    colors = {c["name"]: tuple(c["color"]) for c in raw["metadata"]["colors"]}
    return np.array(raw["instance_segmentation_frame"], dtype=np.uint8), colors


DEFAULT_SCRIPT = {
    "CreateHouse": "create_house",
    "TeleportFull": "teleport_full",
    "MoveAhead": ["move_ahead", "move_ahead_blocked"],
    "RotateRight": "rotate_right",
    "RotateLeft": "rotate_left",
    "Done": "done",
    "GetReachablePositions": "get_reachable_positions",
}


class RecordedController:
    """Replays fixture events by action name and records the actions it is sent."""

    def __init__(self, script: dict | None = None):
        script = dict(DEFAULT_SCRIPT, **(script or {}))
        self.script = {k: list(v) if isinstance(v, list) else v for k, v in script.items()}
        self.calls: list[dict] = []
        self.stopped = False

    def step(self, action=None, **kwargs):
        call = dict(action, **kwargs) if isinstance(action, dict) else dict(action=action,
                                                                           **kwargs)
        self.calls.append(call)
        todo = self.script[call["action"]]
        name = todo.pop(0) if isinstance(todo, list) else todo
        self.last_event = load_event(name)
        return self.last_event

    def stop(self):
        self.stopped = True

    def actions(self) -> list[str]:
        return [c["action"] for c in self.calls]


def make(script=None, **kwargs) -> tuple[ThorEnv, RecordedController]:
    ctrl = RecordedController(script)
    return ThorEnv(CAMERA, kwargs.pop("agent", AgentConfig()), controller=ctrl, **kwargs), ctrl


# ---------------------------------------------------------------------- translation to THOR


def test_controller_params_follow_configs():
    p = thor.controller_params(CameraConfig(height=224, width=384, vfov=59.0),
                               AgentConfig(grid=0.25, headings=4), visibility_distance=1.5)
    assert p == dict(agentMode="default", scene="Procedural", width=384, height=224,
                     fieldOfView=59.0, gridSize=0.25, rotateStepDegrees=90.0, snapToGrid=True,
                     visibilityDistance=1.5, renderDepthImage=True,
                     renderInstanceSegmentation=True)
    p8 = thor.controller_params(CAMERA, AgentConfig(headings=8))
    assert p8["rotateStepDegrees"] == 45.0 and p8["snapToGrid"] is False
    assert thor.controller_params(CAMERA, AgentConfig(), snap_to_grid=False)["snapToGrid"] is False


def test_action_dicts():
    a4 = AgentConfig(grid=0.25, headings=4)
    assert thor.action_dict("move_ahead", a4, 90.0) == {"action": "MoveAhead",
                                                         "moveMagnitude": 0.25}
    assert thor.action_dict(1, a4, 0.0) == {"action": "RotateLeft", "degrees": 90.0}
    assert thor.action_dict("rotate_right", a4, 0.0) == {"action": "RotateRight",
                                                          "degrees": 90.0}
    assert thor.action_dict("end", a4, 0.0) == {"action": "Done"}
    a8 = AgentConfig(grid=0.25, headings=8)
    assert thor.action_dict("move_ahead", a8, 90.0)["moveMagnitude"] == 0.25
    for yaw in (45.0, 135.0, 225.0, 314.9999):
        assert thor.action_dict("move_ahead", a8, yaw)["moveMagnitude"] == pytest.approx(
            0.25 * math.sqrt(2))
    assert thor.action_dict("rotate_left", a8, 0.0)["degrees"] == 45.0
    with pytest.raises(ValueError):
        thor.action_dict("jump", a4, 0.0)


def test_teleport_and_create_house_actions():
    t = thor.teleport_action(Pose(1.5, 2.25, 270.0), 0.95, 30.0)
    assert t == {"action": "TeleportFull", "position": {"x": 1.5, "y": 0.95, "z": 2.25},
                 "rotation": {"x": 0.0, "y": 270.0, "z": 0.0}, "horizon": 30.0,
                 "standing": True}
    house = load_house()
    assert thor.create_house_action(house) == {"action": "CreateHouse", "house": house}


def test_house_agent_y_and_key():
    house = load_house()
    assert thor.house_agent_y(house) == 0.95
    h = copy.deepcopy(house)
    h["metadata"]["agentPoses"]["default"]["position"]["y"] = 0.9
    assert thor.house_agent_y(h) == 0.9
    del h["metadata"]["agentPoses"]
    assert thor.house_agent_y(h) == 0.95
    del h["metadata"]["agent"]
    assert thor.house_agent_y(h) is None
    assert thor.house_key(house) == thor.house_key(copy.deepcopy(house))
    anon = copy.deepcopy(h)
    anon["metadata"].pop("houseId", None)
    other = copy.deepcopy(anon)
    other["objects"] = other["objects"][:-1]
    assert thor.house_key(anon) != thor.house_key(other)


def test_object_ids_match_the_embedded_scene():
    from sim.scene import build_boxes

    house = load_house()
    ids = thor.house_object_ids(house)
    assert ids == build_boxes(house).object_id  # both backends number objects alike
    assert ids[:2] == ["CounterTop|2|0", "Spatula|surface|2|0"]
    index = thor.object_index(house)
    assert index["CounterTop|2|0"] == 1 and len(index) == len(ids)


def test_resolve_instance():
    index = {"Sink|2|3": 4, "Bed|3|0": 7}
    assert thor.resolve_instance("Sink|2|3", index) == 4
    assert thor.resolve_instance("Sink|2|3|SinkBasin", index) == 4
    assert thor.resolve_instance("wall|2|3.77|0.00|5.65|0.00", index) == 0
    assert thor.resolve_instance("Floor", index) == 0
    assert thor.resolve_instance("Bed|3", index) == 0


def test_on_lattice():
    assert thor.on_lattice(Pose(3.75, -0.5, 0), 0.25) is None
    assert thor.on_lattice(Pose(3.7504, 3.25, 0), 0.25) is None
    assert thor.on_lattice(Pose(3.8, 3.25, 0), 0.25) == pytest.approx((3.75, 3.25))


# ---------------------------------------------------------------------- translation from THOR


def test_parse_pose_and_success():
    md = load_event("move_ahead_blocked").metadata
    assert thor.parse_pose(md) == Pose(3.75, 3.0, 180.0)
    assert thor.parse_success(md) is False
    md = {"agent": {"position": {"x": 1.00000003, "y": 0.9, "z": -2.2499999},
                    "rotation": {"x": 0, "y": 359.99999, "z": 0}}}
    assert thor.parse_pose(md) == Pose(1.0, -2.25, 0.0)


def test_parse_observation_decodes_frames_and_ids():
    house = load_house()
    index = thor.object_index(house)
    ev = load_event("teleport_full")
    obs = thor.parse_observation(ev, index)
    raw = json.loads((RESPONSES / "teleport_full.json").read_text())
    assert obs.rgb.dtype == np.uint8 and obs.rgb.shape == (8, 12, 3)
    np.testing.assert_array_equal(obs.rgb, np.array(raw["frame"], dtype=np.uint8))
    assert obs.depth.dtype == np.float32 and obs.depth.shape == (8, 12)
    np.testing.assert_allclose(obs.depth, np.array(raw["depth_frame"]), rtol=1e-6)
    assert obs.ids.dtype == np.int32 and obs.ids.shape == (8, 12)
    seg, colors = fixture_layout("teleport_full")
    for name, color in colors.items():
        where = (seg == np.array(color, np.uint8)).all(axis=-1)
        np.testing.assert_array_equal(obs.ids[where], index.get(name, 0))  # structure -> 0
    assert set(np.unique(obs.ids)) == {0, index["HousePlant|2|4|0"], index["Chair|2|3"],
                                       index["CounterTop|2|0"], index["Cup|surface|2|5"]}
    obs.rgb[0, 0] = 0  # a writable copy, like the embedded backend's


def test_instance_ids_from_plain_masks():
    m1 = np.zeros((2, 3), bool)
    m1[0, :2] = True
    m2 = np.zeros((2, 3), bool)
    m2[1, 2] = True
    ids = thor.instance_ids({"Sink|1|2|SinkBasin": m1, "wall|x": m2, "Bed|1|0": m2},
                            {"Sink|1|2": 3, "Bed|1|0": 5}, (2, 3))
    np.testing.assert_array_equal(ids, [[3, 3, 0], [0, 0, 5]])


def test_footprint_distance():
    obj = {"distance": 9.0, "axisAlignedBoundingBox": {"center": {"x": 2.0, "y": 0.5, "z": 0.0},
                                                       "size": {"x": 1.0, "y": 1.0, "z": 2.0}}}
    assert thor.footprint_distance(obj, 2.2, 0.5) == 0.0
    assert thor.footprint_distance(obj, 0.0, 0.0) == pytest.approx(1.5)
    assert thor.footprint_distance(obj, 0.5, 3.0) == pytest.approx(math.hypot(1.0, 2.0))
    assert thor.footprint_distance({"distance": 1.25}, 0.0, 0.0) == 1.25


def test_parse_visible_objects():
    ev = load_event("teleport_full")
    vis = thor.parse_visible_objects(ev.metadata, ev.instance_masks, 3.75, 3.25)
    assert list(vis) == sorted(["HousePlant|2|4|0", "Chair|2|3", "CounterTop|2|0",
                                "Cup|surface|2|5"])  # walls/floor are not metadata objects
    assert {k: v.pixels for k, v in vis.items()} == {
        "HousePlant|2|4|0": 12, "Chair|2|3": 6, "CounterTop|2|0": 11, "Cup|surface|2|5": 1}
    assert vis["Chair|2|3"].object_type == "Chair"
    plant = next(o for o in ev.metadata["objects"] if o["objectId"] == "HousePlant|2|4|0")
    box = plant["axisAlignedBoundingBox"]
    ex = abs(3.75 - box["center"]["x"]) - box["size"]["x"] / 2
    ez = abs(3.25 - box["center"]["z"]) - box["size"]["z"] / 2
    assert vis["HousePlant|2|4|0"].distance == pytest.approx(math.hypot(ex, ez))
    assert vis["HousePlant|2|4|0"].distance < plant["distance"]


# ---------------------------------------------------------------------- the env on the double


def test_env_episode_on_recorded_responses():
    house = load_house()
    env, ctrl = make()
    obs = env.reset(house, START)
    assert ctrl.actions() == ["CreateHouse", "TeleportFull"]
    assert ctrl.calls[0]["house"] is house
    assert ctrl.calls[1] == thor.teleport_action(START, 0.95, CAMERA.pitch)
    assert obs.rgb.shape == (8, 12, 3) and env.observation is obs
    assert env.pose == START
    assert env.current_room() == ("room|2", "Kitchen")
    assert set(env.visible_objects()) == {"HousePlant|2|4|0", "Chair|2|3", "CounterTop|2|0",
                                          "Cup|surface|2|5"}
    assert env.thor_visible() == {"HousePlant|2|4|0", "CounterTop|2|0", "Cup|surface|2|5"}

    r = env.step("move_ahead")
    assert r.success and env.pose == Pose(3.75, 3.0, 180.0)
    assert ctrl.calls[-1] == {"action": "MoveAhead", "moveMagnitude": 0.25}
    r = env.step(0)
    assert not r.success and env.pose == Pose(3.75, 3.0, 180.0)
    r = env.step("rotate_right")
    assert r.success and env.pose.yaw == 270.0 and env.visible_objects() == {}
    assert (r.observation.ids == 0).all()
    assert ctrl.calls[-1] == {"action": "RotateRight", "degrees": 90.0}
    assert env.step("rotate_left").success and env.pose.yaw == 180.0
    r = env.step("end")
    assert r.success and ctrl.calls[-1] == {"action": "Done"}

    env.reset(house, START)  # the same house is not created again
    assert ctrl.actions()[-2:] == ["Done", "TeleportFull"]
    other = copy.deepcopy(house)
    other["metadata"]["houseId"] = "another"
    env.reset(other, START)
    assert ctrl.actions()[-2:] == ["CreateHouse", "TeleportFull"]
    env.close()
    assert ctrl.stopped and env.controller is None
    with pytest.raises(RuntimeError, match="closed"):
        env.step("end")


def test_reset_snaps_yaw_and_uses_reachable_y_without_house_metadata():
    house = load_house()
    del house["metadata"]["agent"], house["metadata"]["agentPoses"]
    env, ctrl = make()
    env.reset(house, Pose(3.75, 3.25, 181.0))
    assert ctrl.actions() == ["CreateHouse", "GetReachablePositions", "TeleportFull"]
    assert ctrl.calls[-1]["position"]["y"] == pytest.approx(0.9009997)
    assert ctrl.calls[-1]["rotation"]["y"] == 180.0


def test_h8_diagonal_move_magnitude_and_no_snapping():
    env, ctrl = make(agent=AgentConfig(headings=8))
    assert env.params["snapToGrid"] is False and env.params["rotateStepDegrees"] == 45.0
    env.reset(load_house(), START)
    env.step("move_ahead")
    assert ctrl.calls[-1]["moveMagnitude"] == 0.25  # START faces 180: an axis heading


def test_reset_errors():
    house = load_house()
    env, ctrl = make()
    with pytest.raises(ValueError, match="not on the 0.25 m lattice"):
        env.reset(house, Pose(3.8, 3.25, 0.0))
    assert ctrl.calls == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step("end")
    env, ctrl = make({"CreateHouse": "create_house_failed"})
    with pytest.raises(ValueError, match="CreateHouse failed.*has no room"):
        env.reset(house, START)
    env, ctrl = make({"TeleportFull": ["teleport_failed", "teleport_full"]})
    with pytest.raises(ValueError, match="could not place the agent.*collides"):
        env.reset(house, START)
    env.reset(house, START)  # the house stays loaded after a failed teleport
    assert ctrl.actions() == ["CreateHouse", "TeleportFull", "TeleportFull"]


# ---------------------------------------------------------------------- no Unity build here

NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "NO_PROXY": "", "no_proxy": ""}


@pytest.fixture
def no_build(tmp_path, monkeypatch):
    """An empty home (no ~/.ai2thor), no local executable, and no reachable network."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(thor_build.LOCAL_EXECUTABLE_ENV, raising=False)
    for k, v in NO_NETWORK.items():
        monkeypatch.setenv(k, v)
    return tmp_path


CONSTRUCT = """
import sys, time
t = time.monotonic()
from sim.thor import ThorEnv, ThorUnavailableError
try:
    ThorEnv()
except ThorUnavailableError as e:
    print(f"{time.monotonic() - t:.3f}")
    print(e)
    sys.exit(0)
print("constructed")
sys.exit(1)
"""


def test_constructing_here_fails_fast_with_a_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != thor_build.LOCAL_EXECUTABLE_ENV}
    env.update(NO_NETWORK, HOME=str(tmp_path))
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-c", CONSTRUCT], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    elapsed, message, *rest = out.stdout.splitlines()
    assert rest == [] and "\n" not in message  # one line
    assert float(elapsed) < 5.0 and time.monotonic() - t < 30
    for phrase in ("Unity build thor-CloudRendering-", "could not be downloaded",
                   "local_executable_path=/path/to/thor-CloudRendering-<commit>/"
                   "thor-CloudRendering-<commit>", "~/.ai2thor/releases/", "Vulkan",
                   "backend='embedded'"):
        assert phrase in message
    assert "Invalid commit_id" not in out.stdout + out.stderr


def test_make_env_fails_fast_in_process(no_build):
    t = time.monotonic()
    with pytest.raises(ThorUnavailableError, match="could not be downloaded"):
        make_env("ai2thor", camera=CAMERA)
    assert time.monotonic() - t < 5.0


def test_download_off_fails_without_touching_the_network(no_build, monkeypatch):
    monkeypatch.setattr(thor_build, "probe_url", lambda *a: pytest.fail("probed the network"))
    with pytest.raises(ThorUnavailableError, match="not in .* and downloading is off"):
        ThorEnv(CAMERA, download=False)


def test_a_stalled_network_is_cut_off(no_build, monkeypatch):
    import requests

    monkeypatch.setattr(requests, "head", lambda *a, **k: time.sleep(3))
    t = time.monotonic()
    with pytest.raises(ThorUnavailableError, match=r"no answer within 0.2 s"):
        ThorEnv(CAMERA, download_timeout=0.2)
    assert time.monotonic() - t < 2.0


def test_local_executable_checks(no_build, monkeypatch):
    missing = no_build / "thor-CloudRendering-abc" / "thor-CloudRendering-abc"
    with pytest.raises(ThorUnavailableError, match="does not exist"):
        ThorEnv(CAMERA, local_executable_path=str(missing))
    missing.parent.mkdir()
    missing.write_text("")
    monkeypatch.setenv(thor_build.LOCAL_EXECUTABLE_ENV, str(missing))
    with pytest.raises(ThorUnavailableError, match="is not executable"):
        ThorEnv(CAMERA)
    missing.chmod(0o755)
    monkeypatch.setattr(thor, "vulkan_available", lambda: False)
    with pytest.raises(ThorUnavailableError, match="no Vulkan library"):
        ThorEnv(CAMERA)


def test_resolve_build(no_build):
    releases = no_build / ".ai2thor" / "releases"
    name = f"thor-CloudRendering-{thor_build.default_commit_id()}"
    exe = releases / name / name
    exe.parent.mkdir(parents=True)
    exe.write_text("")
    with pytest.raises(ThorUnavailableError, match="is not executable"):
        thor_build.resolve_build()
    exe.chmod(0o755)
    spec = thor_build.resolve_build()
    assert spec == thor_build.BuildSpec("release", "CloudRendering", thor_build.default_commit_id(),
                                  str(exe), str(releases))
    assert isinstance(thor_build.ai2thor_build(spec), thor_build._PrebuiltBuild)  # no metadata.json
    (exe.parent / "metadata.json").write_text('{"server_types": ["FIFO"]}')
    build = thor_build.ai2thor_build(spec)
    assert build.executable_path == str(exe) and build.server_types == ["FIFO"]
    with pytest.raises(ValueError, match="platform"):
        thor_build.resolve_build("WebGL")


# ---------------------------------------------------------------------- controller wiring


def test_controller_is_started_with_the_resolved_build(no_build, monkeypatch):
    import ai2thor.platform

    exe = no_build / "thor-CloudRendering-abc" / "thor-CloudRendering-abc"
    exe.parent.mkdir()
    exe.write_text("")
    exe.chmod(0o755)
    started = {}

    class Recording:
        def __init__(self, build, **kwargs):
            started.update(build=build, kwargs=kwargs)

    monkeypatch.setattr(thor, "vulkan_available", lambda: True)
    monkeypatch.setattr(thor, "controller_class", lambda: Recording)
    env = ThorEnv(CAMERA, local_executable_path=str(exe), visibility_distance=1.5,
                  gpu_device=0)
    assert isinstance(env.controller, Recording) and env.build.kind == "local"
    assert started["build"].platform is ai2thor.platform.CloudRendering
    assert started["build"].executable_path == str(exe)
    assert started["kwargs"] == dict(env.params, server_start_timeout=300.0, gpu_device=0)
    assert started["kwargs"]["visibilityDistance"] == 1.5

    class Crashing:
        def __init__(self, build, **kwargs):
            raise Exception("Unity process has exited\n - check Player.log")

    monkeypatch.setattr(thor, "controller_class", lambda: Crashing)
    with pytest.raises(ThorUnavailableError, match="failed to start .*Unity process has exited "
                                                   "- check Player.log"):
        ThorEnv(CAMERA, local_executable_path=str(exe))


def test_ai2thor_controller_uses_the_resolved_build_not_its_lookup(tmp_path):
    """ai2thor's own Controller.__init__ (download_only: no Unity) takes our build."""
    import ai2thor.platform

    build = thor_build._PrebuiltBuild(ai2thor.platform.CloudRendering, str(tmp_path / "thor"))
    c = thor.controller_class()(build, download_only=True, width=12, height=8)
    assert c._build is build


# ---------------------------------------------------------------------- a real Unity build


def _real_build() -> str | None:
    if os.environ.get(thor_build.LOCAL_EXECUTABLE_ENV):
        return os.environ[thor_build.LOCAL_EXECUTABLE_ENV]
    name = f"thor-{thor_build.DEFAULT_PLATFORM}-{thor_build.default_commit_id()}"
    exe = os.path.join(thor_build.default_releases_dir(), name, name)
    return exe if os.path.isfile(exe) and thor.vulkan_available() else None


@pytest.mark.skipif(_real_build() is None,
                    reason="no AI2-THOR Unity build: set AI2THOR_LOCAL_EXECUTABLE or unpack one "
                    "into ~/.ai2thor/releases (CloudRendering also needs Vulkan)")
def test_integration_real_controller():
    house = load_house()
    camera = CameraConfig(height=224, width=384)
    env = ThorEnv(camera, AgentConfig(), download=False)
    try:
        obs = env.reset(house, START)
        assert obs.rgb.shape == (224, 384, 3) and obs.rgb.dtype == np.uint8
        assert obs.depth.shape == (224, 384) and np.isfinite(obs.depth).all()
        assert obs.ids.shape == (224, 384) and obs.ids.dtype == np.int32
        assert obs.ids.max() <= len(thor.house_object_ids(house))
        p = env.pose
        assert (p.x, p.z, p.yaw) == pytest.approx((3.75, 3.25, 180.0), abs=1e-2)
        assert env.current_room() == ("room|2", "Kitchen")
        for v in env.visible_objects().values():
            assert v.pixels > 0 and v.distance >= 0 and v.object_type
        r = env.step("rotate_right")
        assert r.success and env.pose.yaw == pytest.approx(270.0, abs=1e-2)
        before = env.pose
        r = env.step("move_ahead")
        moved = math.hypot(env.pose.x - before.x, env.pose.z - before.z)
        assert moved == pytest.approx(0.25, abs=1e-2) if r.success else moved < 1e-3
        assert env.step("end").success
    finally:
        env.close()
