"""Ground-truth target boxes from instance-id images (sim.detect)."""

from __future__ import annotations

import numpy as np

from sim.detect import BOX_FEATURES, target_box, target_table


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
