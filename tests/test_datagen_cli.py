"""spoc-datagen on the command line: the happy path and bad input (one line, exit 2, nothing
written)."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest

from datagen.cli import main
from sim.house import load_houses, write_house_json

TINY = ["--camera.height", "32", "--camera.width", "48", "--tasks.min_pixels", "3",
        "--episodes-per-shard", "2", "--episodes-per-house", "2", "--progress", "false"]


@pytest.fixture(scope="module")
def houses(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("houses") / "train.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(write_house_json(next(load_houses("tests/fixtures/house_3703.json")).house))
        f.write("\n")
    return str(path)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("spoc-datagen: ")
    return err[0]


def test_episodes_then_verify(houses, tmp_path, capsys):
    out = tmp_path / "ds"
    for k in ("0", "1"):  # two SLURM array tasks
        assert main(["episodes", "--houses", houses, "--out", str(out), "--num-shards", "2",
                     "--shard-index", k, *TINY]) == 0
    info = json.loads((out / "info.json").read_text())
    assert sorted(info["splits"]["train"]["shards"]) == ["shard-000000.tar", "shard-000001.tar"]
    assert main(["verify", str(out)]) == 0
    (out / "train/shard-000001.tar").write_bytes(b"garbage")
    capsys.readouterr()
    assert main(["verify", str(out)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "shard-000001.tar: sha256 does not match" in lines[0]


def test_pose_only_episodes_then_verify(houses, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["episodes", "--houses", houses, "--out", str(out), "--frames", "none",
                 *TINY]) == 0
    info = json.loads((out / "info.json").read_text())
    assert info["frames"] == info["config"]["frames"] == "none"
    assert info["splits"]["train"]["houses"]["path"].startswith("houses/")
    with tarfile.open(out / "train/shard-000000.tar") as tar:
        names = tar.getnames()
    assert names and not any(n.endswith(".rgb.mp4") for n in names)
    assert main(["verify", str(out)]) == 0
    capsys.readouterr()  # the same dataset with video: refused, the difference named
    assert main(["episodes", "--houses", houses, "--out", str(out), *TINY]) == 2
    assert "frames: 'none' there, 'video' here" in one_error_line(capsys)


def test_config_file_and_print_config(houses, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"houses: {houses}\nnum_shards: 3\ncamera: {{height: 32, width: 48}}\n")
    with pytest.raises(SystemExit) as e:
        main(["episodes", "--config", str(cfg), "--seed", "7", "--print_config"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "num_shards: 3" in text and "seed: 7" in text and "height: 32" in text


@pytest.mark.parametrize("yaml_text, expected", [
    ("tasks: {objectnav_targets: [Spaceship]}", "unknown object type 'Spaceship'"),
    ("tasks: {mix: {pointnav: 1.0}}", "unknown task 'pointnav'"),
    ("tasks: {roomnav_targets: [Garage]}", "unknown room type 'Garage'"),
    ("episodes_per_shard: 0", "episodes_per_shard: 0 must be >= 1"),
    ("frames: jpeg", "frames: 'jpeg' is not one of video, none"),
], ids=["object-type", "task", "room-type", "episodes", "frames"])
def test_bad_config_is_one_line(houses, tmp_path, capsys, yaml_text, expected):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text + "\n")
    out = tmp_path / "ds"
    assert main(["episodes", "--config", str(cfg), "--houses", houses, "--out", str(out)]) == 2
    assert expected in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    (b"this is not gzip", "cannot be read"),
    (gzip.compress(b'{"rooms": [}\n'), "malformed JSON"),
], ids=["missing", "not-gzip", "bad-json"])
def test_bad_house_file_is_one_line(tmp_path, capsys, content, expected):
    path = tmp_path / "houses.jsonl.gz"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "ds"
    assert main(["episodes", "--houses", str(path), "--out", str(out), *TINY]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and expected in line
    assert not out.exists() or not any(out.rglob("*.tar"))


def test_malformed_later_line_fails_before_anything_is_written(houses, tmp_path, capsys):
    """A bad line far into the file is found up front: no split registered, no shard."""
    path = tmp_path / "houses.jsonl.gz"
    good = gzip.decompress(Path(houses).read_bytes())
    path.write_bytes(gzip.compress(good + b'{"rooms": [}\n'))
    out = tmp_path / "ds"
    assert main(["episodes", "--houses", str(path), "--out", str(out), *TINY]) == 2
    assert "malformed JSON" in one_error_line(capsys)
    assert not (out / "info.json").exists() and not any(out.rglob("*.tar"))


def test_structurally_bad_later_house_fails_before_anything_is_written(houses, tmp_path,
                                                                       capsys):
    """Valid JSON that is not a house (no walls) is also found before the split is made."""
    good = gzip.decompress(Path(houses).read_bytes())
    bad = json.loads(good)
    del bad["walls"]
    path = tmp_path / "houses.jsonl.gz"
    path.write_bytes(gzip.compress(good + json.dumps(bad).encode() + b"\n"))
    out = tmp_path / "ds"
    assert main(["episodes", "--houses", str(path), "--out", str(out), *TINY]) == 2
    line = one_error_line(capsys)
    assert "walls" in line and "houses.jsonl.gz" in line
    assert not (out / "info.json").exists() and not any(out.rglob("*.tar"))


def test_incompatible_dataset_dir_is_one_line(houses, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["episodes", "--houses", houses, "--out", str(out), *TINY]) == 0
    before = (out / "info.json").read_bytes()
    capsys.readouterr()
    assert main(["episodes", "--houses", houses, "--out", str(out), *TINY,
                 "--agent.grid", "0.5"]) == 2
    assert "incompatible config" in one_error_line(capsys)
    assert (out / "info.json").read_bytes() == before
    info = json.loads(before)
    info["version"] = "spoc-nav/0"
    (out / "info.json").write_text(json.dumps(info))
    assert main(["episodes", "--houses", houses, "--out", str(out), *TINY]) == 2
    assert "version 'spoc-nav/0'" in one_error_line(capsys)


def test_shard_index_out_of_range(houses, tmp_path, capsys):
    assert main(["episodes", "--houses", houses, "--out", str(tmp_path / "ds"),
                 "--num-shards", "2", "--shard-index", "2", *TINY]) == 2
    assert "--shard-index 2" in one_error_line(capsys)
    assert not Path(tmp_path / "ds").exists()


def test_failed_shards_are_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    """Shards that failed for good (their retries spent) end the run with one line and exit
    status 1; a rerun writes them."""
    import datagen.cli

    def failing(*args, **kwargs):
        raise datagen.cli.ShardsFailed("shard 3 failed: OSError: the disk went away")

    monkeypatch.setattr(datagen.cli, "run_local", failing)
    houses = Path(__file__).parent / "fixtures" / "house_3703.json"
    argv = ["episodes", "--config", "configs/datagen/tiny.yaml", "--houses", str(houses),
            "--split", "train", "--num-shards", "4", "--episodes-per-shard", "2",
            "--out", str(tmp_path / "ds"), "--progress", "false"]
    assert datagen.cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spoc-datagen: shard 3 failed") and \
        "rerun the same command" in err[0]
