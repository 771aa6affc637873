"""Target boxes (sim.detect): the simulator's, from instance-id images, and the colour
detector's, from the RGB frame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.detector import MIN_BRIGHTNESS, ColourDetector, l1_times_total
from sim.detect import BOX_FEATURES, target_box, target_table
from sim.scene import chromaticity
from training.detector.fit import RADII, fit_colour_detector, radius_counts


def test_target_table_marks_the_target_type_and_never_structure():
    types = ["Mug", "Table", "Mug", "Bed"]
    assert target_table(types, "Mug").tolist() == [False, True, False, True, False]
    assert not target_table(types, None).any()  # a RoomNav goal
    assert not target_table(types, "Apple").any()


def test_box_of_the_target_instance_with_the_most_pixels():
    ids = np.zeros((10, 20), np.int32)
    ids[2:4, 3:5] = 1  # a mug: 4 pixels
    ids[5:8, 10:16] = 3  # another mug: 18 pixels, the one boxed
    ids[0:10, 0:2] = 2  # a table, larger than both, not a target
    table = target_table(["Mug", "Table", "Mug"], "Mug")
    box = target_box(ids, table)
    assert box.dtype == np.float32 and box.shape == (BOX_FEATURES,)
    np.testing.assert_allclose(box, [1, 10 / 20, 5 / 10, 16 / 20, 8 / 10, np.sqrt(18 / 200)],
                               rtol=1e-6)
    ids[ids == 3] = 0  # only the small one left
    np.testing.assert_allclose(target_box(ids, table)[:5], [1, 3 / 20, 2 / 10, 5 / 20, 4 / 10])


def test_no_target_in_view_is_all_zeros():
    ids = np.zeros((6, 8), np.int32)
    ids[1:3, 1:3] = 2
    assert not target_box(ids, target_table(["Mug", "Table"], "Mug")).any()
    assert not target_box(ids, target_table(["Mug", "Table"], None)).any()
    assert target_box(ids, target_table(["Mug", "Table"], "Table"))[0] == 1


# --------------------------------------------------------------------------- colour detector


def painted(shape=(20, 30), regions=(), background=(40, 40, 40)) -> np.ndarray:
    """(H, W, 3) uint8 frame of ``background`` with (rows, cols, rgb) rectangles painted."""
    rgb = np.empty(shape + (3,), np.uint8)
    rgb[:] = background
    for rows, cols, colour in regions:
        rgb[rows, cols] = colour
    return rgb


RED, GREEN, ORANGE = (200, 40, 40), (40, 200, 40), (200, 60, 40)
DETECTOR = ColourDetector(centre={"Mug": tuple(chromaticity(RED)),
                                  "Bed": tuple(chromaticity(GREEN))},
                          radius={"Mug": 0.05, "Bed": 0.05}, min_pixels={"Mug": 3, "Bed": 3})


def test_detector_boxes_the_largest_region_of_the_targets_colour():
    rgb = painted(regions=[(slice(2, 4), slice(3, 5), RED),  # 4 px
                           (slice(10, 13), slice(20, 26), (100, 20, 20)),  # 18 px, in shade
                           (slice(0, 20), slice(0, 2), GREEN)])  # another type
    box = DETECTOR.box(rgb, "Mug")
    np.testing.assert_allclose(box, [1, 20 / 30, 10 / 20, 26 / 30, 13 / 20, np.sqrt(18 / 600)],
                               rtol=1e-6)
    assert DETECTOR.box(rgb, "Bed")[0] == 1
    assert not DETECTOR.box(rgb, None).any()  # a RoomNav goal
    assert not DETECTOR.box(rgb, "Apple").any()  # a type it has no colour for


def test_detector_ignores_specks_and_dark_pixels():
    speck = painted(regions=[(slice(2, 3), slice(3, 5), RED)])  # 2 px < min_pixels 3
    assert not DETECTOR.box(speck, "Mug").any()
    dark = painted(regions=[(slice(2, 6), slice(3, 8), (40, 8, 8))], background=(0, 0, 0))
    assert dark.sum(-1).max() < MIN_BRIGHTNESS and not DETECTOR.box(dark, "Mug").any()
    # diagonal neighbours are one region (8-connected)
    diagonal = painted(regions=[(slice(k, k + 1), slice(k, k + 1), RED) for k in range(4)])
    assert DETECTOR.box(diagonal, "Mug")[0] == 1


def test_fit_finds_each_types_colour_and_a_radius_that_rejects_the_others():
    """Frames with a red mug at varying light and, in every frame, an orange-red distractor
    that is no target: the fit centres on red, and its radius takes the mug in every light
    but not the distractor."""
    rng = np.random.default_rng(0)
    frames = []
    for k in range(40):
        light = rng.uniform(0.5, 1.0)
        regions = [(slice(0, 4), slice(25, 30), ORANGE)]  # in every frame, not a target
        types = np.zeros((20, 30), np.uint8)
        if k % 2:
            regions.append((slice(5, 9), slice(5, 10), tuple(int(c * light) for c in RED)))
            types[5:9, 5:10] = 1
        frames.append((painted(regions=regions), types))
    detector = fit_colour_detector(frames, ["Mug", "Bed"], {"split": "synthetic"})
    assert set(detector.centre) == {"Mug"}  # Bed never seen: no colour, never detected
    assert len(detector.centre["Mug"]) == 1  # one asset, one colour
    np.testing.assert_allclose(detector.centre["Mug"][0], chromaticity(RED), atol=0.01)
    gap = np.abs(chromaticity(ORANGE) - chromaticity(RED)).sum()  # 0.11: inside RADII
    assert 0.02 <= detector.radius["Mug"] < gap
    assert detector.fitted_on["frame_f1"]["Mug"] == 1.0 and detector.fitted_on["frames"] == 40
    for rgb, types in frames:
        assert DETECTOR.box(rgb, "Mug")[0] == types.any() == detector.box(rgb, "Mug")[0]


def test_radius_counts_are_those_of_measuring_every_pixel():
    """The fit's per-radius pixel counts, measured only near the colours' mean, equal the
    counts over every pixel against every colour: on random pixels, on pixels scattered about
    the colours, and on pixels exactly at the largest radius."""
    rng = np.random.default_rng(0)
    for trial in range(30):
        colours = rng.dirichlet(np.ones(3), size=int(rng.integers(1, 8))).astype(np.float32)
        if trial % 3 == 0:  # colours of one type lie close together
            colours = (colours[:1] * 0.9 + colours * 0.1).astype(np.float32)
        spread = rng.dirichlet(np.ones(3), size=400)
        near = colours[rng.integers(len(colours), size=400)] + rng.normal(0, 0.06, (400, 3))
        edge = colours[:1] + np.float32(RADII[-1]) * np.array([[0.5, -0.5, 0.0]])
        c = np.concatenate([spread, near, edge]).astype(np.float32)
        dist = np.abs(c[:, None, :] - colours[None]).sum(-1).min(1)
        brute = [(dist <= np.float32(r)).sum() for r in RADII]
        assert radius_counts(np.ascontiguousarray(c.T), colours).tolist() == brute
    assert radius_counts(np.zeros((3, 0), np.float32), colours).tolist() == [0] * len(RADII)


def test_fit_reads_frames_made_again_and_holds_one_at_a_time():
    """The fit reads its frames twice; given an iterable that makes them again each time, it
    gives the same detector as from a list and never holds an earlier frame while reading the
    next (``spoc-detector fit`` renders its frames this way instead of keeping thousands)."""
    import weakref

    class Frames:
        def __init__(self):
            self.passes, self.most_alive, self.alive = 0, 0, []

        def __iter__(self):
            self.passes += 1
            for k in range(12):
                self.alive = [r for r in self.alive if r() is not None]
                self.most_alive = max(self.most_alive, len(self.alive))
                types = np.zeros((20, 30), np.uint8)
                regions = [(slice(0, 4), slice(25, 30), ORANGE)]
                if k % 2:
                    regions.append((slice(5, 9), slice(5, 10), RED))
                    types[5:9, 5:10] = 1
                rgb = painted(regions=regions)
                self.alive.append(weakref.ref(rgb))
                yield rgb, types
                del rgb, types  # the generator's own references go with the frame

    frames = Frames()
    detector = fit_colour_detector(frames, ["Mug"])
    # while the next frame is made, at most the last is still held (a list: all of them)
    assert frames.passes == 2 and frames.most_alive == 1
    assert detector.fitted_on["frames"] == 12
    held = fit_colour_detector(list(Frames()), ["Mug"])
    assert detector.to_json() == held.to_json()


def test_fit_keeps_each_asset_colour_of_a_type():
    """Mugs of two assets, red and blue, sometimes both in one frame (told apart by their
    instance ids), beside a green distractor in every frame: the fit keeps both colours and
    detects every mug of either, where their one median colour lies between them and far
    from both."""
    blue = (40, 40, 200)
    frames = []
    for k in range(30):
        regions, types = [(slice(0, 4), slice(25, 30), GREEN)], np.zeros((20, 30), np.uint8)
        ids = np.zeros((20, 30), np.uint16)
        for j, (colour, cols) in enumerate(((RED, slice(3, 8)), (blue, slice(12, 16)))):
            if k % 3 == j or k % 3 == 2:
                regions.append((slice(6, 10), cols, colour))
                types[6:10, cols], ids[6:10, cols] = 1, j + 5
        with_ids = k % 2 or k % 3 == 2  # without ids a frame's mugs are one instance
        frames.append((painted(regions=regions), types) + ((ids,) if with_ids else ()))
    detector = fit_colour_detector(frames, ["Mug"])
    got = np.array(sorted(detector.centre["Mug"]))
    want = np.array(sorted(tuple(chromaticity(c)) for c in (RED, blue)))
    np.testing.assert_allclose(got, want, atol=1e-6)
    for rgb, types, *_ in frames:
        assert detector.box(rgb, "Mug")[0] == types.any()
        assert not detector.mask(rgb, "Mug")[:, 25:].any()  # never the distractor
    single = ColourDetector({"Mug": tuple(np.mean(got, axis=0))}, {"Mug": detector.radius["Mug"]},
                            {"Mug": 1})
    assert not single.box(frames[0][0], "Mug")[0]  # between the two colours: sees neither


def test_a_several_colour_mask_is_every_colours_test_on_every_pixel():
    """The mask's coarse first test (the colours' mean, radius plus spread) drops no pixel
    that one of the colours takes: on noise around the colours, it equals testing them all."""
    colours = [(0.50, 0.46, 0.04), (0.48, 0.49, 0.03), (0.52, 0.45, 0.03)]
    detector = ColourDetector({"Mug": colours}, {"Mug": 0.03}, {"Mug": 1})
    rng = np.random.default_rng(0)
    base = np.array(colours)[rng.integers(0, 3, size=(64, 64))] * rng.uniform(60, 700, (64, 64, 1))
    rgb = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    f = rgb.reshape(-1, 3).astype(np.float32)
    total = f.sum(-1)
    every = np.zeros(len(f), bool)
    for c in colours:
        every |= l1_times_total(f, total, c) <= np.float32(0.03) * total
    want = (every & (total >= MIN_BRIGHTNESS)).reshape(64, 64)
    got = detector.mask(rgb, "Mug")
    assert np.array_equal(got, want) and 0.1 < want.mean() < 0.9


def test_detector_file_round_trip_and_clear_errors(tmp_path):
    path = tmp_path / "d" / "detector.json"
    DETECTOR.save(path)
    assert ColourDetector.load(path) == DETECTOR
    (tmp_path / "bad.json").write_text(json.dumps({"kind": "colour", "centre": {"Mug": [1, 0, 0]}}))
    with pytest.raises(ValueError, match=r"bad.json: field 'radius' is missing.*spoc-detector fit"):
        ColourDetector.load(tmp_path / "bad.json")
    two = ColourDetector({"Mug": ((0.7, 0.2, 0.1), (0.1, 0.2, 0.7))}, {"Mug": 0.05}, {"Mug": 1})
    two.save(path)
    assert ColourDetector.load(path) == two and len(two.centre["Mug"]) == 2
    (tmp_path / "bad.json").write_text(json.dumps({"kind": "colour", "centre": {"Mug": [1, 0]},
                                                   "radius": {"Mug": 0.1},
                                                   "min_pixels": {"Mug": 1}}))
    with pytest.raises(ValueError, match=r"bad.json: field 'centre.Mug'.*spoc-detector fit"):
        ColourDetector.load(tmp_path / "bad.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(ValueError, match="text.json: not a readable detector"):
        ColourDetector.load(tmp_path / "text.json")
