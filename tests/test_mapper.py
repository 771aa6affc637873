"""The map agent (``spoc-eval run --policy mapper``): its geometry against the simulator's,
its odometry, its planner, and whole episodes through the evaluation harness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_eval import bad_input, run_eval, write_houses
from training_helpers import palette_detector

from agents.mapper import EpisodeMap, MapperConfig, turn_towards
from datagen.constants import OBJECTNAV_TARGETS
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv
from sim.house import load_houses
from sim.lattice import ACTIONS, END, MOVE_AHEAD, ROTATE_LEFT, ROTATE_RIGHT, AgentConfig

FIXTURES = Path(__file__).parent / "fixtures"
CAMERA = CameraConfig(height=48, width=64)


@pytest.fixture(scope="module")
def house_env():
    env = EmbeddedEnv(CAMERA)
    house = next(load_houses(FIXTURES / "house_3703.json")).house
    scene, lattice = env.load(house)
    return env, house, scene, lattice


def start_at(env, house, lattice, k: int = 0):
    """Put the agent on the k-th free cell at heading 0 (yaw 0: the map's frame is the
    world's, shifted to the start)."""
    i, j = np.argwhere(lattice.free)[k]
    env.reset_state((int(i), int(j), 0))
    return np.array(lattice.position(int(i), int(j)))


def test_lifted_pixels_land_on_the_objects_and_floor_they_show(house_env):
    """Every object pixel, lifted by its depth into the map's frame, lies on that object's
    footprint and within its height, also after turns (so the map's heading convention is the
    renderer's)."""
    env, house, scene, lattice = house_env
    start = start_at(env, house, lattice, len(np.argwhere(lattice.free)) // 2)
    m = EpisodeMap(CAMERA, env.agent, MapperConfig(max_range=1e9))
    checked = 0
    for action in (None, ROTATE_RIGHT, ROTATE_RIGHT, ROTATE_LEFT):
        if action is not None:
            env.step(action)
            m.moved(action, blocked=False)
        obs = env.observation
        x, z, height = m.lift(obs.depth, np.arange(obs.depth.size))
        d = obs.depth.ravel()
        ids = obs.ids.ravel()[np.isfinite(d) & (d > 0)]
        assert len(ids) == len(x)
        wx, wz = x + start[0], z + start[1]
        boxes = scene.boxes
        for k in np.unique(ids[ids > 0]):
            on = np.flatnonzero(ids == k)[::7]
            dist = [boxes.distance_xz(wx[p], wz[p])[k - 1] for p in on]
            assert max(dist) < 0.02, boxes.object_type[k - 1]
            bottom = boxes.center[k - 1, 1] - boxes.half[k - 1, 1]
            top = boxes.center[k - 1, 1] + boxes.half[k - 1, 1]
            assert np.all((height[on] > bottom - 0.02) & (height[on] < top + 0.02))
            checked += len(on)
    assert checked > 100


def test_odometry_follows_the_lattice_and_blocked_moves_block(house_env):
    env, house, scene, lattice = house_env
    start_at(env, house, lattice)
    i0, j0, _ = env.state
    m = EpisodeMap(CAMERA, env.agent, MapperConfig())
    c = m.cfg.size // 2
    rng = np.random.default_rng(0)
    blocked = 0
    for action in rng.choice([MOVE_AHEAD, MOVE_AHEAD, ROTATE_LEFT, ROTATE_RIGHT], 200):
        before = m.ahead()
        ok = env.step(int(action)).success
        m.moved(int(action), blocked=not ok)
        i, j, h = env.state
        assert (m.cell, m.heading) == ((i - i0 + c, j - j0 + c), h)
        if not ok:
            blocked += 1
            assert m.blocked[before]
    assert blocked > 0


def test_distances_and_steps_follow_free_cells():
    """A corridor with a wall: the distance field goes around it and the agent turns towards
    the next cell before it moves."""
    m = EpisodeMap(CAMERA, AgentConfig(), MapperConfig(size=16))
    m.cell, m.heading = (8, 8), 0  # facing +j
    m.explored[:] = True
    m.blocked[7:10, 9] = True  # a wall just ahead
    goals = np.zeros((16, 16), bool)
    goals[8, 11] = True
    dist = m.distances(goals)
    assert dist[8, 11] == 0 and dist[8, 9] == -1
    assert dist[8, 8] == 7  # around the wall: 2 sideways, 3 ahead, 2 back
    assert m.step_towards(dist) in (ROTATE_LEFT, ROTATE_RIGHT)
    m.heading = 1  # facing +i: the way around
    assert m.step_towards(dist) == MOVE_AHEAD
    m.cell = (8, 11)
    assert m.step_towards(dist) is None  # on the goal
    assert turn_towards(0, 3) == ROTATE_LEFT and turn_towards(0, 1) == ROTATE_RIGHT


def test_frontier_is_unexplored_cells_next_to_seen_floor():
    m = EpisodeMap(CAMERA, AgentConfig(), MapperConfig(size=32))
    assert not m.frontier().any()  # nothing seen yet
    m.floor[3:7, 26] = True  # away from the start's blind disc
    m.explored[3:7, 26] = True
    front = m.frontier()
    assert front[2, 26] and front[7, 26] and front[5, 25] and front[5, 27]
    assert front.sum() == 2 + 4 + 4 and not front[3:7, 26].any()
    m.explored[:, 25] = True  # as the blind disc of a cell stood on does
    assert not m.frontier()[:, 25].any() and m.frontier().sum() == 6


def test_mapper_finds_its_targets_on_the_fixture_houses(tmp_path):
    """Through the harness, with the palette detector: it succeeds in most episodes, far
    above the forward and random baselines, and the same run gives the same results."""
    houses = write_houses(tmp_path / "val.jsonl.gz")
    detector = tmp_path / "detector.json"
    palette_detector([*OBJECTNAV_TARGETS, "Fridge"]).save(detector)
    args = ["--policy", "mapper", "--detector", str(detector), "--episodes", "12",
            "--videos", "0", "--max-steps", "300"]
    a = run_eval(tmp_path / "a", houses, *args)
    agg = a["aggregated"]
    assert agg["num_episodes"] == 12 and agg["success_rate"] >= 0.75, agg
    assert {r["task"] for r in a["per_episode"]} == {"objectnav", "roomnav"}
    assert a["run"]["mapper"] == json.loads(json.dumps(MapperConfig().__dict__))
    b = run_eval(tmp_path / "b", houses, *args, "--workers", "2")
    assert a["per_episode"] == b["per_episode"]


def test_mapper_input_is_checked(tmp_path, capsys):
    houses = write_houses(tmp_path / "val.jsonl.gz")
    base = ["run", "--houses", str(houses), "--out", str(tmp_path / "x"), "--progress", "false"]
    assert "--detector" in bad_input(capsys, [*base, "--policy", "mapper"])
    palette_detector().save(tmp_path / "targets.json")  # no Fridge: a Kitchen anchor
    err = bad_input(capsys, [*base, "--policy", "mapper", "--detector",
                             str(tmp_path / "targets.json")])
    assert "Fridge" in err and "--types" in err
    err = bad_input(capsys, [*base, "--policy", "oracle", "--mapper.reach", "0.8"])
    assert "--mapper" in err
    palette_detector([*OBJECTNAV_TARGETS, "Fridge"]).save(tmp_path / "all.json")
    err = bad_input(capsys, [*base, "--policy", "mapper", "--detector", str(tmp_path / "all.json"),
                             "--agent.headings", "8"])
    assert "--agent.headings 8" in err
    assert len(ACTIONS) == 4 and END == 3


def test_forget_steps_starts_the_map_again_at_the_same_pose(house_env):
    """The probe of ``--probe.map_forget_steps``: every N steps the policy's map starts again
    (only the current frame and the blind disc where it stands), its pose kept."""
    import torch

    from agents.map_agent import MapPolicy
    from datagen.tasks import TaskConfig

    env, house, scene, lattice = house_env
    start_at(env, house, lattice, 5)
    i0, j0, _ = env.state
    policy = MapPolicy(CAMERA, AgentConfig(), TaskConfig(min_pixels=4), ("objectnav/Mug",),
                       palette_detector(), MapperConfig(), forget_steps=3)
    policy.reset(1)
    collided, first = False, True
    for step in range(1, 7):
        obs = {"rgb": torch.from_numpy(env.observation.rgb[None]),
               "depth": torch.from_numpy(env.observation.depth[None]),
               "goal": torch.zeros(1, dtype=torch.long), "first": torch.tensor([first]),
               "collided": torch.tensor([collided])}
        before = policy.maps[0]
        action = int(policy.act(obs)[0])
        m = policy.maps[0]
        if step % 3 == 0:  # a new map that holds only the current frame
            fresh = before.forgotten()
            fresh.integrate(env.observation.depth)
            assert m is not before and len(m.targets) <= 64
            for name in ("floor", "blocked", "explored"):
                assert np.array_equal(getattr(m, name), getattr(fresh, name))
            assert (before.floor & ~m.floor).any()  # it forgot floor seen before
        elif step > 1:
            assert m is before
        c = m.cfg.size // 2
        i, j, h = env.state
        assert (m.cell, m.heading) == ((i - i0 + c, j - j0 + c), h)
        first = False
        assert action != END, step  # no Mug in view this early: the forgetting is exercised
        collided = not env.step(action).success and action == MOVE_AHEAD


def test_simulator_detections_probe_reads_the_ids(tmp_path):
    """``--probe.simulator_detections true`` finds targets in the simulator's ids: given a
    detector that sees nothing (a colour no pixel has), it still succeeds, where the same
    detector alone leaves the agent to stop where exploring ends."""
    from agents.detector import ColourDetector

    houses = write_houses(tmp_path / "val.jsonl.gz")
    types = [*OBJECTNAV_TARGETS, "Fridge"]
    blind = ColourDetector(centre={t: (1.0, 0.0, 0.0) for t in types},
                           radius={t: 1e-6 for t in types}, min_pixels={t: 10 ** 6 for t in types})
    blind.save(tmp_path / "blind.json")
    args = ["--policy", "mapper", "--detector", str(tmp_path / "blind.json"), "--episodes", "6",
            "--videos", "0", "--max-steps", "300"]
    sim = run_eval(tmp_path / "sim", houses, *args, "--probe.simulator_detections", "true")
    assert sim["run"]["probe"] == {"simulator_detections": True}
    assert sim["aggregated"]["success_rate"] >= 0.5
    none = run_eval(tmp_path / "none", houses, *args)
    assert none["aggregated"]["success_rate"] < sim["aggregated"]["success_rate"]
