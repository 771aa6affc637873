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
    main(["render", HOUSE, "--pose", "3.5,4.75,90", "--out", str(tmp_path), *SMALL])
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
    main([*args, "--out", str(tmp_path / "a")])
    a = _lines(capsys)
    main([*args, "--out", str(tmp_path / "b")])
    b = _lines(capsys)
    assert len(a) == 2 and [x["pose"] for x in a] == [x["pose"] for x in b]
    assert len(list((tmp_path / "a").glob("*.png"))) == 8


@pytest.mark.parametrize("args, message", [
    (["--pose", "0.5,0.5,0"], "not free space"),
    (["--pose", "0.1,0.1,0"], "not on the 0.25 m lattice"),
    (["--pose", "1,2"], "expected X,Z,HEADING"),
    (["--pose", "3.5,4.75,90", "--random-poses", "2"], "either --pose or --random-poses"),
    (["--random-poses", "1", "--camera.pitch", "80"], "pitch"),
], ids=["blocked", "off-lattice", "malformed", "both", "bad-camera"])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["render", HOUSE, "--out", str(tmp_path), *args, *SMALL])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_house_file_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["render", str(tmp_path / "nope.json"), "--pose", "1,1,0", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "no such file" in capsys.readouterr().err
