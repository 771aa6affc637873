"""The learned explorer (``spoc-explorer``): its egocentric view, its oracle labels, the files
``collect`` writes, ``fit``, and the map agent exploring with it through the harness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_eval import bad_input, run_eval, write_houses
from test_mapper import CAMERA, house_env, start_at  # noqa: F401 - a fixture
from training_helpers import palette_detector

import agents.explorer as AE
import eval.probes as P
import training.explorer.cli as ECLI
import training.explorer.data as ED
import training.explorer.fit as EF
from agents.mapper import EpisodeMap, MapperConfig
from datagen.constants import OBJECTNAV_TARGETS
from datagen.navgraph import MOVE_UNITS
from sim.lattice import MOVE_AHEAD, ROTATE_RIGHT, AgentConfig

TINY = ["--camera.height", "48", "--camera.width", "64", "--tasks.min_pixels", "4"]


@pytest.mark.parametrize("heading", [0, 1, 2, 3])
def test_view_is_egocentric(heading):
    """The agent's cell sits at (VIEW // 2 - 1, VIEW // 2) facing row 0 whatever its heading:
    the cell ahead is one row up, the cell to its right one column right."""
    m = EpisodeMap(CAMERA, AgentConfig(), MapperConfig())
    m.heading = heading
    m.blocked[m.ahead()] = True
    m.heading = (heading + 1) % 4
    m.floor[m.ahead()] = True  # the cell on its right
    m.heading = heading
    view, (rows, cols, inside) = AE.map_view(m, m.steps_from_agent())
    a, c = AE.VIEW // 2 - 1, AE.VIEW // 2
    assert (rows[a, c], cols[a, c]) == m.cell and inside.all()
    blocked, floor = view[AE.PLANES.index("blocked")], view[AE.PLANES.index("floor")]
    assert blocked[a - 1, c] == 1 and blocked.sum() == 1
    assert floor[a, c + 1] == 1 and floor.sum() == 1
    assert view[AE.PLANES.index("visited"), a, c] == 1
    assert view[-1, a, c] == 0 and view[-1, a, c + 3] == pytest.approx(3 / AE.STEPS_SCALE)


def test_privileged_labels_are_the_oracles_moves(house_env):  # noqa: F811 - the fixture
    """A frontier cell's cost is the agent's map steps to it plus the oracle's moves from its
    lattice cell to the goal; the map's cells land on the lattice cells the agent walks."""
    from datagen.navgraph import NavTable
    from datagen.oracle import Oracle
    from datagen.tasks import objectnav_goal_sets

    env, house, scene, lattice = house_env
    start_at(env, house, lattice, 7)
    table = NavTable.build(lattice)
    goals, _ = objectnav_goal_sets(scene, table, env.renderer.render_ids, env.camera,
                                   list(OBJECTNAV_TARGETS), 4, 1.0)
    oracle = Oracle(table, next(g for _, g in sorted(goals.items()) if g.any()))

    moves = P.oracle_cell_moves(table, oracle)
    for state in table.states[::37]:
        i, j, _ = (int(v) for v in state)
        best = min(oracle.distance((i, j, h)) for h in range(4))
        assert moves[i, j] == best // MOVE_UNITS
    priv = P.Privileged(env.state, moves)
    m = EpisodeMap(CAMERA, env.agent, MapperConfig())
    rng = np.random.default_rng(1)
    for action in rng.choice([MOVE_AHEAD, MOVE_AHEAD, ROTATE_RIGHT], 40):
        ok = env.step(int(action)).success
        m.moved(int(action), blocked=not ok)
        i, j = priv.lattice_cells(np.array(m.cell[0]), np.array(m.cell[1]), m.cfg.size)
        assert (int(i), int(j)) == env.state[:2]
    m.integrate(env.observation.depth)
    steps = m.steps_from_agent()
    view, index = AE.map_view(m, steps)
    cost = P.frontier_costs(view, index, steps, priv, m.cfg.size)
    rows, cols, _ = index
    finite = np.isfinite(cost)
    assert finite.any()
    u, v = np.argwhere(finite)[0]
    assert cost[u, v] == steps[rows[u, v], cols[u, v]] + priv.moves_at(
        rows[u, v], cols[u, v], m.cfg.size)
    assert not finite[view[AE.PLANES.index("frontier")] == 0].any()


def test_loss_targets_and_regret():
    """The soft target sums to one over the allowed blocks with a cost, puts most mass on
    the cheapest, and a network that ranks by cost has no regret."""
    n = AE.VIEW // AE.BLOCK
    costs = torch.full((1, n, n), float("inf"))
    costs[0, 3, 4], costs[0, 10, 10], costs[0, 20, 1] = 5.0, 9.0, 30.0
    allowed = torch.isfinite(costs)
    allowed[0, 0, 0] = True  # a frontier block the oracle cannot value
    target = EF.soft_targets(costs, allowed, 2.0)
    assert target.sum().item() == pytest.approx(1.0) and target[0, 0, 0] == 0
    assert target[0, 3, 4] > 0.8

    class Ranker(torch.nn.Module):
        def forward(self, view, goal):
            return torch.where(torch.isfinite(costs), -costs, torch.full_like(costs, -99.0))
    view = torch.zeros(1, len(AE.PLANES) + 1, AE.VIEW, AE.VIEW)
    loss, regret = EF.explorer_loss(Ranker(), (view, torch.zeros(1, dtype=torch.long), allowed,
                                              costs), 2.0)
    assert regret.item() == 0.0 and loss.item() > 0


def collect_argv(tmp_path: Path, out: str, houses: Path, detector: Path, *more: str
                 ) -> list[str]:
    return ["collect", "--houses", str(houses), "--detector", str(detector), "--out",
            str(tmp_path / out), "--episodes", "4", "--chunk", "2", "--max_steps", "150",
            "--every", "1", *TINY, *more]


def collect(tmp_path: Path, out: str, houses: Path, detector: Path, *more: str) -> list[bytes]:
    assert ECLI.main(collect_argv(tmp_path, out, houses, detector, *more)) == 0
    return [f.read_bytes() for f in sorted((tmp_path / out).glob("chunk-*.npz"))]


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explorer")
    houses = write_houses(tmp / "train.jsonl.gz", split="train", prefix="train")
    detector = tmp / "detector.json"
    palette_detector([*OBJECTNAV_TARGETS, "Fridge"]).save(detector)
    files = collect(tmp, "a", houses, detector, "--workers", "1")
    return tmp, houses, detector, files


def test_collect_is_deterministic_resumes_and_refuses_held_out_houses(collected, capsys):
    tmp, houses, detector, files = collected
    assert len(files) == 2
    with np.load(tmp / "a" / "chunk-00000.npz") as z:
        views, goals, allowed, costs = ED.unpack(z)
        assert len(views) > 5
        assert views.shape[1:] == (len(AE.PLANES) + len(AE.CONTEXT) + 1, AE.VIEW, AE.VIEW)
        assert list(z["context"]) == list(AE.CONTEXT)
        assert (np.isfinite(costs) <= allowed).all() and np.isfinite(costs).any(axis=(1, 2)).all()
    assert collect(tmp, "b", houses, detector, "--workers", "2") == files  # same bytes
    (tmp / "b" / "chunk-00001.npz").unlink()
    assert collect(tmp, "b", houses, detector) == files  # resumed: the missing chunk only
    val = write_houses(tmp / "val.jsonl.gz", split="val")
    assert ECLI.main(collect_argv(tmp, "c", val, detector)) == 2
    err = capsys.readouterr().err
    assert "val split" in err and "training houses" in err


def test_fit_then_the_map_agent_explores_with_it(collected, tmp_path, capsys):
    """``fit`` writes an explorer the map agent loads; through the harness it finds its
    targets on the fixture houses (held-out ids), recorded in the run's settings."""
    tmp, houses, detector, _ = collected
    assert ECLI.main(["fit", "--data", json.dumps([str(tmp / "a")]), "--out",
                      str(tmp_path / "m"), "--epochs", "2", "--batch_size", "8", "--width",
                      "8"]) == 0
    path = tmp_path / "m" / "explorer.pt"
    explorer = AE.Explorer.load(path)
    assert explorer.info["train_samples"] > 0 and "val/regret" in explorer.info["last_metrics"]
    # a DAgger round: the next data collected with the fitted explorer exploring
    assert len(collect(tmp_path, "round1", houses, detector, "--explorer", str(path))) == 2
    # its context must be the one collected with
    assert ECLI.main(collect_argv(tmp_path, "round1c", houses, detector, "--explorer",
                                  str(path), "--context", "[Bed]")) == 2
    assert "field 'context'" in capsys.readouterr().err
    val = write_houses(tmp_path / "val.jsonl.gz")
    args = ["--policy", "mapper", "--detector", str(detector), "--episodes", "8",
            "--videos", "0", "--max-steps", "300", "--mapper.explorer", str(path)]
    run = run_eval(tmp_path / "eval", val, *args)
    assert run["run"]["mapper"]["explorer"] == str(path)
    assert run["aggregated"]["success_rate"] >= 0.6, run["aggregated"]
    base = ["run", "--houses", str(val), "--out", str(tmp_path / "x"), "--progress", "false",
            "--policy", "mapper", "--detector", str(detector)]
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    err = bad_input(capsys, [*base, "--mapper.explorer", str(tmp_path / "junk.pt")])
    assert "junk.pt" in err and "spoc-explorer fit" in err
    err = bad_input(capsys, [*base, "--mapper.explorer", str(tmp_path / "none.pt")])
    assert "none.pt" in err
    err = bad_input(capsys, [*base, "--mapper.explorer", str(path),
                             "--probe.oracle_explorer", "true"])
    assert "give one" in err
    from eval.config import EvalInputError
    from eval.inputs import check_explorer

    with pytest.raises(EvalInputError, match="Chair"):  # a context type without a colour
        check_explorer(str(path), ["objectnav/Mug"], palette_detector(["Mug", "Bed"]))
    with pytest.raises(EvalInputError, match="goals"):
        check_explorer(str(path), ["objectnav/Pen"], palette_detector())


def test_oracle_explorer_probe_reads_the_oracle(tmp_path):
    """``--probe.oracle_explorer true`` (privileged) picks frontiers by the explorer's
    training target: through the harness it finds its targets in no more steps than the
    nearest frontier does, on the same episodes."""
    houses = write_houses(tmp_path / "val.jsonl.gz")
    detector = tmp_path / "detector.json"
    palette_detector([*OBJECTNAV_TARGETS, "Fridge"]).save(detector)
    args = ["--policy", "mapper", "--detector", str(detector), "--episodes", "8",
            "--videos", "0", "--max-steps", "300"]
    probe = run_eval(tmp_path / "probe", houses, *args, "--probe.oracle_explorer", "true")
    base = run_eval(tmp_path / "base", houses, *args)
    assert probe["run"]["probe"] == {"oracle_explorer": True}
    assert probe["aggregated"]["success_rate"] >= base["aggregated"]["success_rate"] - 0.125
    steps = [sum(r["steps"] for r in run["per_episode"]) for run in (probe, base)]
    assert steps[0] <= steps[1], steps


def test_context_types_are_noted_where_the_detector_sees_them(house_env):  # noqa: F811
    """``note_context`` marks cells under each context type's detected pixels: every marked
    cell is within a cell's reach of an object of that type's footprint."""
    from agents.map_agent import MapPolicy
    from datagen.tasks import TaskConfig

    env, house, scene, lattice = house_env
    types = ("Bed", "Sofa", "Chair", "Television", "Toilet", "Fridge")
    policy = MapPolicy(CAMERA, AgentConfig(), TaskConfig(min_pixels=4), ("objectnav/Mug",),
                       palette_detector([*OBJECTNAV_TARGETS, "Fridge"]), MapperConfig())
    policy.context_types = types
    marked = 0
    for k in range(0, len(np.argwhere(lattice.free)), 17):
        start = start_at(env, house, lattice, k)
        m = EpisodeMap(CAMERA, env.agent, MapperConfig())
        policy.note_context(m, env.observation.rgb, env.observation.depth)
        for t, plane in zip(types, m.context):
            cells = np.argwhere(plane)
            if not len(cells):
                continue
            xz = (cells - m.cfg.size // 2) * env.agent.grid + start
            mine = np.flatnonzero(np.asarray(scene.boxes.object_type) == t)
            near = [min(scene.boxes.distance_xz(x, z)[mine]) for x, z in xz]
            assert max(near) <= env.agent.grid, t
            marked += len(cells)
    assert marked > 0


def test_an_untrained_explorer_walks_to_the_nearest_frontier(house_env):  # noqa: F811
    """The network adds to the nearest frontier's prior and starts at zero: before any
    training its pick is a frontier block as near as the nearest frontier."""
    env, house, scene, lattice = house_env
    start_at(env, house, lattice, 11)
    m = EpisodeMap(CAMERA, env.agent, MapperConfig())
    m.integrate(env.observation.depth)
    for action in (ROTATE_RIGHT, ROTATE_RIGHT, ROTATE_RIGHT):
        env.step(action)
        m.moved(action, blocked=False)
        m.integrate(env.observation.depth)
    explorer = AE.Explorer(AE.ExplorerNet(2), ["objectnav/Mug", "objectnav/Bed"], [], {})
    steps = m.steps_from_agent()
    pick = explorer.choose(m, "objectnav/Bed", steps)
    front = m.frontier() & (steps >= 0)
    assert pick is not None and (pick <= front).all() and pick.any()
    assert steps[pick].min() == steps[front].min()
