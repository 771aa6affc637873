"""Free space, motion and collision of the lattice agent."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import box_object, two_room_house

from sim.house import read_house
from sim.lattice import (
    END,
    MOVE_AHEAD,
    ROTATE_LEFT,
    ROTATE_RIGHT,
    AgentConfig,
    Lattice,
    heading_step,
)
from sim.scene import build_scene


def lattice_of(house: dict, **agent) -> Lattice:
    return Lattice(build_scene(read_house(house).house), AgentConfig(**agent))


def test_headings_follow_ai2thor_yaw():
    assert heading_step(0, 4) == (0, 1)  # yaw 0 faces +z
    assert heading_step(1, 4) == (1, 0)  # yaw 90 faces +x
    assert heading_step(1, 8) == (1, 1)


def test_agent_keeps_its_radius_from_walls():
    lat = lattice_of(two_room_house())
    xs, zs = np.meshgrid(np.arange(lat.ni), np.arange(lat.nj), indexing="ij")
    x, z = lat.x0 + xs * 0.25, lat.z0 + zs * 0.25
    free = lat.free
    assert free.any()
    assert (np.minimum.reduce([x[free], 8 - x[free], z[free], 4 - z[free]]) >= 0.2).all()
    # Nowhere within the radius of the shared wall at x = 4, except in the doorway.
    near_wall = free & (np.abs(x - 4) < 0.2)
    assert near_wall.any()
    assert ((z[near_wall] >= 1.7) & (z[near_wall] <= 2.3)).all()


def test_doorway_connects_rooms_and_closed_door_does_not():
    assert lattice_of(two_room_house()).components.max() >= 0
    open_lat = lattice_of(two_room_house())
    left = open_lat.reachable & (open_lat.room_index == 0)
    right = open_lat.reachable & (open_lat.room_index == 1)
    assert left.any() and right.any()
    closed = lattice_of(two_room_house(door="Doorway_1", openness=0.0))
    assert not ((closed.room_index[closed.reachable] == 0).any()
                and (closed.room_index[closed.reachable] == 1).any())
    no_door = lattice_of(two_room_house(door=None))
    assert len(set(no_door.components[no_door.free].tolist())) == 2


def test_cannot_walk_through_the_wall_beside_the_door():
    lat = lattice_of(two_room_house())
    i, j = lat.cell_of(3.75, 0.75)  # room 1, far from the door, facing +x (heading 1)
    state = (i, j, 1)
    for _ in range(10):
        state, _ = lat.step(state, MOVE_AHEAD)
    assert lat.position(*state[:2])[0] <= 4.0 - 0.2


def test_walk_through_the_doorway():
    lat = lattice_of(two_room_house())
    i, j = lat.cell_of(2.0, 2.0)
    state = (i, j, 1)
    for _ in range(30):
        state, _ = lat.step(state, MOVE_AHEAD)
    assert lat.position(*state[:2])[0] == 8.0 - 0.25  # stopped by the far wall of room 2


def test_cannot_walk_through_furniture():
    table = box_object("Dining_Table_16_1", 2.0, 2.0, 0.41)  # 1.47 x 1.49 m footprint
    lat = lattice_of(two_room_house(objects=[table]))
    i, j = lat.cell_of(2.0, 0.5)
    state, ok = (i, j, 0), True
    while ok:
        state, ok = lat.step(state, MOVE_AHEAD)
    z = lat.position(*state[:2])[1]
    assert z <= 2.0 - 1.487 / 2 - 0.2 + 1e-9
    assert not lat.free[lat.cell_of(2.0, 2.0)]


def test_high_objects_do_not_block():
    lamp = box_object("Dining_Table_16_1", 2.0, 2.0, 2.3)  # hangs above the agent's height
    lat = lattice_of(two_room_house(objects=[lamp]))
    assert lat.free[lat.cell_of(2.0, 2.0)]


def test_blocked_move_leaves_agent_in_place_and_rotations_cycle():
    lat = lattice_of(two_room_house())
    i, j = lat.cell_of(0.25, 0.25)
    state = (i, j, 2)  # facing -z, into the wall
    assert lat.step(state, MOVE_AHEAD) == (state, False)
    s = state
    for _ in range(4):
        s, ok = lat.step(s, ROTATE_RIGHT)
        assert ok
    assert s == state
    assert lat.step(state, ROTATE_LEFT)[0] == (i, j, 1)
    assert lat.step(state, END) == (state, True)
    with pytest.raises(ValueError, match="not one of"):
        lat.step(state, 7)


def test_moves_are_symmetric():
    for headings in (4, 8):
        lat = lattice_of(two_room_house(objects=[box_object("Dining_Table_16_1", 2, 2, 0.41)]),
                         headings=headings)
        H = headings
        for i, j, h in zip(*np.nonzero(lat.move_ok)):
            di, dj = heading_step(h, H)
            back = (h + H // 2) % H
            assert lat.move_ok[i + di, j + dj, back]


def test_diagonal_moves_do_not_cut_the_doorway_jambs():
    lat = lattice_of(two_room_house(), headings=8)
    for i, j, h in zip(*np.nonzero(lat.move_ok)):
        di, dj = heading_step(h, 8)
        x0, z0 = lat.position(i, j)
        x1, z1 = lat.position(i + di, j + dj)
        if (x0 - 4) * (x1 - 4) < 0:  # crossing the shared wall
            assert 1.7 <= z0 <= 2.3 and 1.7 <= z1 <= 2.3


def test_bad_agent_config_is_one_line():
    with pytest.raises(ValueError, match="agent.headings: 6 is not supported"):
        AgentConfig(headings=6)


def test_hole_is_cut_at_the_same_place_in_both_sides_of_the_wall():
    """holePolygon is in wall0's frame; wall1 runs the other way and must be cut to match."""
    lat = lattice_of(two_room_house(hole=(0.5, 1.5)))  # world z in [2.5, 3.5]
    assert (lat.room_index[lat.reachable] == 0).any() and (lat.room_index[lat.reachable] == 1
                                                           ).any()
    i, j = lat.cell_of(2.0, 3.0)
    state = (i, j, 1)
    for _ in range(12):
        state, _ = lat.step(state, MOVE_AHEAD)
    assert lat.position(*state[:2])[0] > 4.5
