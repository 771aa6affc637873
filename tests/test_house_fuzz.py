"""Seeded fuzzing of the house loader: what ``spoc-houses validate`` does to a house file
(read, check, upgrade, build the scene and the lattice) either succeeds or refuses the house
with one ``HouseError`` line, never anything else, within a time bound and bounded memory.

Mutated houses are derived from the two fixtures (``143.json``: schema 0.0.1;
``house_3703.json``: schema 1.0.0) and written as ``.json``, ``.jsonl`` and ``.jsonl.gz``.
Each mutation kind says what must happen: ``refused`` (clearly invalid by construction),
``accepted`` (a valid house in another form) or ``either``. Corrupt files of every supported
extension must be refused too.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
import signal
import time
import tracemalloc
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from datagen.houses import cli
from datagen.houses.cli import validate_file
from sim.house import read_house
from sim.house_check import MAX_HOUSE_SIDE, HouseError
from sim.lattice import MAX_LATTICE_CELLS, AgentConfig

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES = {"0.0.1": FIXTURES / "143.json", "1.0.0": FIXTURES / "house_3703.json"}
AGENT = AgentConfig(grid=0.5)  # coarse: the checks are under test, not the lattice's detail
SEEDS_PER_KIND = 8
"""Mutated houses per (mutation kind, fixture)."""
HOUSES_PER_FILE = 8
"""Houses per .jsonl / .jsonl.gz file (a .json file holds one)."""
FILE_TIME_LIMIT = 30
"""Seconds one file may take to validate: a hang fails the test instead of blocking it."""
PEAK_MEMORY = 200 * 2**20
"""Bytes of traced allocations the largest houses and grids may take."""


# --------------------------------------------------------------------------- house parts


def _objects(house: dict) -> list[dict]:
    """Every object dict, children included, in file order."""
    out, stack = [], list(reversed(house.get("objects", [])))
    while stack:
        o = stack.pop()
        out.append(o)
        stack.extend(reversed(o.get("children") or []))
    return out


def _holes(house: dict) -> list[dict]:
    return house.get("doors", []) + house.get("windows", [])


def _world_points(house: dict) -> list[dict]:
    """Floor, wall and object points in world coordinates."""
    return ([p for r in house["rooms"] for p in r["floorPolygon"]]
            + [p for w in house["walls"] for p in w["polygon"]]
            + [o["position"] for o in _objects(house)])


def _number_fields(house: dict) -> list[tuple[dict, str]]:
    """(container, key) of every number the checks read."""
    out = [(p, k) for p in _world_points(house) for k in "xyz"]
    out += [(o["rotation"], k) for o in _objects(house) for k in "xyz"]
    for d in _holes(house):
        if "holePolygon" in d:
            out += [(p, k) for p in d["holePolygon"] for k in "xyz"]
        else:
            out += [(d["boundingBox"][c], k) for c in ("min", "max") for k in "xy"]
        if "openness" in d:
            out.append((d, "openness"))
    out += [(m["color"], k) for m in _materials(house) if isinstance(m.get("color"), dict)
            for k in m["color"]]
    return out


def _materials(house: dict) -> list[dict]:
    found = [r.get("floorMaterial") for r in house["rooms"]]
    found += [w.get("material") for w in house["walls"]]
    found.append(house.get("proceduralParameters", {}).get("ceilingMaterial"))
    return [m for m in found if isinstance(m, dict)]


def _typed_fields(house: dict) -> dict[str, list[tuple[dict, str]]]:
    """(container, key) of the fields the checks read, by the JSON type they must have."""
    objs, holes = _objects(house), _holes(house)
    strings = [(r, k) for r in house["rooms"] for k in ("id", "roomType")]
    strings += [(w, k) for w in house["walls"] for k in ("id", "roomId") if k in w]
    strings += [(d, k) for d in holes for k in ("id", "assetId", "wall0", "wall1")]
    strings += [(o, k) for o in objs for k in ("id", "assetId")]
    lists = [(house, k) for k in ("rooms", "walls", "objects", "doors", "windows")]
    lists += [(r, "floorPolygon") for r in house["rooms"]]
    lists += [(w, "polygon") for w in house["walls"]]
    lists += [(d, "holePolygon") for d in holes if "holePolygon" in d]
    lists += [(o, "children") for o in objs if o.get("children")]
    objects = [(house, k) for k in ("metadata", "proceduralParameters")]
    objects += [(o, k) for o in objs for k in ("position", "rotation")]
    objects += [(d, "boundingBox") for d in holes if "boundingBox" in d]
    objects += [(r["floorPolygon"], i) for r in house["rooms"]
                for i in range(len(r["floorPolygon"]))]
    materials = [(w, "material") for w in house["walls"] if "material" in w]
    return {"number": _number_fields(house), "string": strings, "list": lists,
            "object": objects, "material": materials}


WRONG = {
    "number": [True, False, None, "1.5", "0", [], {}, [1.0]],
    "string": [True, 3, 2.5, [], {}, ["room|2"]],
    "list": [True, "abc", 3, {}, {"x": 1}],
    "object": [True, None, "abc", 3, [], [1, 2, 3]],
    "material": [True, 3, [], ["Wood"]],
}
"""Values of the wrong JSON type for each kind of field (no null where null means absent:
a wall's ``roomId``, an object's ``children``)."""


# --------------------------------------------------------------------------- mutations


def _pick(rng: random.Random, items: list):
    return items[rng.randrange(len(items))]


def _drop_required(h: dict, rng: random.Random) -> None:
    holes = _holes(h)
    choices = [(h, k) for k in ("rooms", "walls", "objects")]
    choices += [(r, k) for r in h["rooms"] for k in ("id", "roomType", "floorPolygon")]
    choices += [(w, k) for w in h["walls"] for k in ("id", "polygon")]
    choices += [(d, k) for d in holes for k in ("id", "assetId", "wall0", "wall1")]
    choices += [(d, "holePolygon" if "holePolygon" in d else "boundingBox") for d in holes]
    choices += [(o, k) for o in _objects(h) for k in ("id", "assetId", "position", "rotation")]
    choices += [(p, k) for p in _world_points(h) for k in "xyz"]
    container, key = _pick(rng, choices)
    del container[key]


def _wrong_type(h: dict, rng: random.Random) -> None:
    fields = _typed_fields(h)
    kind = _pick(rng, sorted(k for k, v in fields.items() if v))
    container, key = _pick(rng, fields[kind])
    container[key] = copy.deepcopy(_pick(rng, WRONG[kind]))


def _set_number(values: list) -> Callable:
    def mutate(h: dict, rng: random.Random) -> None:
        container, key = _pick(rng, _number_fields(h))
        container[key] = _pick(rng, values)
    return mutate


def _far_object(h: dict, rng: random.Random) -> None:
    p = _pick(rng, _objects(h))["position"]
    p[_pick(rng, "xz")] += _pick(rng, [-1, 1]) * rng.uniform(60, 900)


def _far_wall(h: dict, rng: random.Random) -> None:
    axis, shift = _pick(rng, "xz"), rng.uniform(60, 900)
    for p in _pick(rng, h["walls"])["polygon"]:
        p[axis] += shift


def _move_room(h: dict, rng: random.Random) -> None:
    shift = _pick(rng, [1e6, -1e6, 2 * MAX_HOUSE_SIDE, 900.0])
    for p in _pick(rng, h["rooms"])["floorPolygon"]:
        p[_pick(rng, "xz")] += shift


def _huge_floor(h: dict, rng: random.Random) -> None:
    side = _pick(rng, [1.5 * MAX_HOUSE_SIDE, 2000.0, 10_000.0])
    h["rooms"][rng.randrange(len(h["rooms"]))]["floorPolygon"] = [
        {"x": x, "y": 0, "z": z} for x, z in ((0, 0), (0, side), (side, side), (side, 0))]


def _wall_below_floor(h: dict, rng: random.Random) -> None:
    wall = _pick(rng, h["walls"])
    bottom = min(p["y"] for p in wall["polygon"])
    for p in wall["polygon"]:
        p["y"] = -0.9 if p["y"] == bottom else -0.1


def _bent_wall(h: dict, rng: random.Random) -> None:
    """One corner of a wall moved across its base line (a wall is a vertical rectangle)."""
    wall = _pick(rng, h["walls"])
    (ax, az), (bx, bz) = ((p["x"], p["z"]) for p in wall["polygon"][:2])
    length = ((bx - ax) ** 2 + (bz - az) ** 2) ** 0.5
    p, shift = wall["polygon"][rng.randrange(1, 4)], rng.uniform(0.1, 0.5)
    p["x"] += shift * (az - bz) / length
    p["z"] += shift * (bx - ax) / length


def _out_of_range(h: dict, rng: random.Random) -> None:
    choices = [(d, "openness", v) for d in _holes(h) for v in (1.5, -0.25)]
    choices += [(m["color"], "r", v) for m in _materials(h) if isinstance(m.get("color"), dict)
                for v in (2.0, -1.0, 255)]
    choices += [(o["position"], "y", 50.0) for o in _objects(h)]
    choices += [(o["rotation"], "y", 1e5) for o in _objects(h)]
    container, key, value = _pick(rng, choices)
    container[key] = value


def _broken_ref(h: dict, rng: random.Random) -> None:
    holes = _holes(h)
    choices = [(d, k, "wall|nowhere") for d in holes for k in ("wall0", "wall1")]
    choices += [(d, k, "room|nowhere") for d in holes for k in ("room0", "room1") if k in d]
    choices += [(w, "roomId", "room|nowhere") for w in h["walls"] if "roomId" in w]
    choices += [(o, "assetId", "NoSuchAsset_1") for o in _objects(h) + holes]
    container, key, value = _pick(rng, choices)
    container[key] = value


def _remove_referenced(h: dict, rng: random.Random) -> None:
    if rng.random() < 0.5:
        gone = _pick(rng, _holes(h))[_pick(rng, ["wall0", "wall1"])]
        h["walls"] = [w for w in h["walls"] if w["id"] != gone]
    else:
        gone = _pick(rng, sorted({w["roomId"] for w in h["walls"]} & {r["id"] for r in h["rooms"]}))
        h["rooms"] = [r for r in h["rooms"] if r["id"] != gone]


def _duplicate(h: dict, rng: random.Random) -> None:
    key = _pick(rng, ["rooms", "walls", "doors", "objects", "child", "renamed-room"])
    if key == "child":
        parent = _pick(rng, [o for o in _objects(h) if o.get("children")])
        _pick(rng, parent["children"])["id"] = parent["id"]
    elif key == "renamed-room":  # the same floor under a new id
        room = copy.deepcopy(_pick(rng, h["rooms"]))
        room["id"] = "room|copy"
        h["rooms"].append(room)
    else:
        h[key].append(copy.deepcopy(_pick(rng, h[key])))


def _not_an_object(h: dict, rng: random.Random) -> None:
    h[_pick(rng, ["metadata", "proceduralParameters"])] = _pick(rng, [[], "x", 3, True, [{}]])


def _deep_nesting(h: dict, rng: random.Random) -> None:
    h["layer"] = _Nested(_pick(rng, [5_000, 100_000]))


class _Nested:
    """A placeholder that serialises as ``depth`` nested lists (json cannot build it)."""

    def __init__(self, depth: int):
        self.depth = depth


def _drop_optional(h: dict, rng: random.Random) -> None:
    choices = [(h, k) for k in ("doors", "windows", "proceduralParameters") if k in h]
    choices += [(w, k) for w in h["walls"] for k in ("material", "roomId", "empty") if k in w]
    choices += [(d, k) for d in _holes(h) for k in ("openness", "room0", "room1",
                                                      "assetPosition", "assetOffset") if k in d]
    choices += [(o, k) for o in _objects(h) for k in ("children", "layer", "kinematic")
                if k in o]
    container, key = _pick(rng, choices)
    del container[key]


def _jitter(h: dict, rng: random.Random) -> None:
    container, key = _pick(rng, [(p, k) for p in _world_points(h) for k in "xz"])
    container[key] += rng.uniform(-0.05, 0.05)


def _shift_house(h: dict, rng: random.Random) -> None:
    dx, dz = rng.uniform(-400, 400), rng.uniform(-400, 400)
    for p in _world_points(h):
        p["x"] += dx
        p["z"] += dz


def _reorder(h: dict, rng: random.Random) -> None:
    for key in ("rooms", "walls", "objects"):
        rng.shuffle(h[key])


def _plain_forms(h: dict, rng: random.Random) -> None:
    """Null children, string materials and no metadata: forms the schema allows."""
    for o in _objects(h):
        if not o.get("children") and rng.random() < 0.5:
            o["children"] = None
    for w in h["walls"]:
        if isinstance(w.get("material"), dict) and rng.random() < 0.5:
            w["material"] = w["material"]["name"]
    if rng.random() < 0.5:
        h["metadata"].pop("houseId", None)


@dataclass(frozen=True)
class Kind:
    name: str
    expect: str  # "refused", "accepted" or "either"
    mutate: Callable[[dict, random.Random], None]


KINDS = [
    Kind("drop-required", "refused", _drop_required),
    Kind("wrong-type", "refused", _wrong_type),
    Kind("non-finite", "refused", _set_number([float("nan"), float("inf"), float("-inf")])),
    Kind("huge-number", "refused", _set_number([1e308, -1e308, 10**400, -(10**400), 1e9,
                                                1e5])),
    Kind("far-object", "refused", _far_object),
    Kind("far-wall", "refused", _far_wall),
    Kind("moved-room", "refused", _move_room),
    Kind("huge-floor", "refused", _huge_floor),
    Kind("wall-below-floor", "refused", _wall_below_floor),
    Kind("bent-wall", "refused", _bent_wall),
    Kind("out-of-range", "refused", _out_of_range),
    Kind("broken-reference", "refused", _broken_ref),
    Kind("removed-referenced", "refused", _remove_referenced),
    Kind("duplicate", "refused", _duplicate),
    Kind("not-an-object", "refused", _not_an_object),
    Kind("deep-nesting", "refused", _deep_nesting),
    Kind("no-rooms", "refused", lambda h, rng: h.update(rooms=[])),
    Kind("drop-optional", "either", _drop_optional),
    Kind("jitter", "either", _jitter),
    Kind("shift-house", "accepted", _shift_house),
    Kind("reorder", "accepted", _reorder),
    Kind("plain-forms", "accepted", _plain_forms),
    Kind("unchanged", "accepted", lambda h, rng: None),
]


# --------------------------------------------------------------------------- files


def _dumps(house: dict) -> str:
    """One line of JSON; NaN and Infinity as Python writes them, deep nesting spelled out."""
    nested = house.pop("layer", None)
    text = json.dumps(house)
    if isinstance(nested, _Nested):
        text = text[:-1] + ', "layer": ' + "[" * nested.depth + "]" * nested.depth + "}"
    return text


@dataclass(frozen=True)
class Case:
    kind: str
    expect: str
    schema: str
    seed: int

    def __str__(self) -> str:
        return f"{self.kind} (schema {self.schema}, seed {self.seed})"


def mutated_cases() -> list[tuple[Case, str]]:
    """(case, house JSON line) for every kind, fixture and seed."""
    raws = {schema: json.loads(path.read_text()) for schema, path in SOURCES.items()}
    out = []
    for kind in KINDS:
        for schema, raw in raws.items():
            for seed in range(SEEDS_PER_KIND):
                house = copy.deepcopy(raw)
                kind.mutate(house, random.Random(f"{kind.name}/{schema}/{seed}"))
                out.append((Case(kind.name, kind.expect, schema, seed), _dumps(house)))
    return out


def write_files(cases: list[tuple[Case, str]], root: Path) -> dict[tuple[str, int], Case]:
    """Spread the houses over .json files (one each), .jsonl and .jsonl.gz files; returns
    (file, line index) -> case."""
    where, batches = {}, {".jsonl": [], ".jsonl.gz": []}
    for n, (case, line) in enumerate(cases):
        suffix = (".json", ".jsonl", ".jsonl.gz")[n % 3]
        if suffix == ".json":
            path = root / f"house-{n:04d}.json"
            path.write_text(line)
            where[(str(path), 0)] = case
        else:
            batches[suffix].append((case, line))
    for suffix, items in batches.items():
        for b in range(0, len(items), HOUSES_PER_FILE):
            path = root / f"batch-{b // HOUSES_PER_FILE:03d}{suffix}"
            chunk = items[b:b + HOUSES_PER_FILE]
            text = "".join(line + "\n" for _, line in chunk)
            _write(path, text.encode())
            where.update({(str(path), i): case for i, (case, _) in enumerate(chunk)})
    return where


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


@contextmanager
def time_limit(seconds: int, what: str):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""
    def expire(signum, frame):
        raise TimeoutError(f"{what} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def rows_of(path: Path) -> list[dict]:
    """validate's rows of one file, within the time limit."""
    with time_limit(FILE_TIME_LIMIT, str(path)):
        return list(validate_file(path, AGENT))


def _assert_one_line(row: dict, path: Path) -> None:
    error = row["error"]
    assert "\n" not in error and str(path) in error and "field '" in error, error
    if row["index"] is not None:
        assert f"house {row['index']}:" in error, error


# --------------------------------------------------------------------------- tests


def test_at_least_300_mutated_houses_cover_every_kind():
    cases = mutated_cases()
    assert len(cases) >= 300
    assert {c.kind for c, _ in cases} == {k.name for k in KINDS}
    assert len({line for _, line in cases}) > 0.8 * len(cases)  # mostly distinct


def test_mutated_houses_are_refused_in_one_line_or_load(tmp_path):
    where = write_files(mutated_cases(), tmp_path)
    seen, wrong = set(), []
    for path in sorted({Path(p) for p, _ in where}):
        for row in rows_of(path):
            case = where[(str(path), row["index"])]
            seen.add((str(path), row["index"]))
            refused = "rooms" not in row
            if refused:
                _assert_one_line(row, path)
            if (case.expect == "refused") != refused and case.expect != "either":
                wrong.append(f"{case}: {row.get('error', 'accepted')}")
    assert not wrong, "\n".join(wrong)
    assert seen == set(where)  # every house of every file got its row


CORRUPT = {
    "empty": b"",
    "blank": b"\n  \n",
    "random-bytes": random.Random(0).randbytes(2000),
    "bad-utf8": b'{"rooms": "\xff\xfe"}\n',
    "not-an-object": b"[1, 2, 3]\n",
    "null": b"null\n",
    "truncated": None,  # the first half of a valid house
    "nan-literal": b'{"rooms": [{"id": NaN}]}\n',
    "400-digit-integer": b'{"rooms": [], "x": ' + b"9" * 400 + b"}\n",
    "5000-digit-integer": b'{"rooms": [], "x": ' + b"9" * 5000 + b"}\n",
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000 + b"\n",
}


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_files_are_refused_in_one_line(name, suffix, tmp_path):
    data = CORRUPT[name]
    if data is None:
        text = json.dumps(json.loads(SOURCES["1.0.0"].read_text()))
        data = text[:len(text) // 2].encode() + b"\n"
    path = tmp_path / f"house{suffix}"
    _write(path, data)
    rows = rows_of(path)
    assert rows and all(not r["valid"] and "rooms" not in r for r in rows)
    for row in rows:
        _assert_one_line(row, path)


@pytest.mark.parametrize("damage", ["flipped-bytes", "truncated", "plain-text", "gz-of-gz"])
def test_corrupt_gzip_is_refused_in_one_line(damage, tmp_path):
    line = json.dumps(json.loads(SOURCES["1.0.0"].read_text())) + "\n"
    packed = gzip.compress((line * 3).encode(), mtime=0)
    data = {"flipped-bytes": packed[:200] + bytes(b ^ 0x5A for b in packed[200:400])
            + packed[400:],
            "truncated": packed[:len(packed) // 2],
            "plain-text": line.encode(),
            "gz-of-gz": gzip.compress(packed, mtime=0)}[damage]
    path = tmp_path / "houses.jsonl.gz"
    path.write_bytes(data)
    rows = rows_of(path)
    assert rows and not rows[-1]["valid"] and "rooms" not in rows[-1]
    _assert_one_line(rows[-1], path)


def _square_house(side: float) -> dict:
    """One square room of ``side`` metres with its four walls and nothing else."""
    corners = [(0.0, 0.0), (0.0, side), (side, side), (side, 0.0)]
    walls = [{"id": f"wall|{k}", "roomId": "room|1",
              "polygon": [{"x": x, "y": y, "z": z} for y in (0.0, 2.5) for x, z in (a, b)]}
             for k, (a, b) in enumerate(zip(corners, corners[1:] + corners[:1]))]
    return {"rooms": [{"id": "room|1", "roomType": "Kitchen", "floorPolygon": [
        {"x": x, "y": 0, "z": z} for x, z in corners]}], "walls": walls, "doors": [],
        "windows": [], "objects": [], "metadata": {"schema": "1.0.0"}}


@pytest.mark.parametrize("side, grid, refused", [
    (0.98 * MAX_HOUSE_SIDE, 0.25, False),  # the largest house at the default grid
    (2000.0, 0.25, True),
    (10_000.0, 0.25, True),
    (10.0, 0.001, True),  # a fine grid on a normal house
    (10.0, 1e-300, True),
], ids=["largest", "2km", "10km", "grid-1mm", "grid-tiny"])
def test_large_houses_and_fine_grids_use_bounded_memory(side, grid, refused, tmp_path):
    path = tmp_path / "house.json"
    path.write_text(json.dumps(_square_house(side)))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        rows = list(validate_file(path, AgentConfig(grid=grid)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_MEMORY and time.perf_counter() - start < FILE_TIME_LIMIT
    (row,) = rows
    assert ("rooms" not in row) == refused, row
    if refused:
        assert f"{MAX_HOUSE_SIDE:g} m" in row["error"] or f"{MAX_LATTICE_CELLS:,}" in \
            row["error"] or "outside the limits" in row["error"], row["error"]


def test_a_house_refused_in_memory_raises_only_house_error():
    raw = json.loads(SOURCES["0.0.1"].read_text())
    raw["doors"][0]["boundingBox"]["min"] = {"x": "0.5", "y": 0}
    with pytest.raises(HouseError, match=r"doors\[0\]\.boundingBox\.min\.x': expected a number"):
        read_house(raw)


def test_validate_reports_every_bad_house_of_every_file(tmp_path, capsys):
    cases = mutated_cases()
    bad = [line for case, line in cases if case.expect == "refused"][:5]
    good = [line for case, line in cases if case.kind == "unchanged"][:2]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([good[0], bad[0], bad[1], good[1]]) + "\n")
    single = tmp_path / "bad.json"
    single.write_text(bad[2])
    empty = tmp_path / "empty.jsonl.gz"
    _write(empty, b"")
    assert cli.main(["validate", "--grid", "0.5", str(mixed), str(single), str(empty)]) == 1
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(Path(r["file"]).name, r["index"], r["valid"]) for r in rows] == [
        ("mixed.jsonl", 0, True), ("mixed.jsonl", 1, False), ("mixed.jsonl", 2, False),
        ("mixed.jsonl", 3, True), ("bad.json", 0, False), ("empty.jsonl.gz", None, False)]
    assert len(err.splitlines()) == 4 and "no houses" in err.splitlines()[-1]


def _set(path: str, value):
    """A mutation setting the field at a dotted path ("walls.0.polygon.1.x") to ``value``."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def mutate(h: dict) -> None:
        for p in parents:
            h = h[p]
        h[last] = value
    return mutate


EXAMPLES = {  # the reported houses: (fixture schema, mutation, the field the line names)
    "openness-string": ("1.0.0", _set("doors.0.openness", "1"), "doors[0].openness"),
    "room-id-object": ("1.0.0", _set("walls.0.roomId", {"id": 1}), "walls[0].roomId"),
    "colour-string": ("1.0.0", _set("proceduralParameters.ceilingMaterial.color.g", "0.5"),
                      "ceilingMaterial.color.g"),
    "metadata-list": ("0.0.1", _set("metadata", [1]), "metadata"),
    "parameters-string": ("1.0.0", _set("proceduralParameters", "x"), "proceduralParameters"),
    "wall-numeric-string": ("1.0.0", _set("walls.0.polygon.1.x", "1.88"),
                            "walls[0].polygon[1].x"),
    "old-box-without-min": ("0.0.1", lambda h: h["doors"][0]["boundingBox"].pop("min"),
                            "doors[0].boundingBox.min"),
    "old-offset-string": ("0.0.1", _set("doors.1.assetOffset", "x"), "doors[1].assetOffset"),
    "old-window-string": ("0.0.1", _set("windows.0", "window"), "windows[0]"),
    "1e308": ("1.0.0", _set("rooms.0.floorPolygon.0.x", 1e308), "rooms[0].floorPolygon[0].x"),
    "400-digits": ("0.0.1", _set("walls.2.polygon.0.z", 10**400), "walls[2].polygon[0].z"),
    "wall-at-1e5": ("1.0.0", _set("walls.3.polygon.0.x", 1e5), "walls[3].polygon[0].x"),
    "wall-at-1e9": ("0.0.1", _set("walls.3.polygon.2.z", 1e9), "walls[3].polygon[2].z"),
    "wall-below-floor": ("1.0.0", lambda h: [p.update(y=p["y"] - 4.5) for p in
                                             h["walls"][1]["polygon"]], "walls[1].polygon"),
    "duplicate-wall-id": ("1.0.0", lambda h: h["walls"][5].update(id=h["walls"][4]["id"]),
                          "walls[5].id"),
    "duplicate-object-id": ("0.0.1", lambda h: h["objects"][3].update(id=h["objects"][2]["id"]),
                            "objects[3].id"),
    "duplicate-door-id": ("0.0.1", lambda h: h["doors"][1].update(id=h["doors"][0]["id"]),
                          "doors[1].id"),
    "duplicated-room": ("0.0.1", lambda h: h["rooms"].append(copy.deepcopy(h["rooms"][1])),
                        "rooms[4].id"),
    "boolean-floor": ("1.0.0", _set("rooms.1.floorPolygon.2.x", True),
                      "rooms[1].floorPolygon[2].x"),
    "string-object": ("0.0.1", _set("objects.4.position.z", "3.5"), "objects[4].position.z"),
    "door-on-missing-wall": ("1.0.0", lambda h: h.update(walls=[
        w for w in h["walls"] if w["id"] != h["doors"][0]["wall1"]]), "doors[0].wall1"),
    "floor-2km": ("1.0.0", _set("rooms.1.floorPolygon", [
        {"x": x, "y": 0, "z": z} for x, z in ((0, 0), (0, 2000), (2000, 2000), (2000, 0))]),
        "rooms[1].floorPolygon[1].z"),
    "floor-150m": ("0.0.1", _set("rooms.0.floorPolygon", [
        {"x": x, "y": 0, "z": z} for x, z in ((0, 0), (0, 150), (150, 150), (150, 0))]),
        "rooms"),
    "room-moved-1e6": ("0.0.1", lambda h: [p.update(x=p["x"] + 1e6) for p in
                                           h["rooms"][2]["floorPolygon"]],
                       "rooms[2].floorPolygon[0].x"),
    "object-at-z-1e9": ("1.0.0", _set("objects.5.position.z", 1e9), "objects[5].position.z"),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_reported_examples_are_one_line_from_validate(name, tmp_path, capsys):
    schema, mutate, field = EXAMPLES[name]
    house = json.loads(SOURCES[schema].read_text())
    mutate(house)
    path = tmp_path / "house.jsonl"
    path.write_text(_dumps(house) + "\n")
    assert cli.main(["validate", str(path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path} house 0: field '") and field in line.split("'")[1], line
