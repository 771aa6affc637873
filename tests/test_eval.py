"""spoc-eval: metrics, baselines through the harness, determinism across workers, reports,
checkpoint policies and bad input. Tiny camera (48x64), few episodes, fixture houses."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from training_helpers import palette_detector

from datagen.constants import DATASET_VERSION, OBJECTNAV_TARGETS, ROOMNAV_TARGETS
from eval.cli import main
from eval.compare import acting
from eval.metrics import (
    NOTHING,
    EpisodeResult,
    aggregate,
    distance_bin,
    distance_label,
    mcnemar_p,
    outcomes,
    spl,
    stopped_at,
    wilson_interval,
)
from eval.report import report_tables
from sim.lattice import ACTIONS

FIXTURES = Path(__file__).parent / "fixtures"
TINY = ["--camera.height", "48", "--camera.width", "64", "--tasks.min_pixels", "4",
        "--max-steps", "150", "--progress", "false"]
GOALS = [f"objectnav/{t}" for t in OBJECTNAV_TARGETS] + [f"roomnav/{t}" for t in ROOMNAV_TARGETS]


def write_houses(path: Path, split: str | None = None, prefix: str = "val",
                 names: tuple[str, ...] = ("143.json", "house_3703.json")) -> Path:
    """Fixture houses as a .jsonl.gz with ids ``{prefix}-0-{i}``."""
    with gzip.open(path, "wt") as f:
        for i, name in enumerate(names):
            house = json.loads((FIXTURES / name).read_text())
            house["metadata"]["houseId"] = f"{prefix}-0-{i}"
            if split is not None:
                house["metadata"]["generator"] = {"split": split}
            f.write(json.dumps(house) + "\n")
    return path


@pytest.fixture(scope="module")
def houses(tmp_path_factory) -> Path:
    return write_houses(tmp_path_factory.mktemp("houses") / "val.jsonl.gz")


def run_eval(out: Path, houses: Path, *args: str) -> dict:
    main(["run", "--houses", str(houses), "--out", str(out), "--seed", "0", *TINY, *args])
    return json.loads((out / "eval_info.json").read_text())


def bad_input(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("k, n, lo, hi", [
    (0, 10, 0.0, 0.27753),  # upper = z^2 / (n + z^2)
    (10, 10, 0.72247, 1.0),
    (5, 10, 0.23659, 0.76341),
    (81, 263, 0.25529, 0.36621),  # worked by hand from the formula
    (1, 1, 0.20654, 1.0),
])
def test_wilson_interval_known_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_spl_definition():
    assert spl(True, 3.0, 3.0) == 1.0
    assert spl(True, 3.0, 6.0) == 0.5
    assert spl(True, 3.0, 2.0) == 1.0  # p < l cannot beat 1
    assert spl(False, 3.0, 3.0) == 0.0
    assert spl(True, 0.0, 1.0) == 1.0


def test_aggregate_breakdowns():
    def row(k, task, target, success, rooms):
        return EpisodeResult(k, f"h{k}", task, target, success, float(success), 5, 1.0, 1.0,
                             0.0, 0, k, rooms)

    rows = [row(0, "objectnav", "Bed", True, 2), row(1, "objectnav", "Bed", False, 4),
            row(2, "roomnav", "Kitchen", True, 4), row(3, "objectnav", "Mug", False, 2)]
    agg = aggregate(rows, max_steps=10)
    assert agg["success_rate"] == 0.5 and agg["spl"] == 0.5
    assert agg["success_ci95"] == list(wilson_interval(2, 4))
    assert agg["per_target"]["objectnav/Bed"]["success_rate"] == 0.5
    assert agg["per_task"]["roomnav"]["num_episodes"] == 1
    assert set(agg["by_num_rooms"]) == {"2", "4"}
    assert list(agg["by_distance"]) == ["0-2 m"] and agg["outcomes"]["ended_away"] == 0.5


def test_distance_bins_in_order():
    assert [distance_bin(m) for m in (0.0, 1.99, 2.0, 5.0, 8.0, 30.0)] == [0, 0, 1, 2, 3, 3]
    assert [distance_label(i) for i in range(4)] == ["0-2 m", "2-4 m", "4-8 m", "8+ m"]
    rows = [EpisodeResult(k, "h", "roomnav", "Kitchen", False, 0.0, 5, 1.0, m, m, 0, k, 2)
            for k, m in enumerate((12.0, 3.0, 0.5, 9.0))]
    assert list(aggregate(rows, 10)["by_distance"]) == ["0-2 m", "2-4 m", "8+ m"]


def test_outcomes_split_failures_by_how_they_ended():
    def row(success, steps, reached, final, path=4.0, shortest=2.0, view=None):
        return EpisodeResult(0, "h", "objectnav", "Bed", success, 0.0, steps, path, shortest,
                             final, 0, 0, 2, reached, view is not None, view)

    rows = [row(True, 8, True, 0.0, view=0.8), row(False, 100, False, 3.0),  # timed out
            row(False, 20, True, 1.0, path=6.0),  # stood at the goal, left, ended 1 m away
            row(False, 30, False, 5.0, path=2.0, view=3.5)]  # ended 5 m away, the bed in view
    o = outcomes(rows, max_steps=100)
    assert (o["ended_away"], o["timed_out"], o["left_goal"]) == (0.5, 0.25, 0.25)
    assert o["ended_away_final_distance_median"] == 3.0  # median of 1 and 5 m
    assert o["ended_away_path_ratio_median"] == 2.0  # median of 3x and 1x
    assert o["ended_away_target_in_view"] == 0.5 and o["ended_away_view_distance_median"] == 3.5
    old = [replace(r, target_in_view=None, target_view_distance=None) for r in rows]
    assert outcomes(old, 100)["ended_away_target_in_view"] is None  # rows without the field
    assert outcomes([], 10)["ended_away"] == 0.0


def test_stopped_at_counts_what_ended_away_objectnav_episodes_faced():
    def row(target, success, steps, front, in_view=False):
        return EpisodeResult(0, "h", "objectnav", target, success, 0.0, steps, 1.0, 1.0, 0.0, 0,
                             0, 2, False, in_view, None, None, front)

    rows = [row("Mug", False, 20, "Bowl"), row("Mug", False, 30, "Bowl", in_view=True),
            row("Mug", False, 25, NOTHING),
            row("Mug", True, 10, "Mug"), row("Mug", False, 100, "Sofa"),  # success, timeout
            row("Bed", False, 12, "Sofa"), row("Bed", False, 12, None)]  # None: an older row
    by_target = stopped_at(rows, max_steps=100)
    assert list(by_target) == ["Bed", "Mug"]
    assert by_target["Mug"] == {"ended_away": 3, "target_in_view": pytest.approx(1 / 3),
                                "stopped_at": {"Bowl": 2, NOTHING: 1}}
    assert list(by_target["Mug"]["stopped_at"]) == ["Bowl", NOTHING]  # most first
    assert by_target["Bed"] == {"ended_away": 1, "target_in_view": 0.0, "stopped_at": {"Sofa": 1}}

    info = {"run": {"max_steps": 100}, "per_episode": [r.row() for r in rows]}
    tables = {title.split(":")[0]: cells for title, _, cells in report_tables(info)}
    table = tables["ObjectNav episodes that ended away from the goal"]
    assert [r[:2] + r[3:] for r in table] == [["Bed", "1", "Sofa 1"],
                                              ["Mug", "3", "Bowl 2, nothing 1"]]
    info["per_episode"] = [replace(r, stopped_at=None).row() for r in rows]  # older rows
    assert "ObjectNav episodes that ended away from the goal" not in {
        title.split(":")[0] for title, _, _ in report_tables(info)}


def test_mcnemar_exact_p_values():
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 10) == pytest.approx(2 / 2 ** 10)
    assert mcnemar_p(1, 5) == mcnemar_p(5, 1) == pytest.approx(2 * 7 / 64)  # (1 + 6) / 2^6
    assert mcnemar_p(18, 5) == pytest.approx(0.0106, abs=1e-4)


# --------------------------------------------------------------------------- baselines


def test_oracle_scores_perfectly(houses, tmp_path):
    info = run_eval(tmp_path / "oracle", houses, "--policy", "oracle", "--episodes", "8",
                    "--videos", "0")
    agg = info["aggregated"]
    assert agg["num_episodes"] == 8 and agg["success_rate"] == 1.0 and agg["spl"] == 1.0
    for r in info["per_episode"]:
        assert r["success"] and r["spl"] == 1.0 and r["final_distance"] == 0.0
        assert r["path_length"] == r["shortest_length"] and r["collisions"] == 0
        assert r["reached_goal"]
        if r["task"] == "objectnav":  # the success test saw it, within max_distance
            assert r["target_in_view"] and r["target_view_distance"] <= 1.0
            assert r["target_pixels"] >= 4  # --tasks.min_pixels
            assert r["stopped_at"] not in (None, NOTHING)  # the target, or what it sits on
        else:
            assert r["target_in_view"] is r["target_view_distance"] is r["target_pixels"] is None
            assert r["stopped_at"] is None
    assert {r["task"] for r in info["per_episode"]} == {"objectnav", "roomnav"}
    assert {r["house_id"] for r in info["per_episode"]} == {"val-0-0", "val-0-1"}
    assert [r["episode"] for r in info["per_episode"]] == list(range(8))


def test_reached_goal_separates_stopping_from_navigating():
    """An agent that walks the expert's path but never ends reached the goal without
    succeeding; the expert itself reached it and succeeded."""
    from datagen.episodes import HouseContext, sample_episode
    from datagen.tasks import TaskConfig
    from eval.episode import EpisodeRun, RolloutSettings
    from eval.slots import EpisodeSlot
    from sim.camera import CameraConfig
    from sim.env import EmbeddedEnv
    from sim.house import load_houses
    from sim.lattice import END, ROTATE_LEFT

    camera, tasks = CameraConfig(height=48, width=64), TaskConfig(min_pixels=4)
    env = EmbeddedEnv(camera)
    ctx = HouseContext(next(load_houses(FIXTURES / "house_3703.json")), env, tasks)
    ep = next(e for seed in range(20) if not isinstance(e := sample_episode(ctx, "e", seed, 100),
                                                          str))
    motions = ep.path.actions[:-1]
    for last, wanted in ((END, (True, True)), (ROTATE_LEFT, (False, True))):
        settings = RolloutSettings(camera=camera, tasks=tasks, goals=(ep.goal,),
                                   max_steps=len(motions) + 1)
        run = EpisodeRun(env, ctx, ep, EpisodeSlot(0, 0, 0), settings)
        results = [run.advance(a, settings) for a in [*motions, last]]
        assert results[:-1] == [None] * len(motions)
        assert (results[-1].success, results[-1].reached_goal) == wanted
        assert aggregate([results[-1]], settings.max_steps)["reached_goal_rate"] == 1.0


def test_random_and_forward_score_low(houses, tmp_path):
    for name in ("random", "forward"):
        info = run_eval(tmp_path / name, houses, "--policy", name, "--episodes", "8",
                        "--videos", "0")
        assert info["aggregated"]["success_rate"] <= 0.25, name
        assert info["aggregated"]["num_episodes"] == 8
    forward = json.loads((tmp_path / "forward" / "eval_info.json").read_text())
    assert all(r["collisions"] == 1 or r["steps"] == 150 for r in forward["per_episode"])


def test_same_episodes_for_every_policy(houses, tmp_path):
    a = run_eval(tmp_path / "a", houses, "--policy", "oracle", "--episodes", "6", "--videos", "0")
    b = run_eval(tmp_path / "b", houses, "--policy", "random", "--episodes", "6", "--videos", "0")
    key = ("house_id", "task", "target", "seed", "shortest_length")
    assert [[r[k] for k in key] for r in a["per_episode"]] == \
        [[r[k] for k in key] for r in b["per_episode"]]


# --------------------------------------------------------------------------- checkpoints


def write_checkpoint(path: Path, train_house_ids: list[str], version: str = DATASET_VERSION,
                     target_box: bool = False, seed: int = 0, goals: list[str] = GOALS,
                     width: int = 64, room_anchors: dict | None = None,
                     train_house_hashes: list[str] = ()) -> Path:
    """An untrained tiny policy checkpoint (weights drawn with ``seed``) trained on 48x64
    frames of "train" houses (their ids and content hashes)."""
    from agents.checkpoint import write_untrained_checkpoint

    policy = {"image_size": (32, 48), "channels": (8, 16), "groups": 4, "pool_size": (2, 2),
              "feature_dim": 32, "goal_dim": 8, "action_dim": 8, "hidden_dim": 32,
              "target_box": target_box, "box_dim": 8, "room_anchors": room_anchors or {}}
    info = {"version": version, "actions": list(ACTIONS), "goals": list(goals),
            "camera": {"height": 48, "width": width, "vfov": 59.0, "eye_height": 1.5,
                       "pitch": 30.0},
            "agent": {"grid": 0.25, "headings": 4, "radius": 0.2},
            "config": {"tasks": {"mix": {"objectnav": 0.8, "roomnav": 0.2}, "min_pixels": 4}}}
    return write_untrained_checkpoint(path, policy, info, train_house_ids, seed=seed,
                                      train_house_hashes=train_house_hashes)


def test_checkpoint_policy_same_results_with_1_and_2_workers(houses, tmp_path):
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", ["train-0-0", "train-0-1"])
    base = ["--episodes", "6", "--videos", "0", "--max-steps", "40"]
    one = run_eval(tmp_path / "w1", houses, "--checkpoint", str(ckpt), "--workers", "1", *base)
    two = run_eval(tmp_path / "w2", houses, "--checkpoint", str(ckpt), "--workers", "2", *base)
    assert one["per_episode"] == two["per_episode"]
    assert one["aggregated"] == two["aggregated"]
    assert one["run"]["camera"]["height"] == 48 and one["aggregated"]["num_episodes"] == 6
    assert one["run"]["trained_steps"] == 0  # which checkpoint a row is: its step is recorded
    r1 = run_eval(tmp_path / "r1", houses, "--policy", "random", "--workers", "1", *base)
    r2 = run_eval(tmp_path / "r2", houses, "--policy", "random", "--workers", "2", *base)
    assert r1["per_episode"] == r2["per_episode"] and r1["run"]["trained_steps"] is None


def test_sampled_actions_are_seeded_per_episode(houses, tmp_path, capsys):
    """--sample true draws from the softmax: same rows for 1 and 2 workers and reruns, other
    rows than argmax; baselines refuse it."""
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", ["train-0-0", "train-0-1"])
    base = ["--checkpoint", str(ckpt), "--episodes", "6", "--videos", "0", "--max-steps", "40"]
    one = run_eval(tmp_path / "s1", houses, *base, "--workers", "1", "--sample", "true")
    two = run_eval(tmp_path / "s2", houses, *base, "--workers", "2", "--sample", "true")
    greedy = run_eval(tmp_path / "g", houses, *base, "--workers", "1")
    assert one["per_episode"] == two["per_episode"] and one["run"]["sample"] is True
    assert one["per_episode"] != greedy["per_episode"]
    err = bad_input(capsys, ["run", "--houses", str(houses), "--policy", "random", "--sample",
                             "true", "--out", str(tmp_path / "x")])
    assert "--sample" in err


def test_end_threshold_overrules_an_unsure_end():
    """--end_threshold: an argmax ``end`` below the threshold becomes the most probable other
    action, which the policy is told it executed; a sure ``end`` and other actions stand."""
    from eval.rollout import policy_actions
    from sim.lattice import END

    class Fixed:
        def __init__(self, probs):
            self.logits, self.fed = torch.tensor(probs).log(), None

        def act(self, obs, return_logits=False):
            action = self.logits.argmax(-1)
            return (action, self.logits) if return_logits else action

        def executed(self, actions):
            self.fed = list(actions)

    probs = [[0.1, 0.3, 0.2, 0.4],   # end, unsure: rotate_left (the next most probable)
             [0.05, 0.05, 0.1, 0.8],  # end, sure
             [0.6, 0.1, 0.1, 0.2]]    # move_ahead
    policy = Fixed(probs)
    assert policy_actions(policy, {}, [None] * 3) == [END, END, 0]  # argmax
    assert policy_actions(policy, {}, [None] * 3, end_threshold=0.5) == [1, END, 0]
    assert policy.fed == [1, END, 0]
    assert policy_actions(policy, {}, [None] * 3, end_threshold=0.9) == [1, 2, 0]
    runs = [SimpleNamespace(rng=None, episode=SimpleNamespace(task=task))
            for task in ("roomnav", "objectnav", "roomnav")]  # a threshold per task
    assert policy_actions(policy, {}, runs, 0.9, {"roomnav": 0.3}) == [END, 2, 0]
    assert policy_actions(policy, {}, runs, None, {"objectnav": 0.9}) == [END, 2, 0]


def test_end_threshold_by_task_replaces_the_threshold_for_its_tasks(houses, tmp_path, capsys):
    """--end_threshold_by_task: one threshold for every task acts as --end_threshold does; the
    run records it; an unknown task or a baseline policy is refused."""
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", ["train-0-0", "train-0-1"])
    base = ["--checkpoint", str(ckpt), "--episodes", "6", "--videos", "0", "--max-steps", "40",
            "--workers", "1"]
    flat = run_eval(tmp_path / "flat", houses, *base, "--end_threshold", "0.01")
    by_task = run_eval(tmp_path / "task", houses, *base, "--end_threshold", "0.95",
                       "--end_threshold_by_task", '{"objectnav": 0.01, "roomnav": 0.01}')
    assert by_task["per_episode"] == flat["per_episode"]
    strict = run_eval(tmp_path / "strict", houses, *base, "--end_threshold", "0.95")
    assert strict["per_episode"] != flat["per_episode"]  # so the per-task values were used
    assert by_task["run"]["end_threshold_by_task"] == {"objectnav": 0.01, "roomnav": 0.01}
    report = (tmp_path / "task" / "report.md").read_text()
    assert "- end_threshold_by_task: objectnav 0.01, roomnav 0.01" in report
    assert acting(by_task["run"]).startswith("argmax, end >= 0.95, objectnav end >= 0.01")
    err = bad_input(capsys, ["run", "--houses", str(houses), *base, "--end_threshold_by_task",
                             '{"pointnav": 0.5}', "--out", str(tmp_path / "x")])
    assert "unknown task 'pointnav'" in err
    err = bad_input(capsys, ["run", "--houses", str(houses), "--policy", "random",
                             "--end_threshold_by_task", '{"roomnav": 0.5}', "--out",
                             str(tmp_path / "y")])
    assert "--end_threshold" in err


def test_end_threshold_is_recorded_and_checked(houses, tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", ["train-0-0", "train-0-1"])
    base = ["--checkpoint", str(ckpt), "--episodes", "4", "--videos", "0", "--max-steps", "30"]
    info = run_eval(tmp_path / "t", houses, *base, "--end_threshold", "0.99")
    assert info["run"]["end_threshold"] == 0.99
    for args in (["--end_threshold", "0"], ["--end_threshold", "0.5", "--sample", "true"]):
        err = bad_input(capsys, ["run", "--houses", str(houses), *base, *args,
                                 "--out", str(tmp_path / "x")])
        assert "--end_threshold" in err
    err = bad_input(capsys, ["run", "--houses", str(houses), "--policy", "forward",
                             "--end_threshold", "0.5", "--out", str(tmp_path / "x")])
    assert "--end_threshold" in err


def test_forget_clears_the_memory_and_keeps_the_previous_action(tmp_path):
    """obs["forget"] (--probe.memory_steps): that row steps as from a zero state with its previous
    action kept, like a training chunk that starts mid-episode; other rows remember."""
    from agents.checkpoint import load_policy

    policy, _ = load_policy(write_checkpoint(tmp_path / "tiny.ckpt", ["train-0-0"]))
    rng = np.random.default_rng(0)
    obs = [{"rgb": rng.integers(0, 256, (2, 48, 64, 3), dtype=np.uint8),
            "goal": torch.tensor([0, 1]), "first": torch.tensor([t == 0] * 2)} for t in range(3)]
    policy.reset(2)
    for o in obs[:2]:
        policy.act(o)
    prev = policy._prev_action.clone()
    forgot = policy.step({**obs[2], "forget": torch.tensor([True, False])})
    policy.reset(2)
    policy._prev_action = prev
    fresh = policy.step(obs[2])
    assert torch.equal(forgot[0], fresh[0]) and not torch.allclose(forgot[1], fresh[1])


def test_memory_steps_is_recorded_and_checked(houses, tmp_path, capsys, monkeypatch):
    from eval.episode import RolloutSettings
    from eval.probes import ProbeConfig
    from eval.rollout import PolicySpec, run_slots
    from eval.slots import plan_slots
    from sim.camera import CameraConfig
    from sim.house import load_houses
    from sim.lattice import ROTATE_LEFT

    class Turner:  # turns in place, recording which steps it was told to forget
        def __init__(self):
            self.forget = []

        def reset(self, batch):
            pass

        def act(self, obs):
            self.forget.append(obs["forget"].tolist())
            return torch.full((len(obs["goal"]),), ROTATE_LEFT)

    with monkeypatch.context() as m:
        turners = []
        m.setattr(PolicySpec, "build",
                  lambda self, settings=None: turners.append(Turner()) or turners[-1])
        settings = RolloutSettings(camera=CameraConfig(height=48, width=64), max_steps=10,
                                   envs_per_worker=1, goals=tuple(GOALS))
        outcomes = run_slots(PolicySpec(checkpoint="x", probe=ProbeConfig(memory_steps=4)),
                             dict(enumerate(load_houses(houses))), plan_slots(2, 2, seed=0),
                             settings)
        ran = sum(o.result is not None for o in outcomes)  # each runs out its 10 steps
        assert ran > 0
        assert [f[0] for f in turners[0].forget] == [t in (4, 8) for t in range(10)] * ran
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", ["train-0-0", "train-0-1"])
    base = ["--checkpoint", str(ckpt), "--episodes", "4", "--videos", "0", "--max-steps", "30"]
    whole = run_eval(tmp_path / "whole", houses, *base)
    longer = run_eval(tmp_path / "longer", houses, *base, "--probe.memory_steps", "30")
    assert longer["run"]["probe"] == {"memory_steps": 30} and whole["run"]["probe"] is None
    assert acting(longer["run"]) == "argmax, memory cleared every 30 steps"
    assert acting(whole["run"]) == "argmax"
    assert longer["per_episode"] == whole["per_episode"]  # never cleared within 30 steps
    for args in (["--probe.memory_steps", "0"],
                 ["--policy", "forward", "--probe.memory_steps", "8"]):
        argv = ["run", "--houses", str(houses), *(base if "--policy" not in args else []),
                *args, "--out", str(tmp_path / "x")]
        assert "--probe.memory_steps" in bad_input(capsys, argv)


def test_the_appearance_probe_changes_the_look_and_nothing_else(houses, tmp_path, capsys):
    """--probe.appearance renders each episode under a look drawn from (seed, episode): the
    same episodes (the oracle, which does not look, walks them alike), other pixels but the
    same depth and ids, the same look for every policy; off, the bytes are the house's own."""
    from eval.episode import episode_look
    from eval.slots import plan_slots
    from sim.appearance import AppearanceConfig
    from sim.camera import CameraConfig
    from sim.env import EmbeddedEnv
    from sim.house import load_houses
    from sim.interface import Pose

    base = ["--policy", "oracle", "--episodes", "4", "--videos", "0"]
    plain = run_eval(tmp_path / "plain", houses, *base)
    shifted = run_eval(tmp_path / "shifted", houses, *base, "--probe.appearance", "1")
    assert shifted["run"]["probe"] == {"appearance": 1.0} and plain["run"]["probe"] is None
    assert shifted["per_episode"] == plain["per_episode"]
    assert acting(shifted["run"]) == "looks shifted at 1 of their bounds"

    slot = plan_slots(2, 2, seed=0)[1]
    look = episode_look(AppearanceConfig.uniform(1.0), slot)
    assert look == episode_look(AppearanceConfig.uniform(1.0), slot)
    assert look != episode_look(AppearanceConfig.uniform(1.0), plan_slots(2, 2, seed=0)[0])
    house = next(iter(load_houses(houses))).house
    env = EmbeddedEnv(CameraConfig(height=48, width=64))
    lattice = env.load(house)[1]
    start = Pose(*lattice.position(*lattice.reachable_states()[0][:2]), 0.0)
    own = [env.reset(house, start), env.step("rotate_left").observation]
    env.appearance = look
    new = [env.reset(house, start), env.step("rotate_left").observation]
    for a, b in zip(own, new):
        assert not np.array_equal(a.rgb, b.rgb)
        assert np.array_equal(a.depth, b.depth) and np.array_equal(a.ids, b.ids)
    env.appearance = None
    again = env.reset(house, start)
    assert np.array_equal(again.rgb, own[0].rgb)
    for value, backend in (("1.5", "embedded"), ("0.5", "ai2thor")):
        argv = ["run", "--houses", str(houses), *base, "--probe.appearance", value,
                "--backend", backend, "--out", str(tmp_path / "x")]
        assert "--probe.appearance" in bad_input(capsys, argv)


def test_an_ensemble_acts_on_its_members_mean_probabilities(tmp_path):
    """Each step gives the log of the members' mean probabilities; each member keeps its own
    memory and is fed the ensemble's action, so it steps as it would alone on that episode."""
    from agents.checkpoint import load_policy
    from agents.ensemble import PolicyEnsemble

    paths = [write_checkpoint(tmp_path / f"m{i}.ckpt", [], seed=i) for i in range(2)]
    ensemble = PolicyEnsemble([load_policy(p)[0] for p in paths])
    alone = [load_policy(p)[0] for p in paths]  # the same weights, stepped separately
    rng = np.random.default_rng(0)
    ensemble.reset(3)
    for a in alone:
        a.reset(3)
    for t in range(4):
        obs = {"rgb": rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8),
               "goal": torch.tensor([0, 5, 9]), "first": torch.tensor([t == 0, t == 0, t == 2]),
               "collided": torch.tensor([False, t == 3, False])}
        action, logits = ensemble.act(obs, return_logits=True)
        probs = torch.stack([a.step(obs).softmax(-1) for a in alone]).mean(0)
        torch.testing.assert_close(logits.exp(), probs)
        assert torch.equal(action, probs.argmax(-1))
        taken = (action + t) % len(ACTIONS)  # what the rollout executed (a stopping rule's)
        ensemble.executed(taken)
        for a in alone:
            a.executed(taken)
        assert all(torch.equal(m._prev_action, taken) for m in ensemble.members)
    one = PolicyEnsemble([load_policy(paths[0])[0]])  # one member: that policy's probabilities
    one.reset(3)
    alone[0].reset(3)
    torch.testing.assert_close(one.step(obs).exp(), alone[0].step(obs).softmax(-1))
    with pytest.raises(ValueError, match="at least one"):
        PolicyEnsemble([])


def test_ensemble_runs_are_recorded_and_checked(houses, tmp_path, capsys):
    """--ensemble: the checkpoint with itself acts as it does alone; with another policy it
    acts otherwise, the same with 1 and 2 workers; members that do not match, or were
    trained on the evaluation houses, are refused in one line."""
    a = write_checkpoint(tmp_path / "a.ckpt", ["train-0-0"])
    b = write_checkpoint(tmp_path / "b.ckpt", ["train-0-1"], seed=1)
    base = ["--checkpoint", str(a), "--episodes", "6", "--videos", "0", "--max-steps", "40"]
    alone = run_eval(tmp_path / "alone", houses, *base)
    twice = run_eval(tmp_path / "twice", houses, *base, "--ensemble", f"[{a}]")
    assert twice["per_episode"] == alone["per_episode"]
    pair = run_eval(tmp_path / "pair", houses, *base, "--ensemble", f"[{b}]", "--workers", "2")
    pair1 = run_eval(tmp_path / "pair1", houses, *base, "--ensemble", f"[{b}]")
    assert pair["per_episode"] == pair1["per_episode"] != alone["per_episode"]
    assert pair["run"]["ensemble"] == [str(b)] and alone["run"]["ensemble"] is None
    assert acting(pair["run"]) == "argmax of the mean of 2 policies"
    assert f"- ensemble: {b}" in (tmp_path / "pair" / "report.md").read_text()
    bad = {"seen": (write_checkpoint(tmp_path / "s.ckpt", ["val-0-1"]), "training data"),
           "goals": (write_checkpoint(tmp_path / "g.ckpt", [], goals=GOALS[:-1]), "goal"),
           "camera": (write_checkpoint(tmp_path / "c.ckpt", [], width=80), "camera"),
           "box": (write_checkpoint(tmp_path / "t.ckpt", [], target_box=True), "target_box"),
           "missing": (tmp_path / "nothing.ckpt", "--ensemble")}
    for name, (path, words) in bad.items():
        err = bad_input(capsys, ["run", "--houses", str(houses), *base, "--ensemble",
                                 f"[{path}]", "--out", str(tmp_path / name)])
        assert words in err, (name, err)
    err = bad_input(capsys, ["run", "--houses", str(houses), "--policy", "random",
                             "--ensemble", f"[{b}]", "--out", str(tmp_path / "x")])
    assert "--ensemble" in err


def test_blocked_input_can_be_withheld(houses, tmp_path, capsys, monkeypatch):
    """--probe.blocked_input false (an ablation) hides collisions from a checkpoint policy;
    by default it sees them."""
    from eval.episode import RolloutSettings
    from eval.probes import ProbeConfig
    from eval.rollout import PolicySpec, run_slots
    from eval.slots import plan_slots
    from sim.camera import CameraConfig
    from sim.house import load_houses
    from sim.lattice import MOVE_AHEAD

    class Walker:  # walks into the first wall, recording what it was told
        def __init__(self):
            self.seen = []

        def reset(self, batch):
            pass

        def act(self, obs):
            self.seen.append(obs.get("collided"))
            return torch.full((len(obs["goal"]),), MOVE_AHEAD)

    walkers = []
    monkeypatch.setattr(PolicySpec, "build",
                        lambda self, settings=None: walkers.append(Walker()) or walkers[-1])
    records = dict(enumerate(load_houses(houses)))
    settings = RolloutSettings(camera=CameraConfig(height=48, width=64), max_steps=30,
                               envs_per_worker=2, goals=tuple(GOALS))
    slots = plan_slots(len(records), 2, seed=0)
    for told in (True, False):
        outcomes = run_slots(PolicySpec(checkpoint="x", probe=ProbeConfig(blocked_input=told)),
                             records, slots, settings)
        assert sum(o.result.collisions for o in outcomes) > 0
        seen = walkers[-1].seen
        assert all(c is None for c in seen) if not told else any(c.any() for c in seen)
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", ["train-0-0", "train-0-1"])
    info = run_eval(tmp_path / "withheld", houses, "--checkpoint", str(ckpt), "--episodes", "2",
                    "--videos", "0", "--max-steps", "20", "--probe.blocked_input", "false")
    assert info["run"]["probe"] == {"blocked_input": False}
    err = bad_input(capsys, ["run", "--houses", str(houses), "--policy", "forward",
                             "--probe.blocked_input", "false", "--out", str(tmp_path / "x")])
    assert "--probe.blocked_input" in err


def test_a_target_box_policy_is_given_the_targets_box(houses, monkeypatch):
    """A policy whose config takes the target's box gets ``target_box`` (B, 6) at every step:
    seen exactly where visible_objects counts a target pixel, sized by the largest instance;
    other policies get none."""
    from types import SimpleNamespace

    from eval.episode import RolloutSettings
    from eval.rollout import PolicySpec, lockstep, run_slots
    from eval.slots import plan_slots
    from sim.camera import CameraConfig
    from sim.house import load_houses
    from sim.lattice import ROTATE_LEFT

    records = dict(enumerate(load_houses(houses)))
    settings = RolloutSettings(camera=CameraConfig(height=48, width=64), max_steps=8,
                               envs_per_worker=2, goals=tuple(GOALS))
    slots = plan_slots(len(records), 8, seed=0)
    seen = []

    def spin(runs):  # checks every live run's box against the env's own count, and turns
        for run in filter(None, runs):
            box = run.target_box()
            pixels = [v.pixels for v in run.env.visible_objects().values()
                      if run.episode.task == "objectnav" and v.object_type == run.episode.target]
            assert box[0] == bool(pixels)
            if pixels:
                assert box[5] == pytest.approx(np.sqrt(max(pixels) / (48 * 64)))
            seen.append(box[0])
        return [ROTATE_LEFT] * len(runs)

    lockstep(records, slots, settings, spin, lambda run, result: None, lambda slot, why: None)
    assert 0 < sum(seen) < len(seen)

    class Spinner:
        def __init__(self, boxes: bool):
            self.cfg, self.told = SimpleNamespace(target_box=boxes), []

        def reset(self, batch):
            pass

        def act(self, obs):
            self.told.append(obs.get("target_box"))
            return torch.full((len(obs["goal"]),), ROTATE_LEFT)

    for boxes in (True, False):
        spinner = Spinner(boxes)
        monkeypatch.setattr(PolicySpec, "build", lambda self, settings=None, built=spinner: built)
        run_slots(PolicySpec(checkpoint="x"), records, slots, settings)
        if boxes:
            assert all(t.shape == (2, 6) for t in spinner.told)
            assert sum(int(t[:, 0].sum()) for t in spinner.told) > 0
        else:
            assert all(t is None for t in spinner.told)


def test_a_detector_gives_the_box_read_from_the_frame(houses):
    """With a detector in the settings, a run's box is the detector's of the frame the policy
    sees (not the simulator's ids), and on these renders it sees what the simulator sees."""
    from eval.episode import RolloutSettings
    from eval.rollout import lockstep
    from eval.slots import plan_slots
    from sim.camera import CameraConfig
    from sim.detect import target_box
    from sim.house import load_houses
    from sim.lattice import ROTATE_LEFT

    detector = palette_detector()
    records = dict(enumerate(load_houses(houses)))
    settings = RolloutSettings(camera=CameraConfig(height=48, width=64), max_steps=8,
                               envs_per_worker=2, goals=tuple(GOALS), detector=detector)
    said, truth = [], []

    def spin(runs):
        for run in filter(None, runs):
            box = run.target_box()
            target = run.episode.target if run.episode.task == "objectnav" else None
            assert np.array_equal(box, detector.box(run.rgb, target))
            said.append(box[0])
            truth.append(target_box(run.env.observation.ids, run.is_target)[0])
        return [ROTATE_LEFT] * len(runs)

    lockstep(records, slots=plan_slots(len(records), 8, seed=0), settings=settings, act=spin,
             finished=lambda run, result: None, skipped=lambda slot, why: None)
    said, truth = np.array(said), np.array(truth)
    assert truth.sum() > 0 and (said == truth).mean() >= 0.9


def test_detector_is_recorded_and_checked(houses, tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "box.ckpt", ["train-0-0"], target_box=True)
    detector = tmp_path / "detector.json"
    palette_detector().save(detector)
    base = ["--houses", str(houses), "--episodes", "2", "--videos", "0", "--max-steps", "10",
            "--progress", "false"]
    main(["run", *base, "--checkpoint", str(ckpt), "--detector", str(detector),
          "--out", str(tmp_path / "det")])
    info = json.loads((tmp_path / "det" / "eval_info.json").read_text())
    assert info["run"]["detector"] == str(detector)
    main(["run", *base, "--checkpoint", str(ckpt), "--detector", str(detector),
          "--end_threshold", "0.7", "--out", str(tmp_path / "det-end")])
    capsys.readouterr()
    main(["compare", str(tmp_path / "det"), str(tmp_path / "det-end")])
    lines = capsys.readouterr().out.splitlines()  # compare says how each run acted
    rows = [next(line for line in lines if line.startswith(f"{name}: "))
            for name in ("det", "det-end")]
    assert "argmax, detector detector.json" in rows[0] and "end >= 0.7" not in rows[0]
    assert "argmax, end >= 0.7, detector detector.json" in rows[1]
    plain = write_checkpoint(tmp_path / "plain.ckpt", ["train-0-0"])
    assert "takes no target box" in bad_input(capsys, [
        "run", *base, "--checkpoint", str(plain), "--detector", str(detector), "--out", "x"])
    assert "--detector applies to a --checkpoint" in bad_input(capsys, [
        "run", *base, "--policy", "forward", "--detector", str(detector), "--out", "x"])
    palette_detector(["Mug"]).save(tmp_path / "mug.json")
    assert "has no colour for" in bad_input(capsys, [
        "run", *base, "--checkpoint", str(ckpt), "--detector", str(tmp_path / "mug.json"),
        "--out", "x"])
    (tmp_path / "bad.json").write_text("[]")
    assert "bad.json: not a detector" in bad_input(capsys, [
        "run", *base, "--checkpoint", str(ckpt), "--detector", str(tmp_path / "bad.json"),
        "--out", "x"])


ANCHORS = {"Bedroom": "Bed", "Bathroom": "Toilet", "Kitchen": "Fridge", "LivingRoom": "Sofa"}


def test_a_roomnav_goal_is_given_its_rooms_anchors_box(houses):
    """With room anchors in the settings, a RoomNav run's box is that of its room type's anchor:
    the simulator's ids, or a detector's reading of the frame; ObjectNav runs keep the
    target's."""
    from eval.episode import RolloutSettings
    from eval.rollout import lockstep
    from eval.slots import plan_slots
    from sim.camera import CameraConfig
    from sim.detect import target_box, target_table
    from sim.house import load_houses
    from sim.lattice import ROTATE_LEFT

    records = dict(enumerate(load_houses(houses)))
    detector = palette_detector([*OBJECTNAV_TARGETS, "Fridge"])
    for with_detector in (False, True):
        settings = RolloutSettings(camera=CameraConfig(height=48, width=64), max_steps=12,
                                   envs_per_worker=4, goals=tuple(GOALS), room_anchors=ANCHORS,
                                   detector=detector if with_detector else None)
        seen = []

        def spin(runs, with_detector=with_detector, seen=seen):
            for run in filter(None, runs):
                ep = run.episode
                boxed = ep.target if ep.task == "objectnav" else ANCHORS[ep.target]
                box = run.target_box()
                if with_detector:
                    assert np.array_equal(box, detector.box(run.rgb, boxed))
                else:
                    table = target_table(run.ctx.scene.boxes.object_type, boxed)
                    assert np.array_equal(box, target_box(run.env.observation.ids, table))
                if ep.task == "roomnav":
                    seen.append(box[0])
            return [ROTATE_LEFT] * len(runs)

        lockstep(records, plan_slots(len(records), 24, seed=0), settings, spin,
                 lambda run, result: None, lambda slot, why: None)
        assert sum(seen) > 0


def test_room_anchors_are_recorded_and_checked(houses, tmp_path, capsys):
    """A checkpoint trained with room anchors is evaluated with them (recorded, in the report
    and in how it acted); its detector must know the anchor types; ensemble members must
    share them."""
    ckpt = write_checkpoint(tmp_path / "a.ckpt", ["train-0-0"], target_box=True,
                            room_anchors=ANCHORS)
    detector = tmp_path / "detector.json"
    palette_detector([*OBJECTNAV_TARGETS, "Fridge"]).save(detector)
    base = ["--houses", str(houses), "--episodes", "4", "--videos", "0", "--max-steps", "10",
            "--progress", "false", "--checkpoint", str(ckpt)]
    main(["run", *base, "--detector", str(detector), "--out", str(tmp_path / "run")])
    info = json.loads((tmp_path / "run" / "eval_info.json").read_text())
    assert info["run"]["room_anchors"] == ANCHORS
    assert acting(info["run"]).endswith("rooms by Bed/Toilet/Fridge/Sofa")
    assert "- room_anchors: Bedroom Bed, Bathroom Toilet" in \
        (tmp_path / "run" / "report.md").read_text()
    palette_detector().save(tmp_path / "targets.json")
    err = bad_input(capsys, ["run", *base, "--detector", str(tmp_path / "targets.json"),
                             "--out", str(tmp_path / "x")])
    assert "has no colour for Fridge" in err and "--types" in err
    plain = write_checkpoint(tmp_path / "b.ckpt", ["train-0-0"], target_box=True)
    err = bad_input(capsys, ["run", *base, "--ensemble", f"[{plain}]", "--out",
                             str(tmp_path / "y")])
    assert "room_anchors" in err and str(plain) in err


def test_baseline_with_dataset_meets_the_checkpoints_episodes(houses, tmp_path):
    """--dataset DIR takes camera, agent, tasks and goals from DIR/info.json, as a checkpoint
    trained on DIR does, so baselines and the policy are scored on the same episodes."""
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", ["train-0-0"])
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    info = torch.load(ckpt, weights_only=False)["spoc_policy"]["dataset"]["info"]
    (dataset / "info.json").write_text(json.dumps(info))
    common = ["run", "--houses", str(houses), "--seed", "0", "--episodes", "6", "--videos", "0",
              "--max-steps", "40", "--progress", "false"]
    main([*common, "--checkpoint", str(ckpt), "--out", str(tmp_path / "policy")])
    main([*common, "--policy", "oracle", "--dataset", str(dataset), "--out", str(tmp_path / "o")])
    a, b = (json.loads((tmp_path / d / "eval_info.json").read_text()) for d in ("policy", "o"))
    key = ("house_id", "task", "target", "seed", "shortest_length")
    assert [[r[k] for k in key] for r in a["per_episode"]] == \
        [[r[k] for k in key] for r in b["per_episode"]]
    assert b["run"]["camera"]["height"] == 48 and b["aggregated"]["success_rate"] == 1.0


def test_baseline_with_a_missing_dataset_exits_2(houses, tmp_path, capsys):
    err = bad_input(capsys, ["run", "--houses", str(houses), "--policy", "oracle",
                             "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert "--dataset" in err and "info.json" in err


def test_acting_never_imports_training_or_lightning():
    """What acts loads and runs without the code that fitted it: the evaluation and every
    agent import neither ``training`` nor Lightning."""
    code = ("import sys, eval.cli, agents.map_agent, agents.checkpoint, agents.ensemble, "
            "agents.baselines; sys.exit(int(any(m.split('.')[0] in ('lightning', "
            "'pytorch_lightning', 'training') for m in sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --------------------------------------------------------------------------- reports


def test_report_files_videos_and_compare(houses, tmp_path, capsys):
    import av

    out = tmp_path / "run"
    info = run_eval(out, houses, "--policy", "oracle", "--episodes", "4", "--videos", "2")
    agg = info["aggregated"]
    assert 0.0 <= agg["success_ci95"][0] <= agg["success_rate"] <= agg["success_ci95"][1] <= 1
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    pct = f"{100 * agg['success_rate']:.1f}"
    for text in (md, page):
        assert pct in text and f"{agg['spl']:.3f}" in text
    for png in ("success_by_target.png", "success_by_rooms.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert len(info["videos"]) == 2
    rows = {r["episode"]: r for r in info["per_episode"]}
    for video in info["videos"]:
        assert f"<video controls muted src='{video}'" in page
        with av.open(str(out / video)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        episode = int(Path(video).stem.split("-")[1])
        assert len(frames) == rows[episode]["steps"]  # one frame per state; end adds none
        assert frames[0].shape[0] >= 48 and frames[0].shape[1] > 64
    capsys.readouterr()
    random_out = tmp_path / "random"
    run_eval(random_out, houses, "--policy", "random", "--episodes", "4", "--videos", "0")
    capsys.readouterr()
    main(["compare", str(out), str(random_out)])  # paired with the first run, the oracle
    table = capsys.readouterr().out
    assert f"run: {out} (oracle)" in table and f"random: {random_out} (random)" in table
    assert table.splitlines()[-5].split()[:3] == ["run*", "100.0", "[51.0,"]
    random_info = json.loads((random_out / "eval_info.json").read_text())
    wins = sum(r["success"] for r in random_info["per_episode"])
    p = mcnemar_p(4 - wins, 0)
    random_row = table.splitlines()[-4].split()  # won/lost and the McNemar p
    assert random_row[0] == "random" and f"0/{4 - wins}" in random_row and f"{p:.2g}" in random_row
    published = tmp_path / "random.json.gz"  # a run kept as results/ keeps it: gzipped
    published.write_bytes(gzip.compress((random_out / "eval_info.json").read_bytes()))
    main(["compare", str(out), str(published)])
    assert f"random: {published} (random)" in capsys.readouterr().out
    other = tmp_path / "other"  # other episodes: refused
    run_eval(other, houses, "--policy", "random", "--episodes", "3", "--videos", "0")
    capsys.readouterr()
    assert "different episodes" in bad_input(capsys, ["compare", str(out), str(other)])


def test_report_rebuilds_from_eval_info(houses, tmp_path, capsys):
    out = tmp_path / "run"
    run_eval(out, houses, "--policy", "forward", "--episodes", "4", "--videos", "0")
    info = json.loads((out / "eval_info.json").read_text())
    for key in ("outcomes", "by_distance"):  # as written before these tables existed
        del info["aggregated"][key]
    (out / "eval_info.json").write_text(json.dumps(info))
    (out / "report.md").unlink()
    capsys.readouterr()
    main(["report", str(out)])
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    md = (out / "report.md").read_text()
    assert "## How episodes ended" in md and "## By shortest-path distance" in md
    ended = sum(not r["success"] and r["steps"] < 150 for r in info["per_episode"])
    assert f"| {100 * ended / 4:.1f} |" in md.split("## How episodes ended")[1]
    (out / "eval_info.json").write_text(json.dumps({"run": {}, "per_episode": [{"x": 1}]}))
    err = bad_input(capsys, ["report", str(out)])
    assert str(out) in err and "unreadable eval_info.json" in err


# --------------------------------------------------------------------------- bad input


def test_bad_checkpoints_exit_2(houses, tmp_path, capsys):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    base = ["run", "--houses", str(houses), "--out", str(tmp_path / "x"), *TINY]
    assert "not a spoc-train policy checkpoint" in bad_input(capsys, [*base, "--checkpoint",
                                                                      str(junk)])
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, plain)
    assert "not a spoc-train" in bad_input(capsys, [*base, "--checkpoint", str(plain)])
    old = write_checkpoint(tmp_path / "old.ckpt", [], version="spoc-nav/0")
    assert "dataset version" in bad_input(capsys, [*base, "--checkpoint", str(old)])
    seen = write_checkpoint(tmp_path / "seen.ckpt", ["val-0-1"])
    assert "training data" in bad_input(capsys, [*base, "--checkpoint", str(seen)])
    assert "exactly one of" in bad_input(capsys, base)
    assert "unknown" in bad_input(capsys, [*base, "--policy", "greedy"])
    assert not (tmp_path / "x" / "eval_info.json").exists()


def test_bad_houses_exit_2(tmp_path, capsys):
    train = write_houses(tmp_path / "train.jsonl.gz", split="train", prefix="train")
    base = ["run", "--policy", "oracle", "--out", str(tmp_path / "x"), *TINY]
    assert "train split" in bad_input(capsys, [*base, "--houses", str(train)])
    assert "no such file" in bad_input(capsys, [*base, "--houses", str(tmp_path / "no.jsonl")])
    val = write_houses(tmp_path / "val.jsonl.gz", names=("house_3703.json",))  # no bathroom
    err = bad_input(capsys, [*base, "--houses", str(val), "--episodes", "2",
                             "--tasks.mix", '{"roomnav": 1.0}',
                             "--tasks.roomnav_targets", '["Bathroom"]',
                             "--sample_attempts", "2"])
    assert "zero valid episodes" in err
    assert not (tmp_path / "x" / "eval_info.json").exists()


def write_stripped(path: Path, name: str) -> Path:
    """A house file holding one fixture house without its metadata (no id, no split)."""
    house = json.loads((FIXTURES / name).read_text())
    del house["metadata"]
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(house) + "\n")
    return path


def test_training_houses_are_refused_by_content(houses, tmp_path, capsys):
    """A training house stripped of its metadata (so its id and split say nothing) is refused:
    a checkpoint's training houses by their content hashes, a baseline's by those of its
    --dataset's training split house file; held-out houses still run."""
    from common.files import sha256_file
    from sim.house import file_content_hashes

    train = write_houses(tmp_path / "train.jsonl.gz", split="train", prefix="train",
                         names=("house_3703.json",))
    hashes = list(file_content_hashes(str(train)).values())
    stripped = write_stripped(tmp_path / "renamed.jsonl.gz", "house_3703.json")
    ckpt = write_checkpoint(tmp_path / "tiny.ckpt", ["train-0-0"], train_house_hashes=hashes)
    base = ["run", "--out", str(tmp_path / "x"), "--episodes", "2", "--videos", "0", *TINY]
    err = bad_input(capsys, [*base, "--checkpoint", str(ckpt), "--houses", str(stripped)])
    assert f"--houses {stripped}: house 0 is one of the checkpoint's training houses" in err
    assert "held-out houses" in err
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    info = torch.load(ckpt, weights_only=False)["spoc_policy"]["dataset"]["info"]
    info["splits"] = {"train-noise": {"houses": {"path": str(train), "sha256": sha256_file(train)}}}
    (dataset / "info.json").write_text(json.dumps(info))
    # this info.json is an older one (no card, its house file outside the dataset): a hint
    # line comes first, then the error
    assert main([*base, "--policy", "oracle", "--dataset", str(dataset),
                 "--houses", str(stripped)]) == 2
    hint, err = capsys.readouterr().err.strip().splitlines()
    assert "written by an older spoc-datagen" in hint and "spoc-datagen upgrade" in hint
    assert f"house 0 is one of the houses of --dataset {dataset}'s training splits" in err
    held_out = write_stripped(tmp_path / "held_out.jsonl.gz", "143.json")
    assert main([*base, "--checkpoint", str(ckpt), "--houses", str(held_out)]) == 0
    assert main([*base, "--policy", "oracle", "--dataset", str(dataset), "--houses",
                 str(held_out)]) == 0


def test_episode_plan_is_even_and_seeded():
    from eval.slots import episode_seed, plan_slots, video_slots

    slots = plan_slots(3, 8, 5)
    assert [s.house for s in slots] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert episode_seed(5, 1, 0) == episode_seed(5, 1, 0) != episode_seed(5, 1, 1)
    assert video_slots(10, 3) == {0, 4, 9} and video_slots(10, 0) == frozenset()
