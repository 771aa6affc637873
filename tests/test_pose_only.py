"""Pose-only datasets (``spoc-datagen episodes --frames none``) and datasets that carry their
house files: no video in the shards, verified by replay, moved and read from anywhere, the
loaders render the frames on load; older info.json files keep loading."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from training_helpers import HOUSE, write_dataset

from agents.baselines import RandomPolicy
from agents.detector import ColourDetector
from common.errors import InputError
from common.files import json_bytes, sha256_file
from datagen.cli import main as datagen_main
from datagen.config import ConfigError, DatagenConfig
from datagen.constants import ACTION_VOCAB, KEY_RGB
from datagen.dataset import open_dataset, read_info, split_house_file
from datagen.episodes import HouseFile
from datagen.tasks import TaskConfig
from datagen.verify import verify_dataset
from eval.inputs import dataset_training_houses
from eval.slots import plan_slots
from sim.appearance import AppearanceConfig
from sim.camera import CameraConfig
from training.cli import build_cli
from training.dagger.rollouts import mixed_rollouts
from training.dagger.shards import link_dataset, next_shard_index, open_view, write_round_shards
from training.data.datamodule import ShardDataModule
from training.data.info import DataOptionError
from training.detector.cli import main as detector_main
from training.pretrain.data import LabelledFrameDataModule

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny.yaml")
SHARDS = {"train": (2, 3), "val": (1, 3)}
SIZE = (48, 64)
"""The camera; the loaders resize to the tiny config's 32x48."""


@pytest.fixture(scope="module")
def pose_only(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("pose") / "data", SHARDS, SIZE, frames="none")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """The same config and seeds as ``pose_only``, with video."""
    return write_dataset(tmp_path_factory.mktemp("video") / "data", SHARDS, SIZE)


def tars(root: Path) -> list[Path]:
    return sorted(root.glob("*/shard-*.tar"))


def members(tar: Path) -> list[str]:
    with tarfile.open(tar) as f:
        return [m.name.split(".", 1)[1] for m in f.getmembers()]


def sample_bytes(tar: Path) -> int:
    """The bytes the samples take in a tar: each member's header and its padded data (the
    archive's closing blocks left out: a fixed cost per shard)."""
    with tarfile.open(tar) as f:
        return sum(512 + -(-m.size // 512) * 512 for m in f.getmembers())


def steps(root: Path) -> int:
    info = read_info(root)
    return sum(s["steps"] for e in info["splits"].values() for s in e["shards"].values())


def moved(root: Path, to: Path) -> Path:
    """The dataset directory moved to ``to``, nothing left where it was."""
    shutil.move(str(root), str(to))
    return to


def tiny_module(root: Path, **kwargs) -> ShardDataModule:
    args = dict(seq_len=8, image_size=(32, 48), batch_size=4, batches_per_epoch=2,
                num_workers=0, augment=False)
    return ShardDataModule(str(root), **{**args, **kwargs})


def cli_fit(root: Path, run: Path, *extra: str) -> Path:
    """Two ``spoc-train`` batches on ``root``; the last checkpoint."""
    build_cli(["fit", "--config", CONFIG, "--data.root", str(root),
               "--trainer.default_root_dir", str(run), "--trainer.max_epochs", "1",
               "--data.batches_per_epoch", "2", "--trainer.enable_progress_bar", "false",
               *extra])
    return run / "checkpoints" / "last.ckpt"


# ------------------------------------------------------------------------------ the format


def test_pose_only_shards_hold_no_video_and_are_much_smaller(pose_only, video):
    info = read_info(pose_only)
    assert info["frames"] == info["config"]["frames"] == "none"
    assert read_info(video)["frames"] == "video"
    for tar in tars(pose_only):
        kinds = Counter(members(tar))
        assert KEY_RGB not in kinds and kinds["meta.json"] == kinds["actions.npy"] > 0
        assert kinds["goal_dist.npy"] == kinds["target_pixels.npy"] == kinds["target_box.npy"] \
            == kinds["meta.json"]
    assert all(KEY_RGB in members(tar) for tar in tars(video))
    assert steps(pose_only) == steps(video)  # the same episodes
    per_step = {name: sum(map(sample_bytes, tars(root))) / steps(root)
                for name, root in (("pose", pose_only), ("video", video))}
    # short episodes (~12 steps) at 48x64: ~2.5x; 224x384 frames: ~15x (docs/dataset-format.md)
    assert per_step["pose"] < per_step["video"] / 2, per_step


def test_pose_only_samples_are_the_video_samples_without_their_video(pose_only, video):
    for a, b in zip(tars(pose_only), tars(video), strict=True):
        with tarfile.open(a) as fa, tarfile.open(b) as fb:
            mine = {m.name: fa.extractfile(m).read() for m in fa.getmembers()}
            theirs = {m.name: fb.extractfile(m).read() for m in fb.getmembers()
                      if not m.name.endswith(KEY_RGB)}
        assert mine == theirs


def test_same_seed_same_bytes(pose_only, tmp_path):
    again = write_dataset(tmp_path / "again", SHARDS, SIZE, frames="none")
    assert [p.read_bytes() for p in tars(again)] == [p.read_bytes() for p in tars(pose_only)]
    assert sorted(p.name for p in (again / "houses").iterdir()) == \
        sorted(p.name for p in (pose_only / "houses").iterdir())


def test_the_frames_option_is_checked_and_shared_by_every_split(tmp_path):
    with pytest.raises(ConfigError, match="frames: 'mp4' is not one of video, none"):
        DatagenConfig(frames="mp4")
    DatagenConfig(frames="none", camera=CameraConfig(height=33, width=48))  # no video: odd is ok
    houses = HouseFile.scan(HOUSE)
    open_dataset(DatagenConfig(houses=HOUSE, frames="none"), houses, tmp_path)
    with pytest.raises(InputError, match="frames: 'none' there, 'video' here"):
        open_dataset(DatagenConfig(houses=HOUSE, split="val"), houses, tmp_path)


def test_the_house_file_is_copied_once_by_content(tmp_path):
    root = tmp_path / "data"
    houses = HouseFile.scan(HOUSE)
    for split in ("train", "val"):
        open_dataset(DatagenConfig(houses=HOUSE, split=split), houses, root)
    info = read_info(root)
    entries = [info["splits"][s]["houses"] for s in ("train", "val")]
    assert entries[0] == entries[1]
    assert entries[0]["path"] == f"houses/{houses.sha256[:16]}.json"
    assert entries[0]["source"] == HOUSE and entries[0]["count"] == 1
    assert [p.name for p in (root / "houses").iterdir()] == [Path(entries[0]["path"]).name]
    assert sha256_file(root / entries[0]["path"]) == houses.sha256


# ------------------------------------------------------------- moved, verified and trained


def test_a_moved_pose_only_dataset_verifies_and_trains_from_another_directory(
        pose_only, tmp_path, monkeypatch, capsys):
    root = moved(shutil.copytree(pose_only, tmp_path / "a"), tmp_path / "b" / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    assert datagen_main(["verify", str(root)]) == 0
    assert "is sound" in capsys.readouterr().err
    ckpt = cli_fit(root, elsewhere / "run")
    record = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert record["datamodule_hyper_parameters"]["frames"] is None  # the dataset's own
    assert record["global_step"] == 2
    hashes = dataset_training_houses(str(root), read_info(root)).hashes
    assert len(hashes) == 1  # evaluation's held-out check finds the houses too


def test_the_loaders_render_a_pose_only_dataset_as_a_video_one_with_rendered_frames(
        pose_only, video):
    dm = tiny_module(pose_only)
    assert dm.frames == "rendered"
    mine, theirs = dm.val_dataloader(), tiny_module(video, frames="rendered").val_dataloader()
    batches = 0
    for a, b in zip(mine, theirs, strict=True):
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
        batches += 1
    assert batches > 0
    assert tiny_module(video).frames == "decoded"


def test_decoded_frames_of_a_pose_only_dataset_is_one_line(pose_only):
    with pytest.raises(DataOptionError, match="data.frames: decoded, but .*frames: none"):
        tiny_module(pose_only, frames="decoded")
    with pytest.raises(DataOptionError, match="frames: none"):
        LabelledFrameDataModule(str(pose_only), frames="decoded")


def test_pretraining_renders_a_pose_only_dataset(pose_only, video):
    def frames(root):
        dm = LabelledFrameDataModule(str(root), image_size=(32, 48), batch_size=16,
                                     num_workers=0)
        dm.grid = (2, 3)
        return dm, list(dm.val_dataloader())

    dm, mine = frames(pose_only)
    _, theirs = frames(video)
    assert dm.frames == "rendered" and len(mine) == len(theirs) > 0
    assert not torch.equal(mine[0]["frames"], theirs[0]["frames"])  # decoded, compressed
    assert torch.equal(mine[0]["objects"], theirs[0]["objects"])


def test_a_moved_video_dataset_trains_on_rendered_frames(video, tmp_path, monkeypatch):
    root = moved(shutil.copytree(video, tmp_path / "a"), tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    assert cli_fit(root, tmp_path / "run", "--data.frames", "rendered").is_file()


def test_the_detector_fits_on_a_pose_only_dataset(pose_only, video, tmp_path):
    fitted = []
    for root in (pose_only, video):
        out = tmp_path / f"{root.parent.name}.json"
        detector_main(["fit", "--data", str(root), "--split", "train", "--episodes", "3",
                       "--stride", "2", "--out", str(out)])
        fitted.append(ColourDetector.load(out))
    assert fitted[0].centre and fitted[0].centre == fitted[1].centre
    assert fitted[0].radius == fitted[1].radius


# --------------------------------------------------------------------------------- DAgger


def test_dagger_appends_pose_only_shards_to_a_pose_only_dataset(pose_only, tmp_path):
    root = shutil.copytree(pose_only, tmp_path / "data")
    view = open_view(root, None, read_info(root)["goals"], max_steps=15, envs=2)
    assert view.frames == "none"
    episodes, skipped = mixed_rollouts(RandomPolicy(len(ACTION_VOCAB)), view.houses.read([0]),
                                       plan_slots(1, 4, 3), view.settings, 0.5, 1, 0)
    k = next_shard_index(root)
    write_round_shards(root, [k, k + 1], episodes, view.video, 2, skipped, view.frames)
    new = [root / "train" / f"shard-{i:06d}.tar" for i in (k, k + 1)]
    assert all(members(t) and KEY_RGB not in members(t) for t in new)
    assert verify_dataset(root) == []
    assert next(iter(tiny_module(root).train_dataloader()))["frames"].shape[-2:] == (32, 48)
    linked = tmp_path / "bc" / "data"  # the BC arm's copy takes the houses with it
    link_dataset(root, linked)
    shutil.rmtree(root)
    assert verify_dataset(linked) == []


# ------------------------------------------------------------------------ older info.json


def older(video: Path, to: Path, path: str) -> Path:
    """A copy of ``video`` as written before datasets held their houses: info.json's house
    path ``path`` and no ``frames`` fields, no houses/ folder."""
    root = shutil.copytree(video, to)
    shutil.rmtree(root / "houses")
    info = json.loads((root / "info.json").read_text())
    del info["frames"], info["config"]["frames"]
    for entry in info["splits"].values():
        entry["houses"] = {k: v for k, v in entry["houses"].items() if k != "source"}
        entry["houses"]["path"] = path
    (root / "info.json").write_bytes(json_bytes(info))
    return root


def test_an_older_info_json_with_an_absolute_house_path_still_loads(video, tmp_path,
                                                                    monkeypatch):
    root = older(video, tmp_path / "old", HOUSE)
    monkeypatch.chdir(tmp_path)
    assert split_house_file(root, read_info(root)["splits"]["train"]["houses"]) == Path(HOUSE)
    assert verify_dataset(root) == []
    dm = tiny_module(root, frames="rendered")
    assert dm.frames == "rendered" and next(iter(dm.train_dataloader()))["frames"].shape[0] == 4
    # writing a split again is allowed (no frames field means video) and copies its houses
    houses = HouseFile.scan(HOUSE)
    cfg = DatagenConfig(houses=HOUSE, split="train", num_shards=2, episodes_per_shard=3,
                        episodes_per_house=3, seed=0, camera=CameraConfig(*SIZE),
                        tasks=TaskConfig(min_pixels=3))
    open_dataset(cfg, houses, root)
    entry = read_info(root)["splits"]["train"]["houses"]
    assert entry["path"].startswith("houses/") and entry["source"] == HOUSE
    assert (root / entry["path"]).is_file()


def test_an_older_info_json_with_a_working_directory_path_still_loads(video, tmp_path,
                                                                       monkeypatch):
    shutil.copy(HOUSE, tmp_path / "train.json")
    root = older(video, tmp_path / "old", "train.json")
    monkeypatch.chdir(tmp_path)  # where it was made
    assert verify_dataset(root) == []
    assert next(iter(tiny_module(root, frames="rendered").train_dataloader()))
    monkeypatch.chdir(root)  # elsewhere the file is not found: one line naming it
    with pytest.raises(InputError, match="train.json.*not found"):
        next(iter(tiny_module(root, frames="rendered").train_dataloader()))


# ------------------------------------------------------------------------------ appearance


def train_batches(dm: ShardDataModule, epoch: int = 0) -> list[dict]:
    stream = dm._stream(train=True)
    stream.epoch = epoch
    return list(stream)


def test_the_appearance_changes_only_the_training_frames(pose_only):
    """Visual randomisation renders each episode's frames under its own look: the frames
    change, nothing else in the batch does, the same seed and epoch give the same batches,
    another epoch another look, and validation is never changed."""
    plain = train_batches(tiny_module(pose_only))
    look = AppearanceConfig.uniform(1.0)
    varied = train_batches(tiny_module(pose_only, appearance=look))
    again = train_batches(tiny_module(pose_only, appearance=look))
    later = train_batches(tiny_module(pose_only, appearance=look), epoch=1)
    assert len(plain) == len(varied) == 2
    for a, b, c in zip(plain, varied, again):
        assert set(a) == set(b)
        assert not torch.equal(a["frames"], b["frames"])
        assert all(torch.equal(a[k], b[k]) for k in a if k != "frames")
        assert all(torch.equal(b[k], c[k]) for k in b)
    assert not torch.equal(varied[0]["frames"], later[0]["frames"])
    mine = tiny_module(pose_only, appearance=look).val_dataloader()
    for a, b in zip(mine, tiny_module(pose_only).val_dataloader(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_appearance_needs_rendered_frames_and_is_a_cli_option(video, pose_only, tmp_path):
    with pytest.raises(DataOptionError, match="data.appearance: .*--data.frames rendered"):
        tiny_module(video, appearance=AppearanceConfig(noise=0.5))
    assert tiny_module(video, appearance=AppearanceConfig()).frames == "decoded"  # all off
    ckpt = cli_fit(pose_only, tmp_path / "run", "--data.appearance.object_colors", "1",
                   "--data.appearance.noise", "0.5")
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert saved["datamodule_hyper_parameters"]["appearance"] == {
        "object_colors": 1.0, "surface_colors": 0.0, "lighting": 0.0, "noise": 0.5}
