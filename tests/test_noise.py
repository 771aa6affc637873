"""Noise-injected expert episodes (DART) and the blocked-move input they teach."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from training_helpers import HOUSE, write_dataset

from datagen.config import DatagenConfig
from datagen.constants import SOURCE_EXPERT, SOURCE_NOISY
from datagen.dataset import DatasetError, open_dataset, read_info, shard_paths
from datagen.episodes import HouseContext, HouseFile, sample_episode
from datagen.shards import iter_episodes
from datagen.tasks import TaskConfig
from datagen.verify import verify_dataset
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv
from sim.lattice import END, MOVE_AHEAD
from training.data.chunks import BLOCKED_TOKEN, START_TOKEN, episode_chunks
from training.data.datamodule import ShardDataModule

NOISE = 0.3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("noise"),
                         {"train": (1, 3), "train-noise": (2, 4), "val": (1, 2)},
                         action_noise={"train-noise": NOISE})


@pytest.fixture(scope="module")
def ctx(dataset) -> HouseContext:
    info = read_info(dataset)
    env = EmbeddedEnv(CameraConfig(**info["camera"]))
    return HouseContext(HouseFile.scan(HOUSE).read([0])[0], env,
                        TaskConfig(**info["config"]["tasks"]))


def samples(root: Path, split: str) -> list[dict]:
    info = read_info(root)
    return [s for k in range(info["splits"][split]["num_shards"])
            for s in iter_episodes(shard_paths(root, split, k)[0])]


def lattice_states(ctx: HouseContext, meta: dict) -> list[tuple[int, int, int]]:
    lat = ctx.lattice
    return [(*lat.cell_of(x, z), lat.heading_of(yaw)) for x, z, yaw in meta["poses"]]


def test_every_visited_state_is_labelled_by_the_oracle(dataset, ctx):
    off_path = deviations = blocked = 0
    for sample in samples(dataset, "train-noise"):
        meta, labels, executed = sample["meta.json"], sample["actions.npy"], sample["executed.npy"]
        assert meta["source"] == SOURCE_NOISY and meta["success"]
        oracle = ctx.oracle(meta["task"], meta["target"])
        states = lattice_states(ctx, meta)
        expert = oracle.path(states[0])
        assert meta["shortest_steps"] == len(expert.actions) <= len(labels) == meta["num_steps"]
        assert meta["shortest_length"] == pytest.approx(expert.metres, abs=1e-6)
        for t, (state, label) in enumerate(zip(states, labels)):
            assert int(label) == oracle.expert_action(state)
            if t + 1 < len(states):
                nxt, ok = ctx.lattice.step(state, int(executed[t]))
                assert nxt == states[t + 1]
                blocked += not ok
        assert labels[-1] == executed[-1] == END and (labels[:-1] != END).all()
        assert oracle.is_goal(states[-1])
        deviations += int((executed != labels).sum())
        off_path += sum(s not in set(expert.states) for s in states)
    assert deviations > 0 and off_path > 0
    # Noise only ever swaps a motion for another one: about NOISE of the moving steps.
    steps = sum(len(s["actions.npy"]) - 1 for s in samples(dataset, "train-noise"))
    assert 0.1 < deviations / steps < 0.6


def test_auxiliary_labels_are_the_oracle_distance_and_the_target_pixels(dataset, ctx):
    """goal_dist is the oracle's geodesic from each visited state (the metres still to walk
    on an expert episode); target_pixels is what the simulator's own id image shows of the
    target at each step (from a separate env: the same house rendered independently)."""
    env = EmbeddedEnv(ctx.env.camera)
    env.load(ctx.record.house)
    objectnav = 0
    for split in ("train", "train-noise"):
        for sample in samples(dataset, split):
            meta, dist = sample["meta.json"], sample["goal_dist.npy"]
            pixels, labels = sample["target_pixels.npy"], sample["actions.npy"]
            assert dist.dtype == np.float32 and pixels.dtype == np.int32
            assert dist.shape == pixels.shape == labels.shape
            states = lattice_states(ctx, meta)
            oracle = ctx.oracle(meta["task"], meta["target"])
            for t, state in enumerate(states):
                assert dist[t] == pytest.approx(oracle.path(state).metres, abs=1e-5)
            assert dist[-1] == 0 and (dist[:-1] > 0).all()
            if meta["source"] == SOURCE_EXPERT:  # what is left of the walk, step by step
                xz = np.asarray(meta["poses"])[:, :2]
                left = np.cumsum(np.hypot(*np.diff(xz, axis=0).T)[::-1])[::-1]
                np.testing.assert_allclose(dist[:-1], left, atol=1e-5)
            if meta["task"] != "objectnav":
                assert (pixels == -1).all()
                continue
            objectnav += 1
            for t, state in enumerate(states):
                env.reset_state(state)
                seen = [v.pixels for v in env.visible_objects().values()
                        if v.object_type == meta["target"]]
                assert pixels[t] == max(seen, default=0)
            assert pixels[-1] >= ctx.tasks.min_pixels  # the goal state shows the target
    assert objectnav > 0


def test_plain_splits_stay_expert_and_verify_checks_noisy_labels(dataset):
    assert all(s["meta.json"]["source"] == SOURCE_EXPERT and "executed.npy" not in s
               for s in samples(dataset, "train"))
    assert verify_dataset(dataset) == []


def test_noise_keeps_the_episode_draw(ctx):
    """The same seed gives the same task, target and start with or without noise."""
    for seed in range(6):
        plain = sample_episode(ctx, "e", seed, 500)
        noisy = sample_episode(ctx, "e", seed, 500, action_noise=NOISE)
        if isinstance(plain, str):
            assert noisy == plain
            continue
        assert (noisy.task, noisy.target, noisy.start) == (plain.task, plain.target, plain.start)
        assert noisy.shortest_steps == plain.shortest_steps and plain.executed is None
        again = sample_episode(ctx, "e", seed, 500, action_noise=NOISE)
        assert again.path == noisy.path and again.executed == noisy.executed


def test_noisy_split_is_deterministic(dataset, tmp_path):
    again = write_dataset(tmp_path / "again", {"train": (1, 3), "train-noise": (2, 4),
                                                "val": (1, 2)}, action_noise={"train-noise": NOISE})
    for k in range(2):
        a, b = shard_paths(dataset, "train-noise", k)[0], shard_paths(again, "train-noise", k)[0]
        assert a.read_bytes() == b.read_bytes()


def test_noise_is_part_of_the_split_config(dataset):
    cfg = DatagenConfig(houses=HOUSE, split="train-noise", num_shards=2, episodes_per_shard=4,
                        episodes_per_house=4, seed=1, camera=CameraConfig(height=32, width=48),
                        tasks=TaskConfig(min_pixels=3), action_noise=0.1)
    with pytest.raises(DatasetError, match="action_noise"):
        open_dataset(cfg, HouseFile.scan(HOUSE), dataset)
    with pytest.raises(ValueError, match="action_noise"):
        DatagenConfig(action_noise=1.0)


def _raw(sample: dict) -> dict:
    def npy(a):
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()
    return {"actions.npy": npy(sample["actions.npy"]), "executed.npy": npy(sample["executed.npy"]),
            "meta.json": json.dumps(sample["meta.json"]).encode(), "rgb.mp4": sample["rgb.mp4"]}


def test_loader_marks_blocked_moves(dataset, ctx):
    """The previous-action input is the executed action, or the blocked token where the
    lattice refused a move_ahead (what rollouts report as ``collided``)."""
    seen_blocked = False
    for sample in samples(dataset, "train-noise"):
        meta, executed = sample["meta.json"], sample["executed.npy"].astype(int)
        chunk = episode_chunks(_raw(sample), {meta["goal"]: 0}, seq_len=500,
                               image_size=(16, 24), rng=None)[0]
        states = lattice_states(ctx, meta)
        expected = [START_TOKEN]
        for s, a in zip(states[:-1], executed[:-1]):
            ok = ctx.lattice.step(s, int(a))[1]
            expected.append(int(a) if ok else BLOCKED_TOKEN)
            assert ok or a == MOVE_AHEAD
        assert chunk["prev_actions"].tolist() == expected
        seen_blocked |= BLOCKED_TOKEN in expected
    assert seen_blocked  # noise drew a move_ahead into an obstacle (fixed seeds)


def test_datamodule_trains_on_several_splits(dataset):
    one = ShardDataModule(str(dataset), num_workers=0)
    both = ShardDataModule(str(dataset), num_workers=0, train_splits=["train", "train-noise"])
    assert len(one.train_urls) == 1 and len(both.train_urls) == 3
    assert both.spec["dataset"]["train_splits"] == ["train", "train-noise"]
    assert set(both.train_scan["house_ids"]) == set(one.train_scan["house_ids"])
