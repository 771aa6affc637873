"""info.json as the dataset's card (features, totals, generator) checked against the shards,
``spoc-datagen info``, datasets moved away from the house files they were made from and used
from another directory, and older info.json files: loaded with a hint, then upgraded."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import HOUSE, write_dataset

import common.version
from common.files import json_bytes
from datagen.cli import main as datagen_main
from datagen.constants import KEY_META, KEY_RGB, META_KEYS, SAMPLE_FEATURES, STEPS_DIM
from datagen.dataset import CARD_KEYS, read_info, split_house_file
from datagen.shards import iter_episodes
from datagen.video import decode_frames
from eval.inputs import dataset_training_houses
from training.cli import build_cli
from training.dagger.shards import open_view
from training.data.info import load_info
from training.detector.cli import main as detector_main
from training.pretrain.data import LabelledFrameDataModule

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny.yaml")
SHARDS = {"train": (1, 3), "val": (1, 2)}
SIZE = (32, 48)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A video and a pose-only dataset of one house, moved away from where they were written,
    and the house file they were written from deleted."""
    tmp = tmp_path_factory.mktemp("card")
    source = tmp / "src" / "train.json"
    source.parent.mkdir()
    shutil.copy(HOUSE, source)
    out = {}
    for frames in ("video", "none"):
        written = write_dataset(tmp / "written" / frames, SHARDS, SIZE, str(source),
                                frames=frames)
        out[frames] = Path(shutil.move(str(written), str(tmp / "moved" / frames)))
    shutil.rmtree(tmp / "src")
    shutil.rmtree(tmp / "written")
    return out


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """An unrelated working directory."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr("sys.argv", ["spoc-train"])
    return cwd


def samples(root: Path, split: str) -> list[dict]:
    return [s for tar in sorted((root / split).glob("shard-*.tar")) for s in iter_episodes(tar)]


# ------------------------------------------------------------------------------ the card


@pytest.mark.parametrize("frames", ["video", "none"])
def test_the_card_describes_what_the_shards_hold(made, frames):
    root = made[frames]
    info = read_info(root)
    features = info["features"]
    assert (KEY_RGB in features) == (frames == "video")
    assert set(features) == set(SAMPLE_FEATURES) - ({KEY_RGB} if frames == "none" else set())
    for split, entry in info["splits"].items():
        found = samples(root, split)
        assert len(found) == info["totals"]["splits"][split]["episodes"] > 0
        for sample in found:
            meta = sample[KEY_META]
            assert features[KEY_META]["keys"] == list(META_KEYS)
            assert sorted(meta) == sorted(META_KEYS)  # written with sorted keys
            assert set(sample) - {"__key__"} <= set(features)
            for key, value in sample.items():
                if key in ("__key__", KEY_META):
                    continue
                if key == KEY_RGB:
                    value = decode_frames(value)
                shape = [meta["num_steps"] if d == STEPS_DIM else d
                         for d in features[key]["shape"]]
                assert value.dtype == np.dtype(features[key]["dtype"]), key
                assert list(value.shape) == shape, key
        shards = entry["shards"]
        split_totals = info["totals"]["splits"][split]
        assert split_totals == {
            "shards": len(shards),
            "episodes": sum(s["episodes"] for s in shards.values()),
            "steps": sum(len(s["actions.npy"]) for s in found),
            "bytes": sum((root / split / name).stat().st_size for name in shards)}
    totals = info["totals"]
    for key in ("shards", "episodes", "steps", "bytes"):
        assert totals[key] == sum(s[key] for s in totals["splits"].values())
    generator = info["generator"]
    assert generator["package"] == "spoc-pipeline"
    assert generator["version"] == importlib.metadata.version("spoc-pipeline")
    assert generator["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", generator["commit"])


def test_the_commit_is_none_outside_a_checkout_or_without_git(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert common.version.git_commit() is None
    above = subprocess.CompletedProcess([], 0, stdout=f"/\n{'a' * 40}\n", stderr="")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: above)  # a repository above it
    assert common.version.git_commit() is None


def test_spoc_datagen_info(made, capsys):
    assert datagen_main(["info", str(made["video"])]) == 0
    text = capsys.readouterr().out
    info = read_info(made["video"])
    assert "video dataset" in text and f"{SIZE[0]}x{SIZE[1]} pixels" in text
    assert re.search(rf"^train\s+1/1\s+{info['totals']['splits']['train']['episodes']}\s",
                     text, re.M)
    assert "rgb.mp4" in text and "target_box.npy" in text and "spoc-pipeline" in text
    assert datagen_main(["info", str(made["none"]), "--json", "true"]) == 0
    summary = json.loads(capsys.readouterr().out)
    pose = read_info(made["none"])
    assert summary["kind"] == "pose-only" and KEY_RGB not in summary["features"]
    assert summary["totals"] == {k: v for k, v in pose["totals"].items() if k != "splits"}
    assert summary["generator"] == pose["generator"] and summary["upgrade"] == []
    assert datagen_main(["info", str(made["none"] / "train")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no info.json" in err[0]


# ------------------------------------------------------------------ moved, used elsewhere


def fit(root: Path, run: Path, *extra: str) -> dict:
    """Two ``spoc-train`` batches on ``root``; the last checkpoint."""
    build_cli(["fit", "--config", CONFIG, "--data.root", str(root),
               "--trainer.default_root_dir", str(run), "--trainer.max_epochs", "1",
               "--data.batches_per_epoch", "2", "--trainer.enable_progress_bar", "false",
               *extra])
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def test_a_moved_video_dataset_verifies_and_trains_from_elsewhere(made, elsewhere, capsys):
    root = made["video"]
    assert datagen_main(["verify", str(root)]) == 0
    assert "is sound" in capsys.readouterr().err
    assert fit(root, elsewhere / "run", "--data.frames", "rendered")["global_step"] == 2
    assert "older spoc-datagen" not in capsys.readouterr().err


def test_a_moved_pose_only_dataset_is_used_by_every_reader_from_elsewhere(made, elsewhere,
                                                                           capsys):
    root = made["none"]
    assert datagen_main(["verify", str(root)]) == 0
    assert fit(root, elsewhere / "run")["global_step"] == 2
    pretrain = LabelledFrameDataModule(str(root), image_size=(32, 48), batch_size=4,
                                       num_workers=0)
    pretrain.grid = (2, 3)
    assert next(iter(pretrain.val_dataloader()))["frames"].shape[0] > 0
    assert detector_main(["fit", "--data", str(root), "--split", "train", "--episodes", "3",
                          "--stride", "2", "--out", str(elsewhere / "detector.json")]) == 0
    view = open_view(root, None, read_info(root)["goals"], max_steps=15, envs=1)
    assert Path(view.houses.path).is_file() and root in Path(view.houses.path).parents
    assert len(dataset_training_houses(str(root), read_info(root)).hashes) == 1
    assert "older spoc-datagen" not in capsys.readouterr().err


# -------------------------------------------------------------------------- older datasets


def as_older(root: Path, to: Path, house_path: str) -> Path:
    """A copy of ``root`` as an older spoc-datagen wrote it: no card, no ``frames``, no
    ``houses/`` folder, each split's house file named by ``house_path``."""
    copy = Path(shutil.copytree(root, to))
    shutil.rmtree(copy / "houses")
    info = json.loads((copy / "info.json").read_text())
    for key in (*CARD_KEYS, "frames"):
        del info[key]
    del info["config"]["frames"]
    for entry in info["splits"].values():
        del entry["houses"]["source"]
        entry["houses"]["path"] = house_path
    (copy / "info.json").write_bytes(json_bytes(info))
    return copy


def without_sources(info: dict) -> dict:
    info = json.loads(json.dumps(info))
    for entry in info["splits"].values():
        del entry["houses"]["source"]
    return info


def test_an_older_dataset_loads_with_a_hint_and_upgrades(made, tmp_path, monkeypatch, capsys):
    written = tmp_path / "written"  # where it was made: the house path is relative to it
    written.mkdir()
    shutil.copy(HOUSE, written / "train.json")
    root = as_older(made["video"], tmp_path / "old", "train.json")
    monkeypatch.chdir(written)
    capsys.readouterr()
    info = load_info(root)
    assert Path(info["splits"]["train"]["houses"]["path"]) == (written / "train.json").absolute()
    hint = capsys.readouterr().err.strip().splitlines()
    assert len(hint) == 1 and f"spoc-datagen upgrade {root}" in hint[0]
    assert "house files of train, val outside the dataset" in hint[0]
    assert datagen_main(["verify", str(root)]) == 0
    assert datagen_main(["info", str(root)]) == 0
    assert "not recorded" in capsys.readouterr().out

    monkeypatch.chdir(tmp_path)  # elsewhere: the file is not found, and nothing changes
    before = (root / "info.json").read_bytes()
    assert datagen_main(["upgrade", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.json is not found" in err[0] and "--houses" in err[0]
    assert (root / "info.json").read_bytes() == before and not (root / "houses").exists()
    assert datagen_main(["upgrade", str(root), "--houses", str(written / "train.json")]) == 0
    assert "splits.train.houses.path: train.json -> houses/" in capsys.readouterr().out
    upgraded = read_info(root)
    assert without_sources(upgraded) == without_sources(read_info(made["video"]))
    assert upgraded["splits"]["train"]["houses"]["source"] == "train.json"
    assert datagen_main(["upgrade", str(root)]) == 0  # again: nothing to do
    assert (root / "info.json").read_bytes() == json_bytes(upgraded)

    shutil.rmtree(written)  # the upgraded dataset carries its houses
    moved = Path(shutil.move(str(root), str(tmp_path / "moved")))
    assert split_house_file(moved, read_info(moved)["splits"]["val"]["houses"]).is_file()
    assert datagen_main(["verify", str(moved)]) == 0
    assert "older spoc-datagen" not in capsys.readouterr().err
