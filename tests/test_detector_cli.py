"""spoc-detector: fit the colour detector on a dataset's rendered frames, score it on another
split against the simulator's boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from training_helpers import write_dataset

from agents.detector import ColourDetector
from datagen.dataset import split_house_file
from datagen.episodes import HouseFile
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv
from sim.lattice import AgentConfig
from sim.scene import asset_color, chromaticity
from training.detector.cli import FitConfig, FitFrames, fit, main, open_split
from training.detector.fit import fit_colour_detector
from training.pretrain.data import label_vocab


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("shards"), {"train": (2, 4), "val": (1, 8)},
                         size=(48, 64))


def test_fit_on_train_then_score_on_val(dataset, tmp_path, capsys):
    out = tmp_path / "detector.json"
    main(["fit", "--data", str(dataset), "--split", "train", "--stride", "1", "--out", str(out)])
    detector = ColourDetector.load(out)
    info = json.loads((dataset / "info.json").read_text())
    assert set(detector.centre) <= set(info["config"]["tasks"]["objectnav_targets"])
    assert detector.fitted_on["split"] == "train" and detector.fitted_on["frames"] > 50
    assert "types fitted on" in capsys.readouterr().out
    # one colour per asset colour of the type in the training houses, at most
    env = EmbeddedEnv(CameraConfig(**info["camera"]), AgentConfig(**info["agent"]))
    houses = HouseFile.scan(split_house_file(dataset, info["splits"]["train"]["houses"]))
    assets: dict[str, set] = {}
    for record in houses.read(list(range(len(houses)))).values():
        boxes = env.load(record.house)[0].boxes
        for t, a in zip(boxes.object_type, boxes.asset_id):
            assets.setdefault(t, set()).add(tuple(chromaticity(asset_color(t, a))))
    for t, colours in detector.centre.items():
        assert 1 <= len(colours) <= len(assets[t])
        for colour in colours:
            assert min(np.abs(np.subtract(colour, a)).sum() for a in assets[t]) < 0.01
    main(["fit", "--data", str(dataset), "--split", "train", "--stride", "1",
          "--out", str(tmp_path / "again.json")])
    assert (tmp_path / "again.json").read_bytes() == out.read_bytes()  # same data, same bytes
    scores = tmp_path / "scores.json"
    main(["score", "--data", str(dataset), "--split", "val", "--detector", str(out),
          "--out", str(scores)])
    result = json.loads(scores.read_text())
    total = result["all"]
    # the val episodes' targets, in frames rendered at their poses: found, and boxed where
    # the simulator boxes them
    assert total["frames_shown"] >= 20 and len(result["per_type"]) >= 2
    assert total["recall"] >= 0.9 and total["precision"] >= 0.7 and total["iou"] >= 0.8
    assert "all" in capsys.readouterr().out


def test_the_fit_renders_its_frames_again_rather_than_holding_them(dataset, tmp_path):
    """The fit reads its frames twice and renders them both times: the same detector as
    from the same frames held in a list."""
    cfg = FitConfig(data=str(dataset), split="train", stride=2, out=str(tmp_path / "d.json"))
    streamed = fit(cfg)
    info, renderer = open_split(cfg.data, cfg.split)
    targets, _ = label_vocab(info)
    frames = FitFrames(cfg, renderer, targets)
    held = list(frames)
    assert len(held) == streamed.fitted_on["frames"] > 10
    for (a, b, c), (x, y, z) in zip(held, frames):  # the second rendering: the same frames
        assert (a == x).all() and (b == y).all() and (c == z).all()
    again = fit_colour_detector(held, targets, dict(streamed.fitted_on))
    assert again.to_json() == streamed.to_json()


def test_bad_input_is_one_line(dataset, tmp_path, capsys):
    for argv in (["fit", "--data", str(dataset), "--split", "test", "--out", str(tmp_path / "d")],
                 ["score", "--data", str(dataset), "--detector", str(tmp_path / "missing.json")],
                 ["fit", "--data", str(tmp_path), "--out", str(tmp_path / "d")],
                 ["fit", "--data", str(dataset), "--episodes", "0", "--out", str(tmp_path / "d")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("spoc-detector: "), err
    assert not (tmp_path / "d").exists()


def test_more_types_are_fitted_beside_the_targets_and_anchors_are_scored(dataset, tmp_path,
                                                                         capsys):
    """--types fits a RoomNav anchor type too and leaves the targets' fit as it was;
    score --room_anchors scores RoomNav episodes on their anchor's box; an unknown type is one
    line."""
    plain, more = tmp_path / "plain.json", tmp_path / "more.json"
    main(["fit", "--data", str(dataset), "--split", "train", "--stride", "1", "--out", str(plain)])
    main(["fit", "--data", str(dataset), "--split", "train", "--stride", "1",
          "--types", "[Fridge]", "--out", str(more)])
    a, b = ColourDetector.load(plain), ColourDetector.load(more)
    assert "Fridge" not in a.centre and set(b.centre) == set(a.centre) | {"Fridge"}
    for field in ("centre", "radius", "min_pixels"):
        assert {k: v for k, v in getattr(b, field).items() if k != "Fridge"} == getattr(a, field)
    assert b.fitted_on["types"] == ["Fridge"]
    scores = tmp_path / "scores.json"
    anchors = '{LivingRoom: Television}'
    main(["score", "--data", str(dataset), "--split", "val", "--detector", str(more),
          "--room_anchors", anchors, "--out", str(scores)])
    with_rooms = json.loads(scores.read_text())
    main(["score", "--data", str(dataset), "--split", "val", "--detector", str(more),
          "--out", str(scores)])
    without = json.loads(scores.read_text())
    frames = with_rooms["per_type"]["Television"]["frames_shown"]
    assert frames > without["per_type"].get("Television", {}).get("frames_shown", 0)
    capsys.readouterr()
    for argv in (["fit", "--data", str(dataset), "--types", "[Fridgee]", "--out",
                  str(tmp_path / "d")],
                 ["score", "--data", str(dataset), "--detector", str(more), "--room_anchors",
                  "{Garage: Car}"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("Fridgee" in err or "Garage" in err), err
