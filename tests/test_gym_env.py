"""The Gymnasium environment ``spoc/Nav-v0``: registered by importing sim, Gymnasium's own
checker, seeded episodes, the oracle's actions scoring SPL 1, the reward and step rules, bad
input, and vectorised copies. Tiny camera (48x64), the fixture houses."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import sim
from agents.baselines import OraclePolicy
from common.errors import InputError
from datagen.constants import TASKS
from datagen.gym_env import NavEnv
from datagen.tasks import TaskConfig
from eval.metrics import spl
from sim.camera import CameraConfig
from sim.lattice import ACTIONS, END, MOVE_AHEAD, ROTATE_RIGHT

FIXTURES = Path(__file__).parent / "fixtures"
CAMERA = CameraConfig(height=48, width=64)
TASK_CONFIG = TaskConfig(min_pixels=4)


@pytest.fixture(scope="module")
def houses(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("houses") / "val.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for i, name in enumerate(("143.json", "house_3703.json")):
            house = json.loads((FIXTURES / name).read_text())
            house["metadata"]["houseId"] = f"val-0-{i}"
            f.write(json.dumps(house) + "\n")
    return str(path)


def make(houses: str, **kwargs) -> gym.Env:
    return gym.make(sim.NAV_ENV_ID, houses=houses, **{"camera": CAMERA, "tasks": TASK_CONFIG,
                                                       "max_steps": 150, **kwargs})


def test_importing_sim_registers_the_env_and_nothing_above_sim():
    code = ("import sys, gymnasium, sim; assert 'spoc/Nav-v0' in gymnasium.registry; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'datagen', 'agents', 'eval', 'training', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("extra", [{}, {"depth": True, "odometry": True}],
                         ids=["rgb", "rgb-depth-odometry"])
def test_gymnasium_checker_passes(houses, extra):
    env = make(houses, render_mode="rgb_array", **extra)
    check_env(env.unwrapped)
    space = env.observation_space
    assert set(space) == {"rgb", "goal", "task", *extra}
    assert space["rgb"].shape == (48, 64, 3) and space["rgb"].dtype == np.uint8
    assert space["goal"].n == len(TASK_CONFIG.goals()) and space["task"].n == len(TASKS)
    assert env.action_space.n == len(ACTIONS)
    assert env.unwrapped.actions == ACTIONS and env.unwrapped.goals == tuple(TASK_CONFIG.goals())
    if extra:
        obs, _ = env.reset(seed=0)
        assert obs["depth"].shape == (48, 64) and (obs["depth"] > 0).all()
        assert obs["odometry"].tolist() == [0.0, 0.0, 0.0]
    env.close()


def test_reset_with_a_seed_gives_the_same_episode(houses):
    a, b = make(houses), make(houses)
    obs_a, info_a = a.reset(seed=7)
    a.step(MOVE_AHEAD)
    obs_a2, info_a2 = a.reset(seed=7)
    obs_b, info_b = b.reset(seed=7)
    for obs, info in ((obs_a2, info_a2), (obs_b, info_b)):
        assert info == info_a
        assert obs.keys() == obs_a.keys()
        assert all(np.array_equal(obs[k], obs_a[k]) for k in obs)
    episodes = {(i["house_id"], i["episode_seed"]) for i in
                (a.reset(seed=s)[1] for s in range(4))}
    assert len(episodes) == 4
    a.close()
    b.close()


def test_the_oracles_actions_succeed_with_spl_1(houses):
    env, policy = make(houses), OraclePolicy()
    tasks = set()
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        policy.reset(1)
        assert env.observation_space.contains(obs)
        assert env.unwrapped.goals[obs["goal"]] == info["goal"]
        assert TASKS[obs["task"]] == info["task"]
        total, start_distance, done = 0.0, info["distance_to_goal"], False
        while not done:
            action = int(policy.act({"expert": torch.tensor([info["expert"]])})[0])
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            done = terminated or truncated
        tasks.add(info["task"])
        assert terminated and not truncated and action == END and info["success"]
        assert info["path_length"] == info["shortest_path_length"] > 0
        assert spl(info["success"], info["shortest_path_length"], info["path_length"]) == 1.0
        assert info["distance_to_goal"] == 0.0 and not info["collided"]
        assert start_distance == pytest.approx(info["shortest_path_length"], abs=1e-6)
        expected = 2.5 - 0.01 * info["steps"] + info["shortest_path_length"]
        assert total == pytest.approx(expected, abs=1e-6)
    assert tasks == set(TASKS)
    env.close()


def test_end_away_from_the_goal_fails_and_max_steps_truncates(houses):
    env = make(houses, odometry=True, render_mode="rgb_array")
    _, info = env.reset(seed=3)
    _, reward, terminated, truncated, info = env.step(END)
    assert terminated and not truncated and not info["success"]  # a start is never a goal
    assert reward == pytest.approx(-0.01)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(END)
    env = make(houses, odometry=True, render_mode="rgb_array", max_steps=4,
               success_reward=10.0, step_penalty=0.5, progress_weight=0.0)
    obs, info = env.reset(seed=3)
    for t in range(4):
        obs, reward, terminated, truncated, info = env.step(ROTATE_RIGHT)
        assert reward == -0.5 and not terminated and truncated == (t == 3)
        assert np.array_equal(env.render(), obs["rgb"])
    assert obs["odometry"].tolist() == [0.0, 0.0, 0.0]  # four quarter turns
    assert info["steps"] == 4 and info["path_length"] == 0.0 and not info["success"]
    env.close()


def test_bad_input_is_one_line(houses, tmp_path):
    cases = [({"houses": str(tmp_path / "missing.jsonl.gz")}, "no such file"),
             ({"houses": houses, "max_steps": 0}, "max_steps"),
             ({"houses": houses, "step_penalty": float("nan")}, "step_penalty"),
             ({"houses": houses, "tasks": None, "sample_attempts": 0}, "sample_attempts")]
    for kwargs, words in cases:
        with pytest.raises(InputError) as err:
            gym.make(sim.NAV_ENV_ID, **kwargs)
        assert words in str(err.value) and len(str(err.value).splitlines()) == 1
    with pytest.raises(InputError, match="render_mode 'ansi'"):
        NavEnv(houses, render_mode="ansi")  # gym.make wraps "human" itself


@pytest.mark.parametrize("vector", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv],
                         ids=["sync", "async"])
def test_vectorised_envs_step(houses, vector):
    envs = vector([lambda: make(houses, max_steps=5)] * 2)
    obs, info = envs.reset(seed=0)
    assert obs["rgb"].shape == (2, 48, 64, 3) and obs["goal"].shape == (2,)
    assert info["house_id"][0] != info["house_id"][1] or \
        info["episode_seed"][0] != info["episode_seed"][1]
    for _ in range(6):  # past max_steps: the copies reset themselves
        obs, reward, terminated, truncated, info = envs.step(np.array([MOVE_AHEAD] * 2))
        assert reward.shape == (2,) and obs["rgb"].shape == (2, 48, 64, 3)
    envs.close()
