"""House loading, schema upgrade, structural checks and the validate command."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import pytest

from datagen.houses import cli
from datagen.houses.validate import house_report
from sim.assets import asset_database
from sim.house import (
    SCHEMA,
    HouseError,
    load_house,
    load_houses,
    read_house,
    upgrade_house,
    wall_geometry,
)

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "143.json"  # schema 0.0.1
NEW = FIXTURES / "house_3703.json"  # schema 1.0.0


def raw(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", [OLD, NEW], ids=["schema-0.0.1", "schema-1.0.0"])
def test_fixture_houses_load_as_schema_1(path):
    rec = load_house(path)
    assert rec.house["metadata"]["schema"] == SCHEMA
    for d in rec.house["doors"] + rec.house["windows"]:
        assert "holePolygon" in d and "assetPosition" in d and "boundingBox" not in d
    for w in rec.house["walls"]:
        assert isinstance(w["material"], dict) and "name" in w["material"]


def test_upgrade_keeps_hole_geometry_and_does_not_modify_input():
    before = raw(OLD)
    snapshot = copy.deepcopy(before)
    after = upgrade_house(before)
    assert before == snapshot
    door_old, door_new = before["doors"][0], after["doors"][0]
    lo, hi = door_old["boundingBox"]["min"], door_old["boundingBox"]["max"]
    assert door_new["holePolygon"][0]["x"] == lo["x"] and door_new["holePolygon"][1]["y"] == hi["y"]
    centre = (lo["x"] + hi["x"]) / 2 + door_old["assetOffset"]["x"]
    assert door_new["assetPosition"]["x"] == pytest.approx(centre)


@pytest.mark.parametrize("path", [OLD, NEW], ids=["schema-0.0.1", "schema-1.0.0"])
def test_fixture_houses_are_connected_and_offer_targets(path):
    report = house_report(load_house(path).house)
    assert report["connected"], report["unreachable_rooms"]
    assert report["reachable_cells"] > 100
    assert len(report["objectnav_targets_reachable"]) >= 3


@pytest.mark.parametrize("path", [OLD, NEW], ids=["schema-0.0.1", "schema-1.0.0"])
def test_schema_validity_of_fixtures(path):
    house = load_house(path).house
    db = asset_database()
    stack = list(house["objects"])
    while stack:
        o = stack.pop()
        assert o["assetId"] in db
        stack.extend(o.get("children", []))
    walls = {w["id"]: w for w in house["walls"]}
    for d in house["doors"] + house["windows"]:
        assert d["wall0"] in walls
        (x0, z0), (x1, z1), lo, hi = wall_geometry(walls[d["wall0"]])
        length = ((x1 - x0) ** 2 + (z1 - z0) ** 2) ** 0.5
        a, b = d["holePolygon"]
        assert -0.02 <= a["x"] < b["x"] <= length + 0.02 and lo - 0.02 <= a["y"] < b["y"] <= hi


def test_jsonl_and_gz_round_trip(tmp_path):
    lines = [json.dumps(raw(OLD)), json.dumps(raw(NEW))]
    plain = tmp_path / "h.jsonl"
    plain.write_text("\n".join(lines) + "\n")
    packed = tmp_path / "h.jsonl.gz"
    with gzip.open(packed, "wt") as f:
        f.write("\n".join(lines) + "\n")
    a = [r.house for r in load_houses(plain)]
    b = [r.house for r in load_houses(packed)]
    assert a == b and len(a) == 2
    assert load_house(packed, 1).house == a[1]


def _broken(mutate) -> dict:
    h = raw(NEW)
    mutate(h)
    return h


BAD = {
    "missing-rooms": (lambda h: h.pop("rooms"), "rooms", "missing"),
    "missing-floor-polygon": (lambda h: h["rooms"][0].pop("floorPolygon"),
                              "rooms[0].floorPolygon", "missing"),
    "unknown-asset": (lambda h: h["objects"][0].update(assetId="NoSuchAsset_9"),
                      "objects[0].assetId", "unknown assetId"),
    "unknown-child-asset": (lambda h: h["objects"][0]["children"][0].update(assetId="Nope"),
                            "objects[0].children[0].assetId", "unknown assetId"),
    "two-vertex-polygon": (lambda h: h["rooms"][0].update(floorPolygon=h["rooms"][0][
        "floorPolygon"][:2]), "rooms[0].floorPolygon", "distinct vertices"),
    "degenerate-polygon": (lambda h: h["rooms"][0].update(floorPolygon=[
        {"x": 0, "y": 0, "z": 0}, {"x": 1, "y": 0, "z": 0}, {"x": 2, "y": 0, "z": 0}]),
        "rooms[0].floorPolygon", "degenerate"),
    "self-crossing-polygon": (lambda h: h["rooms"][0].update(floorPolygon=[
        {"x": 0, "y": 0, "z": 0}, {"x": 4, "y": 0, "z": 2}, {"x": 4, "y": 0, "z": 0},
        {"x": 0, "y": 0, "z": 1}]), "rooms[0].floorPolygon", "not a simple closed ring"),
    "unknown-schema": (lambda h: h["metadata"].update(schema="9.9.9"), "metadata.schema",
                       "unknown schema"),
    "door-on-missing-wall": (lambda h: h["doors"][0].update(wall0="wall|nope"),
                             "doors[0].wall0", "does not exist"),
    "hole-outside-wall": (lambda h: h["doors"][0]["holePolygon"][1].update(x=99.0),
                          "doors[0].holePolygon", "outside its wall"),
    "position-not-number": (lambda h: h["objects"][1]["position"].update(x="left"),
                            "objects[1].position", "must be numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
def test_bad_house_gives_one_clear_line(case, tmp_path):
    mutate, field, problem = BAD[case]
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(raw(NEW)) + "\n" + json.dumps(_broken(mutate)) + "\n")
    with pytest.raises(HouseError) as err:
        list(load_houses(path))
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and "house 1" in message
    assert f"'{field}'" in message and problem in message


def test_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(raw(NEW)) + "\n{not json\n")
    with pytest.raises(HouseError, match=r"house 1: field '<json>': malformed JSON on line 2"):
        list(load_houses(path))


def test_truncated_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "h.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(raw(NEW)) + "\n")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(HouseError, match="corrupt or truncated"):
        list(load_houses(path))


def test_non_object_house_rejected():
    with pytest.raises(HouseError, match="expected a JSON object"):
        read_house([1, 2, 3])


def test_validate_command_prints_one_line_per_house(tmp_path, capsys):
    cli.main(["validate", str(OLD), str(NEW)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["schema"] for r in rows] == ["0.0.1", "1.0.0"]
    assert all(r["valid"] and r["connected"] for r in rows)
    assert all(r["reachable_cells"] > 0 for r in rows)


def test_validate_command_fails_on_bad_house(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_broken(lambda h: h["objects"][0].update(assetId="Nope"))))
    with pytest.raises(SystemExit) as err:
        cli.main(["validate", str(NEW), str(bad)])
    assert err.value.code != 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["valid"] and not rows[1]["valid"]
    assert "unknown assetId 'Nope'" in rows[1]["error"]


def test_empty_walls_are_open(tmp_path):
    """ProcTHOR marks open-plan boundaries ``"empty": true``; they must not block."""
    house = load_house(OLD).house
    assert any(w.get("empty") for w in house["walls"])
    closed = copy.deepcopy(house)
    for w in closed["walls"]:
        w.pop("empty", None)
    assert house_report(house)["connected"]
    assert not house_report(closed)["connected"]


@pytest.mark.parametrize("path", [OLD, NEW], ids=["schema-0.0.1", "schema-1.0.0"])
def test_show_draws_a_map(path, tmp_path, capsys):
    out = tmp_path / "map.png"
    cli.main(["show", str(path), "--index", "0", "--out", str(out)])
    from PIL import Image

    img = Image.open(out)
    assert img.size[0] > 200 and img.size[1] > 200
    assert len(set(img.convert("RGB").getdata())) > 20  # rooms, walls, objects, labels


def test_show_bad_index_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["show", str(NEW), "--index", "5", "--out", str(tmp_path / "m.png")])
    assert err.value.code == 2
    assert "no house at this index" in capsys.readouterr().err
