"""``spoc-sim render`` end to end on a fixture house."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sim.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
HOUSE = str(FIXTURES / "house_3703.json")
SMALL = ["--camera.height", "56", "--camera.width", "96"]


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_render_one_pose_writes_views_and_map(tmp_path, capsys):
    assert main(["render", HOUSE, "--pose", "3.5,4.75,90", "--out", str(tmp_path), *SMALL]) == 0
    (line,) = _lines(capsys)
    assert line["pose"] == [3.5, 4.75, 90.0]
    for name in ("rgb", "depth", "ids", "map"):
        assert Path(line["files"][name]) == tmp_path / f"{name}_0.png"
        assert (tmp_path / f"{name}_0.png").stat().st_size > 0
    assert np.asarray(Image.open(tmp_path / "rgb_0.png")).shape == (56, 96, 3)
    depth = np.asarray(Image.open(tmp_path / "depth_0.png"))
    assert depth.dtype == np.uint16 or depth.dtype == np.int32  # 16-bit millimetres
    assert 300 < depth.min() and depth.max() < 20000


def test_random_poses_are_seeded(tmp_path, capsys):
    args = ["render", HOUSE, "--random-poses", "2", "--seed", "3", *SMALL]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    a = _lines(capsys)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    b = _lines(capsys)
    assert len(a) == 2 and [x["pose"] for x in a] == [x["pose"] for x in b]
    assert len(list((tmp_path / "a").glob("*.png"))) == 8


@pytest.mark.parametrize("args, message", [
    (["--pose", "0.5,0.5,0"], "not free space"),
    (["--pose", "0.1,0.1,0"], "not on the 0.25 m lattice"),
    (["--pose", "1,2"], "expected X,Z,HEADING"),
    (["--pose", "3.5,4.75,90", "--random-poses", "2"], "either --pose or --random-poses"),
    (["--random-poses", "1", "--camera.pitch", "80"], "pitch"),
    (["--pose", "3.5,4.75,45"], "heading 45 deg is not one of the agent's 4 headings"),
    (["--pose", "nan,nan,nan"], "every value must be a finite number"),
    (["--pose", "1e308,4.75,90"], "at most 1000 from the origin"),
    (["--random-poses", "100000000"], "give 1 to 1000"),
    (["--random-poses", "1", "--agent.grid", "0.001"],
     "field 'grid': a 0.001 m grid over 5.7 x 5.7 m of floor makes"),
    (["--random-poses", "1", "--agent.grid", "0"], "agent.grid/radius"),
    (["--random-poses", "1", "--agent.headings", "6"], "agent.headings: 6 is not supported"),
    (["--random-poses", "1", "--out", "{tmp}/file"], "is an existing file, not a folder"),
    (["--random-poses", "1", "--out", "{tmp}/file/views"], "is an existing file, not a folder"),
], ids=["blocked", "off-lattice", "malformed", "both", "bad-camera", "between-headings",
        "nan", "huge", "too-many-poses", "grid-too-fine", "grid-0", "headings-6",
        "out-is-file", "out-under-file"])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    (tmp_path / "file").write_bytes(b"")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["render", HOUSE, "--out", str(tmp_path / "views"), *args, *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("spoc-sim: ")
    assert not (tmp_path / "views").exists()  # nothing written for a refused render


def test_a_pose_on_one_of_eight_headings_renders(tmp_path, capsys):
    assert main(["render", HOUSE, "--pose", "3.5,4.75,45", "--agent.headings", "8",
                 "--out", str(tmp_path), *SMALL]) == 0
    assert _lines(capsys)[0]["pose"] == [3.5, 4.75, 45.0]


def test_missing_house_file_exits_2(tmp_path, capsys):
    assert main(["render", str(tmp_path / "nope.json"), "--pose", "1,1,0",
                 "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_house_exits_2_naming_file_house_and_field(tmp_path, capsys):
    house = json.loads(Path(HOUSE).read_text())
    house["objects"][0]["position"]["z"] = 1e9
    path = tmp_path / "far.jsonl"
    path.write_text(Path(HOUSE).read_text().replace("\n", " ") + "\n" + json.dumps(house))
    out = tmp_path / "views"
    assert main(["render", str(path), "--index", "1", "--random-poses", "1",
                 "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"{path} house 1: field 'objects[0].position.z'" in err and not out.exists()
