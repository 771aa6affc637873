"""DAgger: one tiny round end to end (mixed rollouts, oracle labels, shards, training, eval),
labels off the expert's path, verify on the grown dataset, seeded beta schedule and coins."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from training_helpers import palette_detector, write_dataset

import training.dagger.rollouts
from agents.checkpoint import load_policy
from datagen.constants import OBJECTNAV_TARGETS
from datagen.dataset import read_info, shard_paths, split_house_file
from datagen.episodes import HouseContext, HouseFile
from datagen.shards import META_KEYS, iter_episodes
from datagen.tasks import TaskConfig
from datagen.verify import check_episode, verify_dataset
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv
from sim.lattice import AgentConfig
from training.dagger.cli import main
from training.dagger.config import DaggerConfig, DaggerError, beta_schedule
from training.dagger.rollouts import coin_rng, mixed_rollouts, round_seed
from training.dagger.run import run_dagger
from training.dagger.shards import open_view
from training.data.houses import PoseRenderer

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TRAIN_ARGS = ["--trainer.enable_progress_bar", "false", "--data.batches_per_epoch", "2"]


def tiny_argv(data: Path, out: Path) -> list[str]:
    return ["--dataset", str(data), "--out", str(out),
            "--train_config", str(ROOT / "configs" / "train" / "tiny.yaml"),
            "--train_args", json.dumps(TRAIN_ARGS), "--initial_epochs", "1", "--rounds", "1",
            "--epochs_per_round", "1", "--beta0", "0.5", "--episodes_per_round", "6",
            "--episodes_per_shard", "3", "--max_steps", "40", "--envs", "2",
            "--eval_houses", str(FIXTURES / "143.json"), "--eval_episodes", "2",
            "--eval_max_steps", "30", "--sample", "true"]  # sampled: leaves the path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A 32x48 dataset on house_3703 (train 1x3, val 1x2), then one DAgger round."""
    tmp = tmp_path_factory.mktemp("dagger")
    data = write_dataset(tmp / "data", {"train": (1, 3), "val": (1, 2)})
    labels_before = sum(s["steps"] for s in read_info(data)["splits"]["train"]["shards"].values())
    assert main(tiny_argv(data, tmp / "run")) == 0
    info = json.loads((tmp / "run" / "dagger_info.json").read_text())
    return {"data": data, "out": tmp / "run", "info": info, "labels_before": labels_before}


def house_context(data: Path) -> HouseContext:
    info = read_info(data)
    houses = HouseFile.scan(split_house_file(data, info["splits"]["train"]["houses"]))
    env = EmbeddedEnv(CameraConfig(**info["camera"]), AgentConfig(**info["agent"]))
    return HouseContext(houses.read([0])[0], env, TaskConfig(**info["config"]["tasks"]))


def dagger_samples(run: dict) -> list[dict]:
    shards = run["info"]["rounds"][1]["shards"]
    return [s for k in shards for s in iter_episodes(shard_paths(run["data"], "train", k)[0])]


def test_one_round_end_to_end(run):
    rounds = run["info"]["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    r1 = rounds[1]
    assert r1["beta"] == 0.5 and r1["new_episodes"] == 6 and r1["new_labels"] > 0
    assert r1["total_expert_labels"] == run["labels_before"] + r1["new_labels"]
    assert r1["epochs"] == rounds[0]["epochs"] + 1
    assert r1["train_args"] == TRAIN_ARGS and r1["train_config"].endswith("tiny.yaml")
    for row in rounds:
        assert Path(row["checkpoint"]).is_file()
        assert 0.0 <= row["success"] <= 1.0 and 0.0 <= row["spl"] <= 1.0
        assert (Path(row["eval_dir"]) / "eval_info.json").is_file()
    table = (run["out"] / "dagger.md").read_text()
    assert "| 1 | 0.500 | 6 |" in table
    assert run["info"]["pending"] == {}


def test_new_shards_are_registered_and_verify(run):
    info = read_info(run["data"])
    train = info["splits"]["train"]
    assert train["num_shards"] == 1  # the expert split's identity is unchanged
    new = [f"shard-{k:06d}.tar" for k in run["info"]["rounds"][1]["shards"]]
    assert new and set(new) <= set(train["shards"]) and "shard-000000.tar" not in new
    assert sum(s["steps"] for s in train["shards"].values()) == \
        run["info"]["rounds"][1]["total_expert_labels"]
    assert verify_dataset(run["data"]) == []


def test_labels_are_the_oracle_at_visited_states_off_the_expert_path(run):
    ctx = house_context(run["data"])
    lat, off_path, successes = ctx.lattice, 0, []
    info = read_info(run["data"])
    poses = PoseRenderer(info, PoseRenderer.house_files(info, ["train"],
                                                        run["data"] / "info.json"))
    samples = dagger_samples(run)
    assert len(samples) == 6
    for sample in samples:
        meta, labels = sample["meta.json"], sample["actions.npy"]
        assert set(meta) == set(META_KEYS)
        assert meta["source"] == "dagger-1" and meta["split"] == "train"
        assert len(labels) == len(meta["poses"]) == meta["num_steps"]
        oracle = ctx.oracle(meta["task"], meta["target"])
        states = [(*lat.cell_of(x, z), lat.heading_of(yaw)) for x, z, yaw in meta["poses"]]
        s = meta["start"]
        expert = set(oracle.path((s["i"], s["j"], s["h"])).states)
        assert states[0] == (s["i"], s["j"], s["h"])
        for state, label in zip(states, labels):
            assert int(label) == oracle.expert_action(state)
        executed = sample["executed.npy"]  # what the mixed policy really did
        assert len(executed) == len(labels)
        for t in range(len(states) - 1):
            assert lat.step(states[t], int(executed[t]))[0] == states[t + 1]
        off_path += sum(state not in expert for state in states)
        successes.append(meta["success"])
        if meta["success"]:
            assert oracle.is_goal(states[-1])
        # the expert samples' per-step labels, at the visited states (off the path too)
        dist, pixels, box = (sample[k] for k in ("goal_dist.npy", "target_pixels.npy",
                                                 "target_box.npy"))
        np.testing.assert_allclose(dist, [oracle.path(st).metres for st in states], atol=1e-5)
        assert np.array_equal(box, poses.boxes(meta, "train"))
        assert np.array_equal(box[:, 0] == 1, pixels > 0)
        assert (pixels >= 0).all() == (meta["task"] == "objectnav")
    assert off_path > 0
    rollout = run["info"]["rounds"][1]["rollout_success"]
    assert rollout == pytest.approx(np.mean(successes))


def test_verify_catches_a_wrong_label(run):
    info = read_info(run["data"])
    sample = max(dagger_samples(run), key=lambda s: len(s["actions.npy"]))  # one that moved
    env = EmbeddedEnv(CameraConfig(**info["camera"]), AgentConfig(**info["agent"]))
    houses = HouseFile.scan(split_house_file(run["data"], info["splits"]["train"]["houses"]))
    assert check_episode(sample, info, "train", env, houses, {}) == []
    bad = dict(sample, **{"actions.npy": (sample["actions.npy"] + 1) % 4})
    problems = check_episode(bad, info, "train", env, houses, {})
    assert problems and "oracle" in problems[0]
    executed = sample["executed.npy"]
    moved = next(t for t in range(len(executed) - 1) if int(executed[t]) != 3)
    wrong = executed.copy()
    wrong[moved] = {0: 1, 1: 2, 2: 1}[int(executed[moved])]
    problems = check_episode(dict(sample, **{"executed.npy": wrong}), info, "train", env,
                             houses, {})
    assert problems and "executed action" in problems[0]
    missing = {k: v for k, v in sample.items() if k != "executed.npy"}
    assert "executed.npy" in check_episode(missing, info, "train", env, houses, {})[0]


def test_loader_feeds_executed_actions_as_previous_actions(run):
    """DAgger labels are the oracle's; the previous-action input must be what was done."""
    from training.data.chunks import episode_chunks

    sample = next(s for s in dagger_samples(run)
                  if (s["executed.npy"][:-1] != s["actions.npy"][:-1]).any())
    raw = {"actions.npy": _npy(sample["actions.npy"]), "executed.npy": _npy(sample[
        "executed.npy"]), "meta.json": json.dumps(sample["meta.json"]).encode(),
        "rgb.mp4": sample["rgb.mp4"]}
    goal_index = {sample["meta.json"]["goal"]: 0}
    chunk = episode_chunks(raw, goal_index, seq_len=64, image_size=(16, 24), rng=None)[0]
    executed = sample["executed.npy"].astype(np.int64)
    # A move_ahead the lattice refused is fed as the blocked token (5), as `collided` at rollout.
    lat = house_context(run["data"]).lattice
    poses = sample["meta.json"]["poses"]
    states = [(*lat.cell_of(x, z), lat.heading_of(yaw)) for x, z, yaw in poses]
    expected = [4] + [5 if not lat.step(s, int(a))[1] else int(a)
                      for s, a in zip(states[:-1], executed[:-1])]
    assert chunk["prev_actions"].tolist() == expected
    assert chunk["actions"].tolist() == sample["actions.npy"].astype(np.int64).tolist()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_rerun_skips_finished_rounds(run):
    mtime = (run["out"] / "checkpoints" / "round-1.ckpt").stat().st_mtime
    assert main(tiny_argv(run["data"], run["out"])) == 0
    assert (run["out"] / "checkpoints" / "round-1.ckpt").stat().st_mtime == mtime
    assert json.loads((run["out"] / "dagger_info.json").read_text())["rounds"] == \
        run["info"]["rounds"]


def test_mixed_rollouts_are_seeded_and_mix_by_beta(run):
    policy, pinfo = load_policy(run["info"]["rounds"][0]["checkpoint"])
    view = open_view(run["data"], None, pinfo.goals, max_steps=25, envs=2)
    houses = view.houses.read([0])
    from eval.slots import plan_slots

    slots = plan_slots(1, 2, round_seed(7, 1))

    def roll(beta, seed=7):
        eps, _ = mixed_rollouts(policy, houses, slots, view.settings, beta, 1, seed)
        return [(e.episode.path.states, e.episode.path.actions, e.executed) for e in eps]

    half = roll(0.5)
    assert half == roll(0.5)  # same seed, same rollouts
    for _, labels, executed in roll(1.0):  # pure expert: the expert's own path
        assert executed == labels and labels[-1] == 3
    assert any(a != b for _, labels, executed in half for a, b in zip(labels, executed))

    def sampled(envs, seed=7):  # the policy's own actions drawn per episode
        settings = dataclasses.replace(view.settings, envs_per_worker=envs)
        eps, _ = mixed_rollouts(policy, houses, slots, settings, 0.0, 1, seed, sample=True)
        return [(e.episode.path.states, e.executed) for e in eps]

    assert sampled(2) == sampled(1) != sampled(2, seed=8)  # independent of the batch rows


def test_beta_schedule_and_coins_are_deterministic():
    cfg = DaggerConfig(rounds=3, beta0=0.8, beta_decay=0.5)
    assert beta_schedule(cfg) == pytest.approx([0.8, 0.4, 0.2])
    assert beta_schedule(DaggerConfig(rounds=2, betas=[1.0, 0.0])) == [1.0, 0.0]
    a, b = coin_rng(3, 1, 5).random(10), coin_rng(3, 1, 5).random(10)
    assert np.array_equal(a, b) and not np.array_equal(a, coin_rng(3, 2, 5).random(10))
    assert round_seed(0, 1) == round_seed(0, 1) != round_seed(0, 2)
    with pytest.raises(DaggerError, match="betas"):
        DaggerConfig(rounds=3, betas=[0.5])
    with pytest.raises(DaggerError, match="beta of round 1"):
        DaggerConfig(beta0=1.5)


def test_refuses_a_dataset_without_train_split(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                 "--init_checkpoint", str(tmp_path / "x.ckpt")]) == 2
    assert "spoc-dagger: " in capsys.readouterr().err


def test_run_dagger_needs_matching_out(run, tmp_path):
    cfg = DaggerConfig(dataset=str(tmp_path), out=str(run["out"]))
    with pytest.raises(DaggerError, match="another --out"):
        run_dagger(cfg)


def test_bc_arm_gets_as_many_expert_labels(run, tmp_path):
    """--bc_compare: the BC arm adds >= the round's DAgger labels as expert episodes, from the
    same round-0 checkpoint (here given as --init_checkpoint), and is evaluated the same way."""
    data = write_dataset(tmp_path / "data", {"train": (1, 3), "val": (1, 2)})
    argv = tiny_argv(data, tmp_path / "run") + [
        "--bc_compare", "true", "--init_checkpoint", run["info"]["rounds"][0]["checkpoint"]]
    assert main(argv) == 0
    r0, r1 = json.loads((tmp_path / "run" / "dagger_info.json").read_text())["rounds"]
    assert r0["bc_total_expert_labels"] == r0["total_expert_labels"]
    assert r1["new_labels"] <= r1["bc_new_labels"]
    assert r1["bc_total_expert_labels"] == r0["total_expert_labels"] + r1["bc_new_labels"]
    assert Path(r1["bc_checkpoint"]).is_file() and 0.0 <= r1["bc_success"] <= 1.0
    assert "BC success" in (tmp_path / "run" / "dagger.md").read_text()
    bc_data = tmp_path / "run" / "bc" / "data"
    assert verify_dataset(bc_data) == []
    sources = {s["meta.json"]["source"] for p in sorted((bc_data / "train").glob("*.tar"))
               for s in iter_episodes(p)}
    assert sources == {"expert"}


def test_a_box_policy_rolls_out_and_is_evaluated_with_its_detector(tmp_path, capsys,
                                                                   monkeypatch):
    """--detector: a policy trained with the target's box (and RoomNav anchors) reads it from
    the detector in the rollouts and the evaluations (as deployed), with --end_threshold there
    too; a RoomNav rollout is given its room's anchor."""
    data = write_dataset(tmp_path / "data", {"train": (1, 3), "val": (1, 2)})
    detector = tmp_path / "detector.json"
    types = [*OBJECTNAV_TARGETS, "Fridge"]
    palette_detector(types).save(detector)
    anchors = {"LivingRoom": "Television", "Kitchen": "Fridge"}
    argv = tiny_argv(data, tmp_path / "run")
    argv[argv.index("--sample") + 1] = "false"
    argv[argv.index("--train_args") + 1] = json.dumps(
        TRAIN_ARGS + ["--data.target_box", "true", "--data.room_anchors", json.dumps(anchors)])
    assert main(argv + ["--detector", str(tmp_path / "none.json")]) == 2
    assert "--detector" in capsys.readouterr().err
    assert main(argv + ["--detector", str(detector), "--end_threshold", "0.5",
                        "--end_threshold_by_task", '{"roomnav": 0.6}']) == 0
    rounds = json.loads((tmp_path / "run" / "dagger_info.json").read_text())["rounds"]
    for row in rounds:
        run = json.loads((Path(row["eval_dir"]) / "eval_info.json").read_text())["run"]
        assert run["detector"] == str(detector) and run["end_threshold"] == 0.5
        assert run["end_threshold_by_task"] == {"roomnav": 0.6}
        assert run["room_anchors"] == anchors

    class Spy:  # the detector's box for every frame the policy is given
        def __init__(self):
            self.frames = []

        def box(self, rgb, target):
            self.frames.append((rgb.shape, target))
            return palette_detector(types).box(rgb, target)

    policy, pinfo = load_policy(rounds[1]["checkpoint"])
    view = open_view(data, None, pinfo.goals, max_steps=10, envs=2)
    from eval.slots import plan_slots

    spy = Spy()
    settings = dataclasses.replace(view.settings, detector=spy, room_anchors=anchors)
    slots = plan_slots(1, 4, 8)  # two RoomNav episodes among the four
    episodes, skipped = mixed_rollouts(policy, view.houses.read([0]), slots, settings, 0.0, 1, 0,
                                       end_threshold=0.5)
    steps = sum(len(e.episode.path.actions) for e in episodes)
    camera = view.settings.camera
    assert len(spy.frames) == steps  # one box per step the policy acted on
    assert {shape for shape, _ in spy.frames} == {(camera.height, camera.width, 3)}
    boxed = {e.episode.target if e.episode.task == "objectnav" else anchors[e.episode.target]
             for e in episodes}
    assert {t for _, t in spy.frames} == boxed
    assert "roomnav" in {e.episode.task for e in episodes}, skipped
    # a threshold of 1 for every task reaches every step's action: the policy never ends, so
    # every rollout runs to the limit
    by_task = []
    real = training.dagger.rollouts.policy_actions
    monkeypatch.setattr(training.dagger.rollouts, "policy_actions",
                        lambda *args: by_task.append(args[4]) or real(*args))
    never, _ = mixed_rollouts(policy, view.houses.read([0]), plan_slots(1, 2, 3), view.settings,
                              0.0, 1, 0, end_threshold=None,
                              end_threshold_by_task={"objectnav": 1.0, "roomnav": 1.0})
    assert never and all(len(e.executed) == 10 and not e.success for e in never)
    assert by_task and all(t == {"objectnav": 1.0, "roomnav": 1.0} for t in by_task)
    with pytest.raises(DaggerError, match="end_threshold"):
        DaggerConfig(end_threshold=0.5, sample=True)
    with pytest.raises(DaggerError, match="unknown task 'door'"):
        DaggerConfig(end_threshold_by_task={"door": 0.5})
