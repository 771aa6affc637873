"""The oracle proves itself: exact against brute-force search, solves every sampled episode,
and answers from any state (DAgger)."""

from __future__ import annotations

import math
from functools import cache

import networkx as nx
import numpy as np
import pytest

from datagen.constants import TASK_OBJECTNAV, TASK_ROOMNAV
from datagen.episodes import HouseContext, HouseFile, sample_episode
from datagen.navgraph import NavTable, build_nav_graph
from datagen.oracle import Oracle
from datagen.tasks import (
    TaskConfig,
    objectnav_goal_sets,
    objectnav_success,
    roomnav_goal_sets,
    roomnav_success,
)
from sim.camera import CameraConfig
from sim.env import EmbeddedEnv
from sim.lattice import END, MOVE_AHEAD, AgentConfig, heading_step

FIXTURES = {"house_3703": "tests/fixtures/house_3703.json",
            "procthor_143": "tests/fixtures/143.json"}
CAMERA = CameraConfig(height=32, width=48)
TASKS = TaskConfig(min_pixels=3)


@cache
def context(name: str, headings: int = 4) -> HouseContext:
    """A house context with a tiny camera (cached across tests)."""
    rec = HouseFile.scan(FIXTURES[name]).read([0])[0]
    env = EmbeddedEnv(CAMERA, AgentConfig(headings=headings))
    return HouseContext(rec, env, TASKS)


def cell_metres_to_goal(table: NavTable, goal: np.ndarray, start_cell) -> float:
    """Brute force: Dijkstra over cells (rotations are free in metres), straight moves one
    grid step, diagonal moves sqrt(2) steps."""
    lat = table.lattice
    H = lat.agent.headings
    g = nx.DiGraph()
    for i, j in np.argwhere(lat.reachable):
        for h in range(H):
            if lat.move_ok[i, j, h]:
                di, dj = heading_step(h, H)
                g.add_edge((i, j), (i + di, j + dj), w=lat.agent.grid * math.hypot(di, dj))
    goal_cells = {tuple(map(int, table.states[n, :2])) for n in np.flatnonzero(goal)}
    lengths = nx.single_source_dijkstra_path_length(g, tuple(start_cell), weight="w")
    return min(lengths[c] for c in goal_cells if c in lengths)


@pytest.mark.parametrize("headings", [4, 8], ids=["4-headings", "8-headings"])
@pytest.mark.parametrize("name", list(FIXTURES))
def test_table_is_the_networkx_graph(name, headings):
    lat = context(name, headings).lattice
    model, table = build_nav_graph(lat), NavTable.build(lat)
    assert set(model.nodes) == set(table.to_networkx().nodes)
    assert sorted(model.edges(data=True)) == sorted(table.to_networkx().edges(data=True))


@pytest.mark.parametrize("headings", [4, 8], ids=["4-headings", "8-headings"])
@pytest.mark.parametrize("name", list(FIXTURES))
def test_distances_and_paths_match_brute_force(name, headings):
    ctx = context(name, headings)
    table = ctx.table
    rooms = roomnav_goal_sets(ctx.scene, table, TASKS.roomnav_targets)
    target = sorted(rooms)[0]
    oracle = Oracle(table, rooms[target])
    model = build_nav_graph(ctx.lattice).reverse(copy=False)
    goals = [table.state(n) for n in np.flatnonzero(rooms[target])]
    ref = nx.multi_source_dijkstra_path_length(model, goals, weight="weight")
    assert all(ref[table.state(n)] == oracle.dist[n] for n in range(len(table)))
    rng = np.random.default_rng(0)
    for n in rng.choice(np.flatnonzero(~rooms[target]), size=8, replace=False):
        path = oracle.path(table.state(n))
        assert math.isclose(path.metres, cell_metres_to_goal(table, rooms[target],
                                                             table.states[n, :2]), abs_tol=1e-9)
        assert oracle.is_goal(path.states[-1]) and path.actions[-1] == END


def test_expert_action_from_any_state_reaches_a_goal():
    ctx = context("procthor_143")
    goal = roomnav_goal_sets(ctx.scene, ctx.table, ["Bathroom"])["Bathroom"]
    oracle = Oracle(ctx.table, goal)
    rng = np.random.default_rng(1)
    for n in rng.choice(len(ctx.table), size=40, replace=False):  # off any expert path
        state = ctx.table.state(n)
        for _ in range(400):
            a = oracle.expert_action(state)
            if a == END:
                break
            nxt, ok = ctx.lattice.step(state, a)
            assert ok and oracle.distance(nxt) < oracle.distance(state)
            state = nxt
        assert oracle.is_goal(state)
    with pytest.raises(ValueError, match="not a reachable lattice state"):
        oracle.expert_action((0, 0, 0))


def test_tie_break_prefers_move_ahead_then_rotate_left():
    ctx = context("house_3703")
    table = ctx.table
    n = next(n for n in range(len(table)) if table.succ[n, 0] >= 0)
    goal = np.zeros(len(table), dtype=bool)
    goal[table.succ[n, 0]] = True
    assert Oracle(table, goal).expert_action(table.state(n)) == MOVE_AHEAD


def test_objectnav_goal_sets_equal_rendering_every_state():
    ctx = context("house_3703")
    goals, rendered = objectnav_goal_sets(
        ctx.scene, ctx.table, lambda x, z, yaw: ctx.renderer.render(x, z, yaw).ids, CAMERA,
        TASKS.objectnav_targets, TASKS.min_pixels, TASKS.max_distance)
    assert rendered < len(ctx.table)
    truth = {t: np.zeros(len(ctx.table), dtype=bool) for t in goals}
    for n in range(len(ctx.table)):
        ctx.env.reset_state(ctx.table.state(n))
        seen = ctx.env.visible_objects()
        for t in truth:
            truth[t][n] = objectnav_success(seen, t, TASKS.min_pixels, TASKS.max_distance)
    assert sorted(goals) == sorted(truth)
    assert any(m.any() for m in truth.values())
    for t in truth:
        np.testing.assert_array_equal(goals[t], truth[t], err_msg=t)


@pytest.mark.parametrize("name", list(FIXTURES))
def test_oracle_solves_every_sampled_episode(name):
    """Replays each expert episode in the env: every one ends in a success state, SPL 1."""
    ctx = context(name)
    env = ctx.env
    solved = 0
    for seed in range(12):
        ep = sample_episode(ctx, f"e{seed}", seed, max_steps=500)
        if isinstance(ep, str):
            assert ep.startswith((TASK_OBJECTNAV, TASK_ROOMNAV))
            continue
        env.load(ctx.record.house)
        env.reset_state(ep.start)
        metres = 0.0
        for a in ep.path.actions[:-1]:
            before = env.pose
            assert env.step(a).success
            metres += math.hypot(env.pose.x - before.x, env.pose.z - before.z)
        if ep.task == TASK_OBJECTNAV:
            assert objectnav_success(env.visible_objects(), ep.target, TASKS.min_pixels,
                                     TASKS.max_distance)
        else:
            assert roomnav_success(env.current_room(), ep.target)
        assert math.isclose(metres, ep.path.metres, abs_tol=1e-6)  # SPL 1.0
        assert ep.shortest_steps == len(ep.path.actions)
        solved += 1
    assert solved >= 8
