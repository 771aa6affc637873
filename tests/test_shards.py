"""Shards: deterministic bytes, webdataset round trip, reruns, verification, executors."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from datagen.config import DatagenConfig
from datagen.constants import ACTION_VOCAB, DATASET_VERSION, KEY_ACTIONS, KEY_META, KEY_RGB
from datagen.dataset import DatasetError, open_dataset, shard_paths
from datagen.episodes import HouseFile
from datagen.executors import run_local
from datagen.shards import META_KEYS, iter_episodes, write_shard
from datagen.tasks import TaskConfig
from datagen.verify import verify_dataset
from datagen.video import decode_frames
from sim.camera import CameraConfig
from sim.house import load_houses, write_house_json

FIXTURES = ["tests/fixtures/house_3703.json", "tests/fixtures/143.json"]


@pytest.fixture(scope="module")
def houses(tmp_path_factory) -> str:
    """A two-house .jsonl.gz (the small house first)."""
    path = tmp_path_factory.mktemp("houses") / "train.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for p in FIXTURES:
            f.write(write_house_json(next(load_houses(p)).house) + "\n")
    return str(path)


def tiny_config(houses: str, **kw) -> DatagenConfig:
    base = dict(houses=houses, num_shards=3, episodes_per_shard=3, episodes_per_house=3,
                camera=CameraConfig(height=32, width=48), tasks=TaskConfig(min_pixels=3))
    return DatagenConfig(**{**base, **kw})


def write_all(cfg: DatagenConfig, out: Path) -> None:
    hf = HouseFile.scan(cfg.houses)
    open_dataset(cfg, hf, out)
    for k in range(cfg.num_shards):
        write_shard(cfg, k, out, hf)


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of a dataset directory (the lock file included) by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def dataset(houses, tmp_path_factory) -> tuple[DatagenConfig, Path]:
    cfg = tiny_config(houses, num_shards=2, episodes_per_shard=2, episodes_per_house=2)
    out = tmp_path_factory.mktemp("ds")
    write_all(cfg, out)
    return cfg, out


def test_shard_bytes_are_a_function_of_config_seed_and_index(houses, dataset, tmp_path):
    cfg, out = dataset
    write_all(cfg, tmp_path)
    assert snapshot(tmp_path) == snapshot(out)
    other = tiny_config(houses, num_shards=2, episodes_per_shard=2, episodes_per_house=2,
                        seed=1)
    write_all(other, tmp_path / "seed1")
    assert (tmp_path / "seed1/train/shard-000000.tar").read_bytes() != \
        (out / "train/shard-000000.tar").read_bytes()


def test_webdataset_round_trip(dataset):
    cfg, out = dataset
    info = json.loads((out / "info.json").read_text())
    assert info["version"] == DATASET_VERSION and info["actions"] == ACTION_VOCAB
    assert info["goals"][0] == "objectnav/AlarmClock" and "roomnav/Kitchen" in info["goals"]
    shard = info["splits"]["train"]["shards"]["shard-000000.tar"]
    samples = list(wds.WebDataset(str(out / "train/shard-000000.tar"), shardshuffle=False)
                   .decode())
    assert len(samples) == shard["episodes"] == 2
    assert sum(len(s[KEY_ACTIONS]) for s in samples) == shard["steps"]
    for s in samples:
        meta, actions = s[KEY_META], s[KEY_ACTIONS]
        assert tuple(sorted(meta)) == tuple(sorted(META_KEYS))
        assert s["__key__"] == meta["episode_id"]
        assert actions.dtype == np.int8 and actions[-1] == ACTION_VOCAB.index("end")
        frames = decode_frames(s[KEY_RGB])
        assert frames.shape == (meta["num_steps"], 32, 48, 3) == (len(actions), 32, 48, 3)
        assert len(meta["poses"]) == len(actions) == meta["shortest_steps"]
        assert meta["goal"] == f"{meta['task']}/{meta['target']}" and meta["success"]
        assert meta["source"] == "expert"


def test_verify_accepts_a_sound_dataset_and_catches_corruption(dataset, tmp_path):
    cfg, out = dataset
    assert verify_dataset(out) == []
    bad = tmp_path / "bad"
    bad.mkdir()
    for rel, data in snapshot(out).items():
        (bad / rel).parent.mkdir(parents=True, exist_ok=True)
        (bad / rel).write_bytes(data)
    tar = bad / "train/shard-000001.tar"
    raw = bytearray(tar.read_bytes())
    raw[700] ^= 0xFF
    tar.write_bytes(bytes(raw))
    problems = verify_dataset(bad)
    assert len(problems) == 1 and "shard-000001.tar: sha256 does not match" in problems[0]


def _rewrite_member(tar: Path, suffix: str, change) -> None:
    """Rewrite the first episode's ``suffix`` array in place with ``change(array)``."""
    members = []
    with tarfile.open(tar) as t:
        for m in t:
            members.append((m, t.extractfile(m).read()))
    name, data = next((m, d) for m, d in members if m.name.endswith(suffix))
    array = np.load(io.BytesIO(data))
    change(array)
    buf = io.BytesIO()
    np.save(buf, array)
    with tarfile.open(tar, "w", format=tarfile.USTAR_FORMAT) as t:
        for m, d in members:
            d = buf.getvalue() if m is name else d
            m.size = len(d)
            t.addfile(m, io.BytesIO(d))


def _rewrite_actions(tar: Path) -> None:
    """Replace the first episode's first action by a rotation (a plausible, wrong episode)."""
    def rotate(actions):
        actions[0] = 1 if actions[0] != 1 else 2
    _rewrite_member(tar, KEY_ACTIONS, rotate)


def _set_last(value):
    def change(array):
        array[-1] = value
    return change


@pytest.mark.parametrize("rewrite", [
    _rewrite_actions,
    lambda tar: _rewrite_member(tar, "goal_dist.npy", _set_last(0.25)),
    lambda tar: _rewrite_member(tar, "target_pixels.npy", _set_last(-1)),
    lambda tar: _rewrite_member(tar, "target_box.npy", _set_last(0.0)),
], ids=["actions", "goal_dist", "target_pixels", "target_box"])
def test_verify_replay_catches_wrong_actions_and_labels(dataset, tmp_path, rewrite):
    from common.files import sha256_file
    from datagen.dataset import refresh_info

    cfg, out = dataset
    for rel, data in snapshot(out).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    tar, sidecar = shard_paths(tmp_path, "train", 0)
    assert next(iter_episodes(tar))["meta.json"]["task"] == "objectnav"  # pixels must be >= 0
    rewrite(tar)
    side = json.loads(sidecar.read_text())
    side["sha256"] = sha256_file(tar)  # the files agree with each other; only the replay can tell
    sidecar.write_text(json.dumps(side))
    refresh_info(tmp_path)
    problems = verify_dataset(tmp_path)
    assert problems and all("train_000000_000000" in p for p in problems), problems


def test_rerun_skips_complete_shards_and_redoes_the_rest(dataset, tmp_path):
    cfg, out = dataset
    write_all(cfg, tmp_path)
    tar, sidecar = shard_paths(tmp_path, "train", 1)
    tar.unlink()
    hf = HouseFile.scan(cfg.houses)
    results = run_local(cfg, [0, 1], tmp_path, hf, workers=1)
    assert [r.reused for r in results] == [True, False]
    assert snapshot(tmp_path) == snapshot(out)


def test_incompatible_config_is_refused(dataset, houses):
    cfg, out = dataset
    other = tiny_config(houses, num_shards=2, episodes_per_shard=2, episodes_per_house=2,
                        camera=CameraConfig(height=64, width=96))
    with pytest.raises(DatasetError, match="incompatible config.*camera.height"):
        open_dataset(other, HouseFile.scan(houses), out)
    more = tiny_config(houses, num_shards=5, episodes_per_shard=2, episodes_per_house=2)
    with pytest.raises(DatasetError, match="num_shards"):
        open_dataset(more, HouseFile.scan(houses), out)
    info = json.loads((out / "info.json").read_text())
    assert info["splits"]["train"]["num_shards"] == 2  # untouched


def test_splits_share_one_info(dataset, houses, tmp_path):
    cfg, out = dataset
    write_all(cfg, tmp_path)
    val = tiny_config(houses, split="val", num_shards=1, episodes_per_shard=2)
    write_all(val, tmp_path)
    info = json.loads((tmp_path / "info.json").read_text())
    assert sorted(info["splits"]) == ["train", "val"]
    assert list(info["splits"]["val"]["shards"]) == ["shard-000000.tar"]
    assert verify_dataset(tmp_path) == []


def test_kill_mid_run_then_rerun_gives_the_identical_dataset(houses, tmp_path):
    cfg = tiny_config(houses)
    reference = tmp_path / "reference"
    write_all(cfg, reference)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "datagen.cli", "episodes", "--houses", houses,
           "--out", str(out), "--num-shards", "3", "--episodes-per-shard", "3",
           "--episodes-per-house", "3", "--camera.height", "32", "--camera.width", "48",
           "--tasks.min_pixels", "3", "--workers", "1", "--progress", "false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (out / "train/shard-000000.json").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: shard 0 done, later shards not
    proc.wait()
    assert not (out / "train/shard-000002.json").exists()
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert snapshot(out) == snapshot(reference)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray whose files (its auth token, session logs) stay in a folder of its own,
    removed after; a short one, since Ray's socket paths must fit in 107 bytes."""
    ray = pytest.importorskip("ray")
    home = Path(tempfile.mkdtemp(prefix="spoc-ray-"))
    with pytest.MonkeyPatch.context() as m:
        m.setenv("HOME", str(home))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _temp_dir=str(home / "ray"))
        try:
            yield ray
        finally:
            ray.shutdown()
            shutil.rmtree(home, ignore_errors=True)


def test_ray_and_local_executors_write_the_same_bytes(local_ray, dataset, tmp_path):
    from datagen.executors import run_ray

    cfg, out = dataset
    hf = HouseFile.scan(cfg.houses)
    open_dataset(cfg, hf, tmp_path)
    results = run_ray(cfg, list(range(cfg.num_shards)), tmp_path, hf)
    assert [r.index for r in results] == [0, 1] and not any(r.reused for r in results)
    assert snapshot(tmp_path) == snapshot(out)


def test_iter_episodes_reads_what_was_written(dataset):
    cfg, out = dataset
    samples = list(iter_episodes(out / "train/shard-000001.tar"))
    assert [s["__key__"] for s in samples] == ["train_000001_000000", "train_000001_000001"]
