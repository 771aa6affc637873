"""House loading, schema upgrade, structural checks and the validate command."""

from __future__ import annotations

import copy
import gzip
import json
import pickle
import time
from pathlib import Path

import pytest

from datagen.houses import cli
from datagen.houses.validate import house_report
from sim.assets import asset_database
from sim.house import SCHEMA, load_house, load_houses, read_house, upgrade_house
from sim.house_check import HouseError, wall_geometry

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
                            "objects[1].position.x", "expected a number, got the string"),
    "numeric-string-wall": (lambda h: h["walls"][2]["polygon"][0].update(x="1.884"),
                            "walls[2].polygon[0].x", "got the string '1.884'"),
    "boolean-floor": (lambda h: h["rooms"][1]["floorPolygon"][0].update(z=True),
                      "rooms[1].floorPolygon[0].z", "got the boolean true"),
    "openness-string": (lambda h: h["doors"][0].update(openness="open"),
                        "doors[0].openness", "expected a number"),
    "openness-range": (lambda h: h["doors"][0].update(openness=1.5),
                       "doors[0].openness", "outside the limits [0, 1]"),
    "room-id-list": (lambda h: h["walls"][0].update(roomId=["room|2"]), "walls[0].roomId",
                     "expected a room id, got a list"),
    "colour-string": (lambda h: h["proceduralParameters"]["ceilingMaterial"].update(
        color={"r": "red", "g": 0, "b": 0}), "proceduralParameters.ceilingMaterial.color.r",
        "expected a number"),
    "metadata-list": (lambda h: h.update(metadata=[]), "metadata", "expected an object"),
    "parameters-string": (lambda h: h.update(proceduralParameters="x"), "proceduralParameters",
                          "expected an object"),
    "wall-far-away": (lambda h: [p.update(x=p["x"] + 1e5) for p in h["walls"][3]["polygon"]],
                      "walls[3].polygon[0].x", "outside the limits [-1000, 1000]"),
    "wall-below-floor": (lambda h: [p.update(y=p["y"] - 5) for p in h["walls"][3]["polygon"]],
                         "walls[3].polygon[0].y", "outside the limits [-1, 20]"),
    "duplicate-wall": (lambda h: h["walls"].append(copy.deepcopy(h["walls"][4])), "walls[18].id",
                       "is used twice"),
    "duplicate-object": (lambda h: h["objects"][2].update(id=h["objects"][0]["id"]),
                         "objects[2].id", "is used twice"),
    "duplicate-child": (lambda h: h["objects"][0]["children"][1].update(
        id=h["objects"][0]["children"][0]["id"]), "objects[0].children[1].id", "is used twice"),
    "duplicate-door": (lambda h: h["doors"].append(copy.deepcopy(h["doors"][0])), "doors[2].id",
                       "is used twice"),
    "duplicate-room": (lambda h: h["rooms"].append(copy.deepcopy(h["rooms"][0])), "rooms[2].id",
                       "is used twice"),
    "room-over-room": (lambda h: h["rooms"].append({**copy.deepcopy(h["rooms"][0]),
                                                     "id": "room|9"}),
                       "rooms[2].floorPolygon", "overlaps room 'room|2'"),
    "missing-exterior-wall": (lambda h: h.update(walls=[w for w in h["walls"] if w["id"] !=
                                                          h["doors"][1]["wall1"]]),
                              "doors[1].wall1", "does not exist"),
    "missing-wall-room": (lambda h: h["walls"][0].update(roomId="room|9"), "walls[0].roomId",
                          "does not exist"),
    "door-missing-room": (lambda h: h["doors"][0].update(room1="room|9"), "doors[0].room1",
                          "does not exist"),
    "huge-floor": (lambda h: h["rooms"][0].update(floorPolygon=[
        {"x": x, "y": 0, "z": z} for x, z in ((0, 0), (0, 900), (900, 900), (900, 0))]),
        "rooms", "more than the limit of 100 m a side"),
    "object-far-away": (lambda h: h["objects"][0]["position"].update(z=1e9),
                        "objects[0].position.z", "outside the limits"),
    "object-outside": (lambda h: h["objects"][0]["position"].update(z=80.0),
                       "objects[0].position", "outside the floors (the limit is 1 m)"),
    "huge-integer": (lambda h: h["objects"][0]["rotation"].update(y=10**400),
                     "objects[0].rotation.y", "an integer of 401 digits"),
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
    assert cli.main(["validate", str(OLD), str(NEW)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["schema"] for r in rows] == ["0.0.1", "1.0.0"]
    assert all(r["valid"] and r["connected"] for r in rows)
    assert all(r["reachable_cells"] > 0 for r in rows)


def test_validate_command_fails_on_bad_house(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_broken(lambda h: h["objects"][0].update(assetId="Nope"))))
    assert cli.main(["validate", str(NEW), str(bad)]) == 1
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
    assert cli.main(["show", str(NEW), "--index", "5", "--out", str(tmp_path / "m.png")]) == 2
    assert "no house at this index" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["validate", str(NEW), "--grid", "0"], "agent.grid/radius: 0.0/0.2 out of range"),
    (["validate", str(NEW), "--radius", "5"], "out of range"),
    (["show", str(NEW), "--out", "{tmp}"], "give the path of a .png file"),
    (["show", str(NEW), "--out", "{tmp}/file.png/map.png"], "cannot create its folder"),
    (["show", str(NEW), "--grid", "0.001", "--out", "{tmp}/m.png"],
     "more than the limit of 1,000,000; use a grid of at least 0.006 m"),
], ids=["grid-0", "radius-5", "out-is-folder", "out-under-file", "grid-too-fine"])
def test_bad_options_are_one_line_and_exit_2(args, message, tmp_path, capsys):
    (tmp_path / "file.png").write_bytes(b"")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("spoc-houses: ") and message in err


def test_validate_with_a_too_fine_grid_refuses_each_house_quickly(tmp_path, capsys):
    start = time.perf_counter()
    assert cli.main(["validate", str(OLD), str(NEW), "--grid", "0.001"]) == 1
    assert time.perf_counter() - start < 10
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["index"], r["valid"]) for r in rows] == [(0, False), (0, False)]
    assert all("field 'grid'" in r["error"] and "limit of 1,000,000" in r["error"]
               for r in rows)
    assert str(OLD) in rows[0]["error"] and "house 0" in rows[0]["error"]


OLD_BAD = {
    "box-without-min": (lambda h: h["doors"][0]["boundingBox"].pop("min"),
                        "doors[0].boundingBox.min", "missing"),
    "box-numeric-string": (lambda h: h["windows"][1]["boundingBox"]["max"].update(y="2.0"),
                           "windows[1].boundingBox.max.y", "got the string '2.0'"),
    "box-not-object": (lambda h: h["doors"][1].update(boundingBox=[0, 1]),
                       "doors[1].boundingBox", "expected an object"),
    "offset-null": (lambda h: h["doors"][0].update(assetOffset=None), "doors[0].assetOffset",
                    "expected an object, got null"),
    "room-not-object": (lambda h: h["rooms"].append("room|9"), "rooms[4]",
                        "expected an object"),
    "parameters-number": (lambda h: h.update(proceduralParameters=3), "proceduralParameters",
                          "expected an object, got 3"),
    "hole-outside-wall": (lambda h: h["doors"][0]["boundingBox"]["max"].update(x=40.0),
                          "doors[0].boundingBox", "outside its wall"),
    "material-number": (lambda h: h["walls"][0].update(material=7), "walls[0].material",
                        "expected a material"),
}


@pytest.mark.parametrize("case", sorted(OLD_BAD), ids=sorted(OLD_BAD))
def test_bad_schema_0_0_1_house_names_its_own_field(case):
    mutate, field, problem = OLD_BAD[case]
    house = raw(OLD)
    mutate(house)
    with pytest.raises(HouseError) as err:
        read_house(house, "old.json", 0)
    assert f"field '{field}'" in str(err.value) and problem in str(err.value)


@pytest.mark.parametrize("name", ["h.json", "h.jsonl", "h.jsonl.gz"])
def test_empty_house_file_is_an_error(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"\n\n") if name.endswith(".gz") else b" \n")
    with pytest.raises(HouseError, match="no houses"):
        list(load_houses(path))


def test_load_house_reads_only_the_house_asked_for(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text("{not json\n" + json.dumps(raw(NEW)) + "\n")
    assert load_house(path, 1).index == 1
    with pytest.raises(HouseError, match="malformed JSON"):
        load_house(path, 0)


def test_house_error_survives_a_process_boundary():
    err = HouseError("h.jsonl", 3, "rooms", "no rooms", "add one")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.field == "rooms" and again.index == 3
