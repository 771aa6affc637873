"""ProcTHOR house generation without Unity: determinism, exactness of the fast rectangle
join, schema validity, split seed ranges and resumable dataset writing."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
import warnings

import pytest

from datagen.houses import cli, house_dataset, procthor_patches
from datagen.houses.fast_rectangles import (
    join_neighboring_rectangles,
    join_neighboring_rectangles_reference,
)
from datagen.houses.house_dataset import generate_houses
from datagen.houses.procthor_gen import SPLIT_SEED_OFFSETS, SPLITS, generate_house, house_seed
from sim.assets import asset_database
from sim.house import load_houses, write_house_json
from sim.house_check import check_house

SMALL_MIX = {"kitchen-living-room": 1, "bedroom-bathroom": 1}
"""Two-room ProcTHOR-10K specs: fast to generate."""

warnings.filterwarnings("ignore", module="pandas")


def sha(house: dict) -> str:
    return hashlib.sha256(write_house_json(house).encode()).hexdigest()


@pytest.fixture(scope="module")
def small_houses() -> dict[int, dict]:
    return {i: generate_house("train", 0, i, SMALL_MIX) for i in range(3)}


# --------------------------------------------------------------------------- seeds


def test_split_seed_ranges_are_disjoint():
    span = 1 << 30
    ranges = sorted((SPLIT_SEED_OFFSETS[s], SPLIT_SEED_OFFSETS[s] + span) for s in SPLITS)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(ranges, ranges[1:]))
    assert ranges[-1][1] <= 2**32  # numpy's global seed limit
    for split in SPLITS:
        lo, hi = SPLIT_SEED_OFFSETS[split], SPLIT_SEED_OFFSETS[split] + span
        for args in [(0, 0, 0), (127, 2**20 - 1, 7), (3, 17, 2)]:
            assert lo <= house_seed(split, *args) < hi
    seen = {house_seed(s, seed, i, a) for s in SPLITS for seed in (0, 1) for i in range(50)
            for a in range(3)}
    assert len(seen) == 3 * 2 * 50 * 3


@pytest.mark.parametrize("args", [("dev", 0, 0), ("train", 128, 0), ("train", 0, 2**20),
                                  ("train", -1, 0)], ids=["split", "seed", "index", "neg"])
def test_house_seed_rejects_out_of_range(args):
    with pytest.raises(ValueError):
        house_seed(*args)


# --------------------------------------------------------------------------- rectangles


def _grid_rects(rng: random.Random, nx: int, nz: int, keep: float, zero_sign: float = 1.0):
    vals = [round(v * 0.25 - 3, 2) for v in range(40)]
    xs, zs = sorted(rng.sample(vals, nx)), sorted(rng.sample(vals, nz))
    xs = [zero_sign * 0.0 if x == 0 else x for x in xs]
    return {(x0, z0, x1, z1) for x0, x1 in zip(xs, xs[1:]) for z0, z1 in zip(zs, zs[1:])
            if rng.random() < keep}


def _same(a: set, b: set) -> bool:
    """Same elements in the same iteration order, down to each float's repr (-0.0)."""
    return [tuple(map(repr, r)) for r in a] == [tuple(map(repr, r)) for r in b]


def test_fast_join_equals_package_on_random_inputs():
    procthor_patches.apply()
    package = procthor_patches.original_join_neighboring_rectangles()
    rng = random.Random(0)
    for trial in range(80):
        rects = _grid_rects(rng, rng.randint(2, 9), rng.randint(2, 9), rng.uniform(0.4, 1),
                            zero_sign=-1.0 if trial % 3 == 0 else 1.0)
        for _ in range(3):  # the growing sets get_all_rectangles feeds it
            fast = join_neighboring_rectangles(rects)
            assert _same(fast, package(None, rects)), sorted(rects)
            assert _same(fast, join_neighboring_rectangles_reference(rects))
            rects = rects | fast


def test_fast_join_equals_package_on_room_polygons():
    """get_all_rectangles on real room shapes (L-shaped, door cut out, furniture removed)."""
    from procthor.generation.objects import OrthogonalPolygon
    from shapely.geometry import Polygon, box

    room = Polygon([(0, 0), (0, 6.5), (4.25, 6.5), (4.25, 3.1), (7.3, 3.1), (7.3, 0)])
    cuts = [box(1, 0, 2.1, 0.6), box(5.2, 1.0, 6.4, 2.2), box(0, 4.0, 0.7, 5.9),
            box(2.6, 5.5, 4.25, 6.5)]
    procthor_patches.apply()
    try:
        for k in range(len(cuts) + 1):
            poly = OrthogonalPolygon(room)
            for cut in cuts[:k]:
                poly.subtract(cut)
            procthor_patches.use_fast_rectangles(True)
            fast = poly.get_all_rectangles()
            procthor_patches.use_fast_rectangles(False)
            assert _same(fast, poly.get_all_rectangles())
    finally:
        procthor_patches.use_fast_rectangles(True)


def test_fast_path_gives_identical_houses(small_houses):
    procthor_patches.apply()
    try:
        procthor_patches.use_fast_rectangles(False)
        for i in (1, 2):
            assert sha(generate_house("train", 0, i, SMALL_MIX)) == sha(small_houses[i])
    finally:
        procthor_patches.use_fast_rectangles(True)


# --------------------------------------------------------------------------- determinism

_HASH_SCRIPT = textwrap.dedent("""
    import hashlib, sys, warnings
    warnings.filterwarnings("ignore")
    from sim.house import write_house_json
    from datagen.houses.procthor_gen import generate_house
    mix = {"kitchen-living-room": 1, "bedroom-bathroom": 1}
    for i in map(int, sys.argv[1:]):
        h = generate_house("train", 0, i, mix)
        print(i, hashlib.sha256(write_house_json(h).encode()).hexdigest())
""")


def _hashes_in_subprocess(indices: list[int], hash_seed: str) -> dict[int, str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run([sys.executable, "-c", _HASH_SCRIPT, *map(str, indices)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return {int(i): h for i, h in (line.split() for line in out.splitlines())}


def test_same_bytes_across_processes_orders_and_hash_seeds(small_houses):
    forward = _hashes_in_subprocess([0, 1, 2], "1")
    backward = _hashes_in_subprocess([2, 1, 0], "2")
    assert forward == backward == {i: sha(h) for i, h in small_houses.items()}
    assert len(set(forward.values())) == 3


# --------------------------------------------------------------------------- schema


def test_generated_houses_are_valid_schema_1(small_houses):
    db = asset_database()
    for i, house in small_houses.items():
        check_house(house)  # assetIds known, door walls exist, holes inside their walls
        meta = house["metadata"]
        assert meta["schema"] == "1.0.0" and meta["houseId"] == f"train-0-{i}"
        assert meta["generator"]["houseSeed"] == house_seed("train", 0, i)
        assert meta["roomSpecId"] in SMALL_MIX
        assert house["doors"] and all("holePolygon" in d for d in house["doors"])
        for obj in house["objects"]:
            assert obj["assetId"] in db


def _children(objects):
    for parent in objects:
        for child in parent.get("children", []):
            yield parent, child
        yield from _children(parent.get("children", []))


def test_small_objects_rest_on_their_receptacle(small_houses):
    db = asset_database()
    pairs = [pc for h in small_houses.values() for pc in _children(h["objects"])
             if pc[1]["id"].startswith("small|")]
    assert pairs, "expected some small objects"
    for parent, child in pairs:
        (px, py, pz), (cy_size) = db[parent["assetId"]].size, db[child["assetId"]].size[1]
        bottom = child["position"]["y"] - cy_size / 2
        parent_bottom = parent["position"]["y"] - py / 2
        assert parent_bottom - 1e-6 <= bottom <= parent_bottom + py + 1e-6
        reach = max(px, pz) / 2 + 1e-6  # centre within the receptacle's footprint radius
        assert abs(child["position"]["x"] - parent["position"]["x"]) <= reach
        assert abs(child["position"]["z"] - parent["position"]["z"]) <= reach


# --------------------------------------------------------------------------- datasets


def test_generate_houses_is_resumable_and_loadable(tmp_path, monkeypatch):
    out = tmp_path / "houses"
    path = generate_houses("val", 3, 0, out, workers=2, progress=False,
                           room_spec_mix=SMALL_MIX)
    first = path.read_bytes()
    with gzip.open(path, "rt") as f:
        lines = f.read().splitlines()
    assert len(lines) == 3
    records = list(load_houses(path))
    assert [r.house_id for r in records] == ["val-0-0", "val-0-1", "val-0-2"]
    assert [write_house_json(r.house) for r in records] == lines
    assert first[4:8] == b"\0\0\0\0" and not first[3] & 0x08  # gzip: mtime 0, no name

    meta = json.loads((out / "meta.json").read_text())["splits"]["val"]
    assert meta["num_houses"] == 3 and meta["split_seed_offset"] == SPLIT_SEED_OFFSETS["val"]
    assert meta["room_spec_mix"] == {k: float(v) for k, v in SMALL_MIX.items()}
    assert meta["resampled"] == sum(meta["resample_reasons"].values())

    assert not (out / ".val.partial").exists()  # a finished run leaves no partial files

    # A run killed while building house 1 keeps house 0, which the rerun reuses.
    path.unlink()
    built, build = [], house_dataset.build_partial

    def killed_at_house_1(out_dir, split, seed, index, mix):
        if index == 1:
            raise KeyboardInterrupt
        built.append(index)
        return build(out_dir, split, seed, index, mix)

    with monkeypatch.context() as m:
        m.setattr(house_dataset, "build_partial", killed_at_house_1)
        with pytest.raises(KeyboardInterrupt):
            generate_houses("val", 3, 0, out, workers=1, progress=False,
                            room_spec_mix=SMALL_MIX)
    assert built == [0] and sorted(os.listdir(out / ".val.partial")) == ["000000.json"]
    again = generate_houses("val", 3, 0, out, workers=1, progress=False,
                            room_spec_mix=SMALL_MIX)
    assert again.read_bytes() == first
    assert hashlib.sha256(first).hexdigest() == meta["sha256"]
    assert not (out / ".val.partial").exists()


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "--seed -1: out of range; use 0 <= seed < 128"),
    (["--seed", "128"], "--seed 128: out of range"),
    (["--num", "0"], "--num 0: out of range; generate 1 to 1,048,576 houses"),
    (["--num", "2000000"], "--num 2000000: out of range"),
    (["--split", "dev"], "--split 'dev': unknown split"),
    (["--workers", "-1"], "--workers -1: give a number of worker processes"),
    (["--out", "{tmp}/file"], "is a file; give a folder"),
    (["--out", "{tmp}/file/houses"], "cannot create the folder"),
], ids=["seed-negative", "seed-large", "num-0", "num-large", "split", "workers", "out-file",
        "out-under-file"])
def test_generate_bad_options_are_one_line(args, message, tmp_path, capsys):
    (tmp_path / "file").write_bytes(b"")
    argv = {"--split": "val", "--num": "2", "--out": str(tmp_path / "h")}
    for key, value in zip(args[::2], args[1::2]):
        argv[key] = value.replace("{tmp}", str(tmp_path))
    assert cli.main(["generate", *(a for kv in argv.items() for a in kv)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err and err.startswith("spoc-houses: ")
    assert not (tmp_path / "h").exists()


def test_room_without_a_group_neighbour_raises_instead_of_hanging():
    procthor_patches.apply()
    from procthor.generation import doors

    # Rooms 2 and 3 border each other; room 4 borders neither, so the package's loop would
    # never remove it from the rooms still to connect.
    with pytest.raises(procthor_patches.DisconnectedRoomGroupError, match=r"\[4\]"):
        doors.select_openings({(2, 3)}, [[{2}, {3}, {4}]], room_spec=None)


def test_house_whose_first_floorplan_hangs_procthor_is_resampled():
    # ProcTHOR-10K train house 447 of seed 0: attempt 0 draws a floorplan on which procthor's
    # door selection loops forever; it is now a counted failure and attempt 1 is kept.
    from datagen.houses.procthor_gen import PROCTHOR10K, generate_valid_house

    house, failures = generate_valid_house("train", 0, 447, PROCTHOR10K)
    assert failures[0] == "procthor:DisconnectedRoomGroupError"
    check_house(house, "house 447")
