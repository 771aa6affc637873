"""Visual randomisation (sim.appearance, Renderer.with_appearance): bounded colour, light and
noise changes that leave geometry, depth and ids alone, the identity that changes nothing,
and the same bytes from the same seed, on tiny frames of both fixture houses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from synthetic import box_object, two_room_house

from common.errors import InputError
from sim.appearance import (
    BRIGHTNESS_MAX,
    LIGHT_TURN_MAX,
    NOISE_MAX,
    OBJECT_HUE_MAX,
    OBJECT_SATURATION_MAX,
    OBJECT_VALUE_MAX,
    SURFACE_HUE_MAX,
    SURFACE_SATURATION_MAX,
    SURFACE_VALUE_MAX,
    Appearance,
    AppearanceConfig,
    ColorShift,
    draw_appearance,
)
from sim.assets import asset_database
from sim.camera import CameraConfig
from sim.house import load_house
from sim.lattice import Lattice
from sim.render import Renderer
from sim.scene import build_scene, chromaticity

FIXTURES = Path(__file__).parent / "fixtures"
CAMERA = CameraConfig(height=48, width=80)  # pitched 30 degrees down, as datasets render
FULL = AppearanceConfig.uniform(1.0)
NO_NOISE = AppearanceConfig(object_colors=1.0, surface_colors=1.0, lighting=1.0)
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module", params=["143.json", "house_3703.json"])
def house(request):
    """(Renderer, three reachable poses) of a fixture house."""
    scene = build_scene(load_house(FIXTURES / request.param).house)
    lattice = Lattice(scene)
    states = lattice.reachable_states()
    poses = []
    for k in (0, len(states) // 3, 2 * len(states) // 3):
        i, j, h = states[k]
        poses.append((*lattice.position(i, j), lattice.yaw(h)))
    return Renderer(scene, CAMERA), poses


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("field", ["object_colors", "surface_colors", "lighting", "noise"])
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), True, "0.5", None],
                         ids=repr)
def test_config_refuses_a_bad_value_naming_the_field(field, bad):
    with pytest.raises(InputError, match=rf"appearance\.{field}: .* not a number in \[0, 1\]"):
        AppearanceConfig(**{field: bad})


def test_config_accepts_fractions_and_says_whether_anything_changes():
    assert not AppearanceConfig().enabled
    assert AppearanceConfig(noise=np.float32(0.5)).enabled
    assert AppearanceConfig.uniform(0.25) == AppearanceConfig(0.25, 0.25, 0.25, 0.25)
    with pytest.raises(InputError, match="key"):
        Appearance.from_key(FULL, -1)


# --------------------------------------------------------------------------- rendering


def test_the_zero_config_renders_todays_bytes(house):
    renderer, poses = house
    for view in (renderer.with_appearance(Appearance.identity()),
                 renderer.with_appearance(draw_appearance(AppearanceConfig(), 7))):
        for t, pose in enumerate(poses):
            plain, frame = renderer.render(*pose), view.render(*pose, frame=t)
            assert plain.rgb.tobytes() == frame.rgb.tobytes()
            assert plain.rgb.tobytes() == view.render_rgb(*pose).tobytes()
            assert np.array_equal(plain.depth, frame.depth)
            assert np.array_equal(plain.ids, frame.ids)


@pytest.mark.parametrize("seed", SEEDS)
def test_an_appearance_changes_rgb_but_not_depth_or_ids(house, seed):
    renderer, poses = house
    view = renderer.with_appearance(draw_appearance(FULL, seed))
    for t, pose in enumerate(poses):
        plain, frame = renderer.render(*pose), view.render(*pose, frame=t)
        assert np.array_equal(plain.ids, frame.ids)
        assert np.array_equal(plain.depth, frame.depth)  # bit for bit (float32)
        assert np.array_equal(view.render_ids(*pose), plain.ids)
        assert np.array_equal(view.render_counts(*pose), renderer.render_counts(*pose))
        assert frame.rgb.shape == plain.rgb.shape and frame.rgb.dtype == np.uint8
        assert (frame.rgb != plain.rgb).any(axis=-1).mean() > 0.5
        assert np.array_equal(view.render_rgb(*pose, frame=t), frame.rgb)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_same_seed_gives_the_same_bytes(house, seed):
    renderer, poses = house
    a = renderer.with_appearance(draw_appearance(FULL, seed))
    b = renderer.with_appearance(draw_appearance(FULL, np.random.default_rng(seed)))
    other = renderer.with_appearance(draw_appearance(FULL, seed + 100))
    for t, pose in enumerate(poses):
        rgb = a.render_rgb(*pose, frame=t)
        assert rgb.tobytes() == b.render_rgb(*pose, frame=t).tobytes()
        assert rgb.tobytes() == a.render_rgb(*pose, frame=t).tobytes()  # no state kept
        assert rgb.tobytes() != other.render_rgb(*pose, frame=t).tobytes()
        assert rgb.tobytes() != a.render_rgb(*pose, frame=t + 1).tobytes()  # noise per frame


def test_noise_is_bounded_and_the_only_per_frame_change(house):
    renderer, poses = house
    appearance = draw_appearance(FULL, 3)
    quiet = renderer.with_appearance(Appearance.from_key(NO_NOISE, appearance.key))
    noisy = renderer.with_appearance(appearance)
    assert appearance.noise == NOISE_MAX
    diffs = np.concatenate([
        noisy.render_rgb(*pose, frame=t).astype(int) - quiet.render_rgb(*pose).astype(int)
        for t, pose in enumerate(poses)]).ravel()
    assert diffs.min() == -NOISE_MAX and diffs.max() == NOISE_MAX
    assert abs(diffs.mean()) < 0.5  # zero-mean but for saturation at 0 and 255
    with pytest.raises(ValueError, match="frame="):
        noisy.render_rgb(*poses[0])
    quiet.render(*poses[0])  # without noise no frame index is needed


def test_a_view_of_a_view_does_not_compound(house):
    renderer, poses = house
    a, b = draw_appearance(FULL, 1), draw_appearance(FULL, 2)
    twice, once = renderer.with_appearance(a).with_appearance(b), renderer.with_appearance(b)
    assert np.array_equal(twice.render_rgb(*poses[0], frame=0),
                          once.render_rgb(*poses[0], frame=0))
    assert renderer.appearance is None  # the renderer itself is left as it was


# --------------------------------------------------------------------------- bounds


def test_drawn_values_stay_within_their_bounds():
    hue, sat, val = [], [], []
    turns, gains = [], []
    for seed in range(200):
        a = draw_appearance(FULL, seed)
        for shift in (a.walls, a.floors, a.ceiling):
            assert abs(shift.hue) <= math.radians(SURFACE_HUE_MAX)
            assert abs(shift.saturation - 1) <= SURFACE_SATURATION_MAX
            assert abs(shift.value - 1) <= SURFACE_VALUE_MAX
        for t in ("Fridge", "Mug", "<window>"):
            s = a.object_shift(t)
            hue.append(s.hue), sat.append(s.saturation), val.append(s.value)
        turns.append(a.light_turn), gains.append(a.brightness)
    assert np.abs(hue).max() <= math.radians(OBJECT_HUE_MAX)
    assert np.abs(np.subtract(sat, 1)).max() <= OBJECT_SATURATION_MAX
    assert np.abs(np.subtract(val, 1)).max() <= OBJECT_VALUE_MAX
    assert np.abs(turns).max() <= math.radians(LIGHT_TURN_MAX)
    assert np.abs(np.subtract(gains, 1)).max() <= BRIGHTNESS_MAX
    # the draws use their ranges (uniform), not one corner of them
    assert np.abs(hue).max() > 0.8 * math.radians(OBJECT_HUE_MAX)
    assert np.abs(np.subtract(gains, 1)).max() > 0.8 * BRIGHTNESS_MAX
    half = draw_appearance(AppearanceConfig.uniform(0.5), 0)
    assert abs(half.brightness - 1) <= BRIGHTNESS_MAX / 2 and half.noise == NOISE_MAX // 2


def test_each_part_draws_from_its_own_stream():
    key = draw_appearance(FULL, 4).key
    full, colours_only = Appearance.from_key(FULL, key), Appearance.from_key(
        AppearanceConfig(object_colors=1.0, surface_colors=1.0), key)
    assert (full.walls, full.floors, full.ceiling) == (colours_only.walls, colours_only.floors,
                                                       colours_only.ceiling)
    assert full.object_shift("Fridge") == colours_only.object_shift("Fridge")
    assert colours_only.light_turn == 0 and colours_only.brightness == 1
    assert colours_only.noise == 0


def test_a_shift_keeps_greys_grey_and_colours_in_range():
    rng = np.random.default_rng(0)
    colours = np.concatenate([rng.integers(0, 256, (500, 3)), np.eye(3) * 255,
                              [[0, 0, 0], [255, 255, 255]]])
    for shift in (ColorShift(0.5, 1.3, 1.2), ColorShift(-0.5, 0.7, 0.8)):
        out = shift.apply(colours)
        assert out.min() >= 0 and out.max() <= 255
        grey = shift.apply([[100, 100, 100]])[0]
        assert np.allclose(grey, 100 * shift.value)
    assert np.array_equal(ColorShift().apply(colours), colours)


@pytest.mark.parametrize("seed", SEEDS)
def test_tables_stay_in_range_and_a_type_shares_one_shift(house, seed):
    renderer, _ = house
    appearance = draw_appearance(FULL, seed)
    view, boxes = renderer.with_appearance(appearance), renderer.scene.boxes
    colours = view.tables.bcolor
    assert colours.min() >= 0 and colours.max() <= 255
    assert view.tables.floor_colors.min() >= 0 and view.tables.floor_colors.max() <= 255
    for object_type in set(boxes.object_type):
        rows = [k for k, t in enumerate(boxes.object_type) if t == object_type]
        expected = appearance.object_shift(object_type).apply(boxes.color[rows])
        assert np.allclose(colours[rows], expected, atol=1e-9)
        by_asset = {}
        for k in rows:  # instances of one asset share one colour exactly
            same = by_asset.setdefault(boxes.asset_id[k], colours[k])
            assert np.array_equal(same, colours[k])
    # geometry tables are shared, not copied
    assert view.tables.wa is renderer.tables.wa and view.raster is renderer.raster


def test_two_instances_of_a_type_share_one_colour_in_a_frame():
    fridge = asset_database()["Fridge_1"]
    objects = [box_object("Fridge_1", x, 3.2, fridge.size[1] / 2, oid=f"fridge{k}")
               for k, x in enumerate((1.2, 2.8))]
    scene = build_scene(two_room_house(door=None, objects=objects))
    renderer = Renderer(scene, CameraConfig(height=60, width=96))
    appearance = draw_appearance(AppearanceConfig(object_colors=1.0), 8)  # a clear shift
    frame = renderer.with_appearance(appearance).render(2.0, 0.6, 0.0)
    plain = renderer.render(2.0, 0.6, 0.0)
    target = chromaticity(appearance.object_shift("Fridge").apply(scene.boxes.color[0]))
    for ident in (1, 2):
        pixels = frame.ids == ident
        assert pixels.sum() > 50
        # shading scales a colour, so each pixel keeps its instance colour's chromaticity
        seen = np.median(chromaticity(frame.rgb[pixels]), axis=0)
        assert np.abs(seen - target).max() < 0.01
        before = np.median(chromaticity(plain.rgb[pixels]), axis=0)
        assert np.abs(seen - before).max() > 0.03  # and the type's colour did change
