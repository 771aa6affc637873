"""Top-down raster and matplotlib map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from synthetic import box_object, two_room_house

from sim.house import load_house
from sim.lattice import Lattice
from sim.scene import build_scene
from sim.topdown import (
    AGENT_COLOR,
    PATH_COLOR,
    WALL_COLOR,
    MapFrame,
    save_map,
    topdown_image,
)

FIXTURES = Path(__file__).parent / "fixtures"
PPM = 20.0


def _pixel(img: np.ndarray, scene, x: float, z: float) -> tuple[int, ...]:
    c, r = MapFrame(scene, PPM).to_px(np.array([x, z])).astype(int)
    return tuple(int(v) for v in img[r, c])


def test_raster_rooms_walls_door_hole_boxes_path_and_agent():
    house = two_room_house(objects=[box_object("Fridge_1", 6.0, 3.0, 0.985)])
    scene = build_scene(house)
    img = topdown_image(scene, path=[(1.0, 1.0), (1.0, 3.0)], pose=(2.0, 2.0, 90.0),
                        px_per_m=PPM)
    assert img.dtype == np.uint8 and img.ndim == 3
    assert _pixel(img, scene, 1.0, 3.7) == scene.rooms[0].floor_color
    assert _pixel(img, scene, 6.0, 1.0) == scene.rooms[1].floor_color
    assert _pixel(img, scene, 4.0, 0.7) == WALL_COLOR  # shared wall
    assert _pixel(img, scene, 4.0, 2.0) != WALL_COLOR  # the door hole stays open
    assert _pixel(img, scene, 6.0, 3.0) == tuple(scene.boxes.color[0])
    assert _pixel(img, scene, 1.0, 2.0) == PATH_COLOR
    assert _pixel(img, scene, 2.05, 2.0) == AGENT_COLOR


def test_raster_static_layer_is_cached(monkeypatch):
    import sim.topdown as topdown

    scene = build_scene(load_house(FIXTURES / "143.json").house)
    lattice = Lattice(scene)
    first = topdown_image(scene, lattice)
    calls = []
    real = topdown._draw_static
    monkeypatch.setattr(topdown, "_draw_static", lambda *a: calls.append(a) or real(*a))
    path = [lattice.position(i, j) for i, j in np.argwhere(lattice.reachable)[:50]]
    for k in range(10):
        img = topdown_image(scene, lattice, path=path, pose=(*path[k], 90.0 * k))
    assert calls == []  # a video frame draws only the path and the agent
    topdown_image(scene, lattice, px_per_m=17.0)  # another scale: a new static layer
    assert len(calls) == 1
    assert img.shape == first.shape
    assert not np.array_equal(img, first)  # drawn on a copy, the cache is untouched
    assert np.array_equal(topdown_image(scene, lattice), first)


def test_save_map_writes_png(tmp_path):
    rec = load_house(FIXTURES / "house_3703.json")
    scene = build_scene(rec.house, rec.house_id)
    out = save_map(scene, tmp_path / "map.png", lattice=Lattice(scene), pose=(3.5, 4.75, 90.0),
                   title="fixture")
    img = np.asarray(Image.open(out))
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert img[..., :3].std() > 10  # not blank
