"""The compiled renderer: invariants on tiny hand-built houses, and agreement with the numpy
reference (a different algorithm) on the two real ProcTHOR fixture houses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from synthetic import box_object, two_room_house

from sim.assets import asset_database
from sim.camera import CameraConfig
from sim.house import load_house
from sim.lattice import Lattice
from sim.render import Renderer
from sim.render_ref import render_reference, world_rays
from sim.scene import build_scene

FIXTURES = Path(__file__).parent / "fixtures"
# Odd sizes put a pixel centre exactly on the optical axis.
LEVEL = CameraConfig(height=45, width=75, pitch=0.0)
PITCHED = CameraConfig(height=45, width=75, pitch=30.0)
CAMERAS = {"level": LEVEL, "pitched": PITCHED}


def centre(frame_array: np.ndarray):
    h, w = frame_array.shape[:2]
    return frame_array[h // 2, w // 2]


def on_floor(asset_id: str, x: float, z: float, yaw: float = 0.0) -> dict:
    """An object standing on the floor at (x, z)."""
    return box_object(asset_id, x, z, asset_database()[asset_id].size[1] / 2, yaw)


def render(house: dict, camera: CameraConfig, x: float, z: float, yaw: float):
    return Renderer(build_scene(house), camera).render(x, z, yaw)


@pytest.mark.parametrize("name", CAMERAS)
def test_depth_of_a_wall_straight_ahead(name):
    cam = CAMERAS[name]
    f = render(two_room_house(door=None), cam, 2.0, 2.0, 0.0)  # wall z = 4 is 2 m ahead
    expected = 2.0 / math.cos(math.radians(cam.pitch))  # along the (pitched) optical axis
    assert centre(f.depth) == pytest.approx(expected, abs=1e-4)
    assert centre(f.ids) == 0
    assert f.rgb.shape == (cam.height, cam.width, 3) and f.rgb.dtype == np.uint8
    assert f.depth.dtype == np.float32 and f.ids.dtype == np.int32


@pytest.mark.parametrize("name", CAMERAS)
def test_box_in_front_of_wall_occludes_it(name):
    cam = CAMERAS[name]
    fridge = asset_database()["Fridge_1"]
    house = two_room_house(door=None, objects=[on_floor("Fridge_1", 2.0, 3.0)])
    f = render(house, cam, 2.0, 1.0, 0.0)
    front = 3.0 - fridge.size[2] / 2 - 1.0  # horizontal distance to the fridge's front face
    assert centre(f.ids) == 1  # box row 0
    assert centre(f.depth) == pytest.approx(front / math.cos(math.radians(cam.pitch)), abs=1e-4)


def test_object_to_the_right_is_on_the_right_of_the_image():
    # At yaw 0 the agent faces +z and its right is +x; at yaw 90 it faces +x, right is -z.
    house = two_room_house(door=None, objects=[on_floor("Fridge_1", 3.3, 3.0)])
    ids = render(house, LEVEL, 2.0, 1.0, 0.0).ids
    cols = np.nonzero((ids == 1).any(axis=0))[0]
    assert len(cols) and cols.min() > LEVEL.width // 2
    house = two_room_house(door=None, objects=[on_floor("Fridge_1", 3.0, 1.5)])
    ids = render(house, LEVEL, 1.0, 3.0, 90.0).ids  # fridge 2 m ahead, 1.5 m towards -z
    cols = np.nonzero((ids == 1).any(axis=0))[0]
    assert len(cols) and cols.min() > LEVEL.width // 2


@pytest.mark.parametrize("name", CAMERAS)
def test_wall_visible_above_a_table(name):
    cam = CAMERAS[name]
    table = asset_database()["Dining_Table_16_1"]
    house = two_room_house(door=None, objects=[on_floor("Dining_Table_16_1", 2.0, 2.2)])
    f = render(house, cam, 2.0, 0.5, 0.0)
    col_ids, col_depth = f.ids[:, cam.width // 2], f.depth[:, cam.width // 2]
    table_rows = np.nonzero(col_ids == 1)[0]
    assert len(table_rows)
    above = np.arange(table_rows.min())  # image rows above the table top
    wall = above[np.isclose(col_depth[above] * np.cos(np.radians(cam.pitch)), 3.5, atol=0.6)]
    assert len(wall) and (col_ids[wall] == 0).all()
    # Depth of the table top or front is less than the distance to the wall.
    assert col_depth[table_rows].max() < 3.5 / math.cos(math.radians(cam.pitch))
    assert table.size[1] < cam.eye_height


def test_door_hole_shows_the_next_room_and_the_lintel_is_wall():
    house = two_room_house(door="Doorframe_1")
    house["rooms"][1]["floorMaterial"] = {"name": "Red", "color": {"r": 0.9, "g": 0.1,
                                                                    "b": 0.1}}
    house["rooms"][0]["floorMaterial"] = {"name": "Blue", "color": {"r": 0.1, "g": 0.1,
                                                                     "b": 0.9}}
    cam = CameraConfig(height=45, width=75, pitch=0.0)
    f = render(house, cam, 2.0, 2.0, 90.0)  # facing +x: the hole z in [1.5, 2.5] is ahead
    assert centre(f.depth) == pytest.approx(6.0, abs=1e-4)  # far wall of room 2 at x = 8
    # A pixel looking at height 2.3 m on the shared wall (between hole top 2.1 and 2.5).
    v = cam.height // 2 - int(round((2.3 - cam.eye_height) / 2.0 * cam.focal))
    assert f.depth[v, cam.width // 2] == pytest.approx(2.0, abs=1e-4)
    assert f.ids[v, cam.width // 2] == 0
    # Through the hole, pitched down: room 2's (red) floor beyond x = 4.
    cam = CameraConfig(height=91, width=151, pitch=30.0)
    f = render(house, cam, 2.0, 2.0, 90.0)
    d = world_rays(cam, 90.0)
    hit = np.array([2.0, cam.eye_height, 2.0]) + f.depth[..., None] * d
    floor = np.abs(hit[..., 1]) < 1e-3
    far = floor & (hit[..., 0] > 4.2)
    near = floor & (hit[..., 0] < 3.8)
    assert far.sum() > 20 and near.sum() > 20
    assert (f.rgb[far][:, 0] > f.rgb[far][:, 2]).all()  # red floor through the door
    assert (f.rgb[near][:, 2] > f.rgb[near][:, 0]).all()  # blue floor on this side
    closed = render(two_room_house(door=None), CameraConfig(height=45, width=75, pitch=0.0),
                    2.0, 2.0, 90.0)
    assert centre(closed.depth) == pytest.approx(2.0, abs=1e-4)


def test_object_types_look_different():
    def mean_colour(asset_id: str) -> np.ndarray:
        house = two_room_house(door=None, objects=[on_floor(asset_id, 2.0, 3.2)])
        f = render(house, CameraConfig(), 2.0, 1.0, 0.0)
        assert (f.ids == 1).sum() > 50
        return f.rgb[f.ids == 1].mean(axis=0)

    mug, vase = mean_colour("Mug_1"), mean_colour("Vase_Decorative_1")
    assert np.abs(mug - vase).max() > 25


def test_same_pose_same_bytes_and_frames_are_not_reused():
    house = two_room_house(objects=[on_floor("Fridge_1", 2.0, 3.0)])
    r = Renderer(build_scene(house), PITCHED)
    a = r.render(1.0, 1.0, 30.0)
    keep = (a.rgb.copy(), a.depth.copy(), a.ids.copy())
    b = r.render(3.0, 2.0, 200.0)
    again = r.render(1.0, 1.0, 30.0)
    for x, y, z in zip(keep, (a.rgb, a.depth, a.ids), (again.rgb, again.depth, again.ids)):
        assert x.tobytes() == y.tobytes() == z.tobytes()
    assert b.rgb.tobytes() != a.rgb.tobytes()


def test_extreme_pitch_is_refused_with_a_message():
    with pytest.raises(ValueError, match="pitch"):
        Renderer(build_scene(two_room_house()), CameraConfig(pitch=80.0))


def _poses(lattice: Lattice, n: int, seed: int):
    cells = np.argwhere(lattice.reachable)
    rng = np.random.default_rng(seed)
    for i, j in cells[rng.choice(len(cells), size=n, replace=False)]:
        x, z = lattice.position(i, j)
        yield x, z, float(rng.integers(0, 8) * 45 + rng.uniform(-10, 10))


@pytest.mark.parametrize("fixture", ["143.json", "house_3703.json"])
@pytest.mark.parametrize("name", ["level", "pitched"])
def test_compiled_matches_numpy_reference(fixture, name):
    cam = CameraConfig(pitch=0.0 if name == "level" else 30.0)
    scene = build_scene(load_house(FIXTURES / fixture).house)
    renderer = Renderer(scene, cam)
    for x, z, yaw in _poses(Lattice(scene), 4, seed=7):
        got, ref = renderer.render(x, z, yaw), render_reference(scene, cam, x, z, yaw)
        agree = (got.ids == ref.ids).mean()
        close = (np.abs(got.depth - ref.depth) <= 0.01 * ref.depth).mean()
        assert agree > (0.999 if name == "level" else 0.995), (x, z, yaw, agree)
        assert close > 0.995, (x, z, yaw, close)


@pytest.mark.parametrize("fixture", ["143.json", "house_3703.json"])
def test_no_pixel_sees_outside_a_closed_house(fixture):
    scene = build_scene(load_house(FIXTURES / fixture).house)
    xmin, zmin, xmax, zmax = scene.bounds
    tol = 0.05
    for cam in (LEVEL, PITCHED, CameraConfig()):
        renderer = Renderer(scene, cam)
        for x, z, yaw in _poses(Lattice(scene), 25, seed=1):
            f = renderer.render(x, z, yaw)
            hit = np.array([x, cam.eye_height, z]) + f.depth[..., None] * world_rays(cam, yaw)
            assert (hit[..., 0] > xmin - tol).all() and (hit[..., 0] < xmax + tol).all()
            assert (hit[..., 2] > zmin - tol).all() and (hit[..., 2] < zmax + tol).all()


@pytest.mark.parametrize("name", ["level", "pitched"])
def test_partial_modes_match_the_full_render(name):
    cam = CameraConfig(height=90, width=150, pitch=0.0 if name == "level" else 30.0)
    scene = build_scene(load_house(FIXTURES / "143.json").house)
    renderer = Renderer(scene, cam)
    for x, z, yaw in _poses(Lattice(scene), 6, seed=3):
        frame = renderer.render(x, z, yaw)
        rgb = renderer.render_rgb(x, z, yaw)
        assert rgb.dtype == np.uint8 and rgb.shape == frame.rgb.shape
        np.testing.assert_array_equal(rgb, frame.rgb)
        ids = frame.ids
        only = renderer.render_ids(x, z, yaw)
        assert only.dtype == np.int32 and only.shape == ids.shape
        np.testing.assert_array_equal(only, ids)
        np.testing.assert_array_equal(renderer.render_counts(x, z, yaw),
                                      np.bincount(ids.ravel(), minlength=len(scene.boxes) + 1))
