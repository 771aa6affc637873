"""``spoc-explorer``: a learned exploration policy for the map agent (where to look next).

    spoc-explorer collect --houses data/big/houses/train.jsonl.gz --dataset DATASET_DIR \\
        --detector runs/mapper/detector.json --episodes 2000 --out runs/explorer/data
    spoc-explorer fit --data '[runs/explorer/data]' --out runs/explorer/model --epochs 4
    spoc-eval run --policy mapper --mapper.explorer runs/explorer/model/explorer.pt ...

The map agent (:mod:`eval.mapper`) explores by walking to the nearest frontier. Here a network
picks the frontier instead, from what the agent has mapped: it reads the egocentric view of
the episode's map (:func:`map_view`: seen floor, blocked, explored, frontier and visited
cells, where the detector saw each ``CONTEXT`` type, and the breadth-first steps from the
agent, ``VIEW`` cells of 0.25 m a side, the agent facing up) with the goal, and scores blocks
of 2x2 cells: the nearest frontier's prior plus what it learned (:class:`ExplorerNet`); the
agent walks to the frontier cells of the best block until none is a frontier any more
(:class:`Explorer`). The rest of the agent (mapping, detection, approach, ``end``) is
unchanged. This is the learned global policy of modular ObjectNav agents (Chaplot et al.
2020, "Object Goal Navigation using Goal-Oriented Semantic Exploration"; the potential over
frontiers of Ramakrishnan et al. 2022, "PONI").

Labels come from the shortest-path oracle (privileged, training houses only): the cost of a
frontier cell is the agent's breadth-first steps to it on its map plus the oracle's moves
from it to the nearest goal state (:func:`frontier_costs`), a block's cost is its frontier
cells' least, and the target is the softmax of minus the costs (``FitConfig.temperature``).
``collect`` rolls out the map agent on training houses (with ``--explorer``, a fitted one:
a DAgger round) and writes each exploring step's view and block costs, one ``.npz`` per
chunk of episodes, written atomically; an interrupted ``collect`` resumes at the first
missing chunk.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from datagen.tasks import TaskConfig
from sim.camera import CameraConfig
from sim.cliargs import config_commands, parse_config_command
from sim.lattice import heading_step

VIEW = 96
"""Cells a side of the egocentric view (24 m at 0.25 m); the agent's cell is
(``VIEW // 2 - 1``, ``VIEW // 2``), facing row 0."""
BLOCK = 2
"""Cells a side of the blocks the network scores."""
PLANES = ("floor", "blocked", "explored", "frontier", "visited")
"""The view's binary planes, in channel order; one plane per context type follows them (where
the detector saw it), then the steps plane."""
CONTEXT = ("Bed", "Sofa", "Toilet", "Fridge", "Television", "Chair")
"""The object types the map notes for the explorer by default: large, and telling of rooms."""
STEPS_SCALE = 64.0
"""Breadth-first steps are divided by this (unreachable and beyond: 1)."""
FORMAT = 1
"""Version of the files ``collect`` writes and ``fit`` saves."""
REGRET_CAP = 64.0
"""The regret counted for picking a frontier block the oracle cannot value."""
EXIT_BAD_INPUT = 2


# --------------------------------------------------------------------------- the view


def view_index(cell: tuple[int, int], heading: int, size: int) -> tuple[np.ndarray, ...]:
    """(rows, cols, inside) of the map cells under the egocentric view: row 0 is furthest
    ahead, column 0 furthest left; ``inside`` (VIEW, VIEW) marks cells within the map."""
    fi, fj = heading_step(heading, 4)
    ri, rj = heading_step((heading + 1) % 4, 4)
    u, v = np.mgrid[0:VIEW, 0:VIEW]
    ahead, right = VIEW // 2 - 1 - u, v - VIEW // 2
    rows = cell[0] + ahead * fi + right * ri
    cols = cell[1] + ahead * fj + right * rj
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return np.clip(rows, 0, size - 1), np.clip(cols, 0, size - 1), inside


def map_view(m, steps: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The view of an :class:`eval.mapper.EpisodeMap` m with ``steps`` (the map's breadth-first
    steps from the agent, -1 unreachable): ((P + K + 1, VIEW, VIEW) float32, the view index),
    K the context types the map notes (``m.context``,
    :meth:`eval.mapper.MapPolicy.note_context`)."""
    index = view_index(m.cell, m.heading, m.cfg.size)
    rows, cols, inside = index
    front = m.frontier()
    planes = [m.floor, m.blocked, m.explored, front, m.visited, *m.context]
    out = np.zeros((len(planes) + 1, VIEW, VIEW), np.float32)
    for k, plane in enumerate(planes):
        out[k] = plane[rows, cols] & inside
    s = steps[rows, cols].astype(np.float32)
    out[-1] = np.where(inside & (s >= 0), np.minimum(s / STEPS_SCALE, 1.0), 1.0)
    return out, index


def reachable_frontier(view: np.ndarray, index, steps: np.ndarray) -> np.ndarray:
    """(VIEW, VIEW) bool: the view's frontier cells the agent can reach on its map."""
    rows, cols, _ = index
    return (view[PLANES.index("frontier")] > 0) & (steps[rows, cols] >= 0)


def blocks(mask: np.ndarray) -> np.ndarray:
    """(VIEW // BLOCK, VIEW // BLOCK) bool: the blocks holding any true cell of (VIEW, VIEW)."""
    n = VIEW // BLOCK
    return mask.reshape(n, BLOCK, n, BLOCK).any(axis=(1, 3))


def block_costs(cost: np.ndarray) -> np.ndarray:
    """(VIEW // BLOCK,) * 2 float32: each block's least cell cost of (VIEW, VIEW) (inf: none)."""
    n = VIEW // BLOCK
    return cost.reshape(n, BLOCK, n, BLOCK).min(axis=(1, 3)).astype(np.float32)


# --------------------------------------------------------------------------- the network


@dataclass(frozen=True)
class ExplorerConfig:
    """The scoring network's size."""

    width: int = 16
    """Channels of the first layer (doubled at each of the two coarser scales; the goal's
    embedding is added at the coarsest)."""
    temperature: float = 2.0
    """The target's temperature (``FitConfig.temperature``), which scales the prior."""


class ExplorerNet(nn.Module):
    """A small encoder-decoder from the view (B, P + K + 1, VIEW, VIEW) and the goal index (B,) to
    block logits (B, VIEW // BLOCK, VIEW // BLOCK): the nearest frontier's prior (minus each
    block's steps from the agent over the temperature, :func:`nearest_prior`) plus what the
    network adds, the part of the target it cannot read off the map (minus the oracle's moves
    from the block to the goal). Its last layer starts at zero: an untrained explorer walks to
    the nearest frontier."""

    def __init__(self, num_goals: int, cfg: ExplorerConfig = ExplorerConfig(),
                 context: int = 0):
        super().__init__()
        w = cfg.width
        c_in = len(PLANES) + context + 1

        def conv(a, b, stride=1):
            return nn.Sequential(nn.Conv2d(a, b, 3, stride, 1), nn.GroupNorm(8, b), nn.ReLU())

        self.down1 = nn.Sequential(conv(c_in, w, 2), conv(w, w))  # VIEW / 2
        self.down2 = nn.Sequential(conv(w, 2 * w, 2), conv(2 * w, 2 * w))  # VIEW / 4
        self.down3 = nn.Sequential(conv(2 * w, 4 * w, 2), conv(4 * w, 4 * w))  # VIEW / 8
        self.goal = nn.Embedding(num_goals, 4 * w)
        self.mid = nn.Sequential(conv(4 * w, 4 * w), conv(4 * w, 4 * w))
        self.up2 = conv(4 * w + 2 * w, 2 * w)
        self.up1 = conv(2 * w + w, w)
        self.head = nn.Conv2d(w, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.temperature = cfg.temperature

    def forward(self, view: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        a = self.down1(view)  # (B, w, V/2, V/2)
        b = self.down2(a)  # (B, 2w, V/4, V/4)
        c = self.down3(b)  # (B, 4w, V/8, V/8)
        c = self.mid(c + self.goal(goal)[:, :, None, None])
        b = self.up2(torch.cat([F.interpolate(c, scale_factor=2.0), b], 1))
        a = self.up1(torch.cat([F.interpolate(b, scale_factor=2.0), a], 1))
        return self.head(a)[:, 0] + nearest_prior(view) / self.temperature  # (B, V/2, V/2)


def nearest_prior(view: torch.Tensor) -> torch.Tensor:
    """(B, n, n): minus each block's least steps from the agent to its frontier cells (the
    view's steps plane, so at most ``STEPS_SCALE``), in steps; blocks without a frontier cell
    get ``-STEPS_SCALE``. Its argmax over the allowed blocks is the nearest frontier."""
    front = view[:, PLANES.index("frontier")] > 0
    steps = torch.where(front, view[:, -1], torch.ones_like(view[:, -1]))
    n = VIEW // BLOCK
    return -steps.view(-1, n, BLOCK, n, BLOCK).amin(dim=(2, 4)) * STEPS_SCALE


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the true entries of ``mask`` per row (B, N, N); -inf elsewhere."""
    flat = logits.flatten(1).masked_fill(~mask.flatten(1), float("-inf"))
    return F.log_softmax(flat, dim=1).view_as(logits)


def soft_targets(costs: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax of minus the block costs (B, N, N) over ``mask`` (inf costs get none)."""
    flat = costs.flatten(1)
    flat = torch.where(mask.flatten(1) & torch.isfinite(flat), -flat / temperature,
                       torch.full_like(flat, float("-inf")))
    return F.softmax(flat, dim=1).view_as(costs)


# --------------------------------------------------------------------------- deployment


class Explorer:
    """A fitted network behind the map agent's exploration: :meth:`choose` the frontier."""

    def __init__(self, net: ExplorerNet, goals: list[str], context: list[str], info: dict):
        self.net, self.goals, self.info = net.eval(), list(goals), info
        self.context = tuple(context)
        self.goal_index = {g: k for k, g in enumerate(self.goals)}

    @classmethod
    def load(cls, path: str | Path) -> Explorer:
        """ValueError naming the file when it is no explorer saved by ``spoc-explorer fit``."""
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file; fit one with `spoc-explorer fit`") from None
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file
            raise ValueError(f"{path}: not a readable explorer ({type(e).__name__}); fit one "
                             "with `spoc-explorer fit`") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise ValueError(f"{path}: field 'format' is not {FORMAT}: not an explorer saved by "
                             "`spoc-explorer fit`; fit one with it")
        context = list(saved.get("context", []))
        net = ExplorerNet(len(saved["goals"]), ExplorerConfig(**saved["config"]), len(context))
        net.load_state_dict(saved["state_dict"])
        return cls(net, saved["goals"], context, saved.get("info", {}))

    def choose(self, m, goal: str, steps: np.ndarray) -> np.ndarray | None:
        """(size, size) bool: the frontier cells of the best-scored block in view, or None when
        no frontier is in view (or the goal is not in the explorer's vocabulary)."""
        if goal not in self.goal_index:
            return None
        view, index = map_view(m, steps)
        with torch.no_grad():
            logits = self.net(torch.from_numpy(view)[None],
                              torch.tensor([self.goal_index[goal]]))[0].numpy()
        return pick_block(m, view, index, steps, logits)


class OracleExplorer:
    """A probe (privileged): the block whose frontier cells cost least by
    :func:`frontier_costs`, the fitted explorer's target. Reads ``m.privileged``."""

    def choose(self, m, goal: str, steps: np.ndarray) -> np.ndarray | None:
        if m.privileged is None:
            return None
        view, index = map_view(m, steps)
        costs = block_costs(frontier_costs(view, index, steps, m.privileged, m.cfg.size))
        if not np.isfinite(costs).any():
            return None
        return pick_block(m, view, index, steps, -costs)


def pick_block(m, view: np.ndarray, index, steps: np.ndarray, scores: np.ndarray):
    """(size, size) bool: the reachable frontier cells of the block with the highest score
    ((n, n)) among the blocks that hold any; None when none does."""
    rows, cols, _ = index
    front = reachable_frontier(view, index, steps)
    allowed = blocks(front)
    if not allowed.any():
        return None
    k = int(np.argmax(np.where(allowed, scores, -np.inf)))
    pick = np.zeros_like(allowed)
    pick.flat[k] = True
    cells = front & np.kron(pick, np.ones((BLOCK, BLOCK), bool)).astype(bool)
    out = np.zeros_like(m.floor)
    out[rows[cells], cols[cells]] = True
    return out


# --------------------------------------------------------------------------- labels


def oracle_cell_moves(run) -> np.ndarray:
    """(ni, nj) float64: the oracle's moves from each lattice cell to the nearest goal state
    (least over headings, rotations not counted; a cell that is no state: the least of its
    eight neighbours' + 1; inf where none)."""
    from datagen.navgraph import MOVE_UNITS

    table = run.ctx.table
    d = run.oracle.dist[np.maximum(table.index, 0)]
    d[table.index < 0] = np.inf
    d = np.floor(d.min(axis=2) / MOVE_UNITS)
    pad = np.pad(d, 1, constant_values=np.inf)
    ni, nj = d.shape
    near = np.min([pad[1 + a:1 + a + ni, 1 + b:1 + b + nj]
                   for a in (-1, 0, 1) for b in (-1, 0, 1)], axis=0) + 1
    return np.where(np.isfinite(d), d, near)


@dataclass
class Privileged:
    """How an episode's map cells sit on the house's lattice, and the oracle's moves."""

    start: tuple[int, int, int]
    """The lattice state the episode started in (the map's centre cell, heading 0)."""
    moves: np.ndarray
    """:func:`oracle_cell_moves` of the episode."""

    def lattice_cells(self, rows: np.ndarray, cols: np.ndarray, size: int) -> tuple:
        """The lattice (i, j) of map cells (rows, cols)."""
        e0 = np.asarray(heading_step(self.start[2], 4))
        e1 = np.asarray(heading_step((self.start[2] + 1) % 4, 4))
        # map heading 0 steps (0, +1), heading 1 steps (+1, 0): columns along e0, rows e1
        p, q = cols - size // 2, rows - size // 2
        return (self.start[0] + p * e0[0] + q * e1[0], self.start[1] + p * e0[1] + q * e1[1])

    def moves_at(self, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
        i, j = self.lattice_cells(rows, cols, size)
        ni, nj = self.moves.shape
        ok = (i >= 0) & (i < ni) & (j >= 0) & (j < nj)
        out = np.full(np.shape(rows), np.inf)
        out[ok] = self.moves[i[ok], j[ok]]
        return out


def frontier_costs(view: np.ndarray, index, steps: np.ndarray, priv: Privileged,
                   size: int) -> np.ndarray:
    """(VIEW, VIEW) float32: for each reachable frontier cell in the view (of a map of
    ``size`` cells a side), the agent's steps to it on its map plus the oracle's moves from it
    to the goal; inf elsewhere."""
    rows, cols, _ = index
    front = reachable_frontier(view, index, steps)
    cost = np.full((VIEW, VIEW), np.inf, np.float32)
    cost[front] = steps[rows, cols][front] + priv.moves_at(rows[front], cols[front], size)
    return cost


# --------------------------------------------------------------------------- collect


@dataclass
class CollectConfig:
    """Roll out the map agent on training houses and write its exploring steps' labels."""

    houses: str = "data/houses/train.jsonl.gz"
    """Training houses (never the ones evaluated on)."""
    detector: str = "runs/mapper/detector.json"
    """The colour detector the map agent finds targets with (``spoc-detector fit``)."""
    out: str = "runs/explorer/data"
    dataset: str | None = None
    """A dataset whose camera, agent, tasks and goals to use (as ``spoc-eval run --dataset``)."""
    explorer: str | None = None
    """Explore with this fitted explorer instead of the nearest frontier (a DAgger round)."""
    episodes: int = 2000
    seed: int = 0
    chunk: int = 100
    """Episodes per written file."""
    every: int = 2
    """Keep every this-many-th exploring step of an episode."""
    context: list[str] = field(default_factory=lambda: list(CONTEXT))
    """Object types the map notes where the detector sees them, one view plane each (the
    detector must have their colours)."""
    workers: int = 2
    max_steps: int = 500
    camera: CameraConfig | None = None
    """The camera, when no ``--dataset`` gives it (e.g. ``--camera.height 112``)."""
    tasks: TaskConfig | None = None
    """The tasks, when no ``--dataset`` gives them."""


def collecting_policy(settings, every: int, context: list[str]):
    """The map agent of ``settings`` that also keeps every ``every``-th exploring step's
    (view, goal index, allowed blocks, block costs) in ``.samples``; it reads the oracle's
    labels from the harness (``uses_oracle``)."""
    from eval.mapper import MapPolicy

    class Collecting(MapPolicy):
        def explore(self, m, goal):
            m.explore_steps = getattr(m, "explore_steps", -1) + 1
            if m.privileged is not None and m.explore_steps % every == 0:
                steps = m.steps_from_agent()
                view, index = map_view(m, steps)
                cost = frontier_costs(view, index, steps, m.privileged, m.cfg.size)
                allowed = blocks(reachable_frontier(view, index, steps))  # as pick_block
                if np.isfinite(cost).any():
                    self.samples.append((view, self.goal_ids[goal], allowed, block_costs(cost)))
            return super().explore(m, goal)

    policy = Collecting(settings.camera, settings.agent, settings.tasks, settings.goals,
                        settings.detector, settings.mapper)
    policy.uses_oracle = True
    policy.context_types = tuple(context)
    policy.samples = []
    policy.goal_ids = {g: k for k, g in enumerate(settings.goals)}
    return policy


def pack(samples: list, goals: list[str], context: list[str]) -> dict:
    """Arrays of one chunk's samples: binary planes bit-packed, steps as uint8 (x 255)."""
    n = VIEW // BLOCK
    if not samples:
        return {"planes": np.zeros((0, len(PLANES) + len(context), VIEW, VIEW // 8), np.uint8),
                "steps": np.zeros((0, VIEW, VIEW), np.uint8), "goal": np.zeros(0, np.int16),
                "allowed": np.zeros((0, n, n // 8 + (n % 8 > 0)), np.uint8),
                "costs": np.zeros((0, n, n), np.float16), "goals": np.asarray(goals),
                "context": np.asarray(context, dtype=str)}
    views = np.stack([s[0] for s in samples])  # (N, P + 1, VIEW, VIEW)
    return {
        "planes": np.packbits(views[:, :-1] > 0, axis=-1),
        "steps": np.round(views[:, -1] * 255).astype(np.uint8),
        "goal": np.asarray([s[1] for s in samples], np.int16),
        "allowed": np.packbits(np.stack([s[2] for s in samples]), axis=-1),
        "costs": np.stack([s[3] for s in samples]).astype(np.float16),
        "goals": np.asarray(goals),
        "context": np.asarray(context, dtype=str),
    }


def unpack(arrays, rows=slice(None)) -> tuple[np.ndarray, ...]:
    """Rows of a chunk: views (N, P + K + 1, VIEW, VIEW) float32, goals (N,) int64, allowed
    (N, n, n) bool and costs (N, n, n) float32 (n = VIEW // BLOCK)."""
    n = VIEW // BLOCK
    planes = np.unpackbits(arrays["planes"][rows], axis=-1, count=VIEW).astype(np.float32)
    steps = arrays["steps"][rows].astype(np.float32)[:, None] / 255.0
    allowed = np.unpackbits(arrays["allowed"][rows], axis=-1, count=n).astype(bool)
    return (np.concatenate([planes, steps], axis=1), arrays["goal"][rows].astype(np.int64),
            allowed, arrays["costs"][rows].astype(np.float32))


def npz_bytes(arrays: dict) -> bytes:
    """An uncompressed ``.npz`` of ``arrays`` with fixed entry dates: the same arrays give the
    same bytes."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            item = io.BytesIO()
            np.lib.format.write_array(item, np.asarray(arrays[name]), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                       item.getvalue())
    return buf.getvalue()


def chunk_path(out: Path, k: int) -> Path:
    return out / f"chunk-{k:05d}.npz"


def collect_chunk(cfg: CollectConfig, settings, houses: dict, slots: list, k: int) -> int:
    """Roll out one chunk's slots and write its file; the number of samples."""
    from datagen.files import write_atomic
    from eval.rollout import batch_obs, lockstep

    policy = collecting_policy(settings, cfg.every, cfg.context)
    policy.reset(settings.envs_per_worker)

    def act(runs):
        return policy.act(batch_obs(runs, settings.camera, False, depth=True, oracle=True))

    torch.set_num_threads(1)
    lockstep(houses, slots, settings, act, lambda run, result: None, lambda slot, why: None)
    arrays = pack(policy.samples, settings.goals, cfg.context)
    write_atomic(chunk_path(Path(cfg.out), k), npz_bytes(arrays))
    return len(policy.samples)


def _collect_worker(cfg: CollectConfig, settings, houses: dict, todo: list) -> int:
    return sum(collect_chunk(cfg, settings, {s.house: houses[s.house] for s in slots}, slots, k)
               for k, slots in todo)


def collect(cfg: CollectConfig) -> tuple[int, int]:
    """Write the missing chunks of ``cfg.out``; (chunks written, samples written)."""
    import multiprocessing as mp
    from dataclasses import replace

    from datagen.episodes import HouseFile
    from eval.cli import EvalConfig, build_run, file_split, house_split
    from eval.mapper import MapperConfig
    from eval.rollout import plan_slots

    if file_split(Path(cfg.houses)) not in (None, "train"):
        raise ValueError(f"--houses {cfg.houses}: not the train split (meta.json); collect on "
                         "training houses only, never on the evaluated ones")
    mapper = MapperConfig(explorer=cfg.explorer)
    spec, settings, _, _ = build_run(EvalConfig(
        policy="mapper", detector=cfg.detector, dataset=cfg.dataset, houses=cfg.houses,
        mapper=mapper, max_steps=cfg.max_steps, videos=0, camera=cfg.camera, tasks=cfg.tasks))
    settings = replace(settings, video_slots=frozenset())
    if cfg.explorer is not None:
        from eval.mapper import MapPolicy

        explorer = MapPolicy(settings.camera, settings.agent, settings.tasks, settings.goals,
                             settings.detector, settings.mapper).explorer
        if list(explorer.context) != list(cfg.context):
            raise ValueError(f"--explorer {cfg.explorer}: field 'context' is "
                             f"{list(explorer.context)}, not --context {list(cfg.context)}; "
                             "collect with the context it was fitted on")
    missing = sorted(set(cfg.context) - set(settings.detector.centre))
    if missing:
        raise ValueError(f"--context: the detector {cfg.detector} has no colour for "
                         f"{', '.join(missing)}; drop them or fit it with `spoc-detector fit "
                         "--types`")
    hfile = HouseFile.scan(cfg.houses)
    houses = hfile.read(list(range(len(hfile))))
    for pos, rec in houses.items():
        if house_split(rec) not in (None, "train"):
            raise ValueError(f"--houses {cfg.houses}: house {pos} ({rec.house_id}) was generated "
                             f"for the {house_split(rec)} split; collect on training houses only")
    slots = plan_slots(len(houses), cfg.episodes, cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(k, slots[a:a + cfg.chunk]) for k, a in enumerate(range(0, len(slots), cfg.chunk))
            if not chunk_path(out, k).exists()]
    shares = [todo[w::cfg.workers] for w in range(cfg.workers) if todo[w::cfg.workers]]
    if len(shares) <= 1:
        written = sum(_collect_worker(cfg, settings, houses, s) for s in shares)
    else:
        ctx = mp.get_context("forkserver")
        with ctx.Pool(len(shares)) as pool:
            written = sum(pool.starmap(_collect_worker,
                                       [(cfg, settings, houses, s) for s in shares]))
    return len(todo), written


# --------------------------------------------------------------------------- fit


@dataclass
class FitConfig:
    """Fit the explorer network on ``collect``'s files (the last file of each folder is held
    out for validation)."""

    data: list[str] = field(default_factory=lambda: ["runs/explorer/data"])
    """Folders written by ``spoc-explorer collect`` (rounds are aggregated)."""
    out: str = "runs/explorer/model"
    """Folder for Lightning's logs and checkpoints, and ``explorer.pt``."""
    epochs: int = 6
    batch_size: int = 64
    lr: float = 1e-3
    temperature: float = 2.0
    """Target: softmax of minus the block costs (oracle moves) over this."""
    seed: int = 0
    width: int = 16
    """``ExplorerConfig.width``."""
    threads: int = 2
    ckpt_path: str | None = None
    """Resume from this Lightning checkpoint of an earlier ``fit`` (e.g. its ``last.ckpt``),
    with ``epochs`` the new total."""


class Chunks(torch.utils.data.Dataset):
    """The samples of some ``collect`` files, kept packed in memory."""

    def __init__(self, files: list[Path]):
        self.arrays, self.rows = [], []
        self.goals: list[str] | None = None
        self.context: list[str] | None = None
        for f in files:
            try:
                with np.load(f, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in ("planes", "steps", "goal", "allowed", "costs",
                                                "goals", "context")}
            except Exception as e:  # noqa: BLE001 - truncated, foreign or missing fields
                raise ValueError(f"{f}: not a `spoc-explorer collect` file ({e}); collect it "
                                 "again") from None
            goals = [str(g) for g in arrays.pop("goals")]
            context = [str(t) for t in arrays.pop("context")]
            for name, mine, first in (("goals", goals, self.goals),
                                      ("context", context, self.context)):
                if first is not None and mine != first:
                    raise ValueError(f"{f}: field '{name}' differs from {files[0]}'s; fit on "
                                     "files collected with the same dataset and --context")
            self.goals, self.context = goals, context
            self.rows += [(len(self.arrays), r) for r in range(len(arrays["goal"]))]
            self.arrays.append(arrays)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        a, r = self.rows[k]
        view, goal, allowed, costs = unpack(self.arrays[a], slice(r, r + 1))
        return view[0], goal[0], allowed[0], costs[0]


def data_files(folders: list[str]) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): each folder's last chunk is held out."""
    train, held = [], []
    for folder in folders:
        files = sorted(Path(folder).glob("chunk-*.npz"))
        if len(files) < 2:
            raise ValueError(f"--data {folder}: {len(files)} chunk file(s); `spoc-explorer "
                             "collect` at least two chunks (one is held out)")
        train += files[:-1]
        held.append(files[-1])
    return train, held


def explorer_loss(net: ExplorerNet, batch, temperature: float):
    """(cross-entropy to the soft targets, mean regret of the argmax block)."""
    view, goal, allowed, costs = batch
    logits = net(view, goal)
    logp = masked_log_softmax(logits, allowed)
    target = soft_targets(costs, allowed, temperature)
    loss = -(target * torch.where(target > 0, logp, torch.zeros_like(logp))).flatten(1).sum(1)
    return loss.mean(), regret(logp, costs)


def regret(scores: torch.Tensor, costs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the cost of the best-scored block (B, n, n) minus the least
    cost, in oracle moves (a block the oracle cannot value counts ``REGRET_CAP``)."""
    flat = costs.flatten(1)
    chosen = flat.gather(1, scores.flatten(1).argmax(1)[:, None])[:, 0]
    best = flat.min(1).values
    out = torch.where(torch.isfinite(chosen), chosen - best, torch.full_like(best, REGRET_CAP))
    return out.mean()


def fit(cfg: FitConfig) -> Path:
    """Train and write ``out/explorer.pt``; its path."""
    from datagen.files import write_atomic

    torch.set_num_threads(cfg.threads)
    train_files, held_files = data_files(cfg.data)
    train, held = Chunks(train_files), Chunks(held_files)
    if (train.goals, train.context) != (held.goals, held.context):
        raise ValueError(f"--data: the held-out chunk {held_files[0]} has other goals or "
                         f"context than {train_files[0]}; fit on files collected alike")
    pl.seed_everything(cfg.seed, workers=True)
    module = ExplorerModule(len(train.goals), len(train.context), cfg)
    loader = torch.utils.data.DataLoader(train, cfg.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    val_loader = torch.utils.data.DataLoader(held, 256)
    best = pl.callbacks.ModelCheckpoint(monitor="val/regret", mode="min", save_last=True)
    trainer = pl.Trainer(max_epochs=cfg.epochs, default_root_dir=cfg.out, accelerator="cpu",
                         deterministic=True, enable_progress_bar=True, log_every_n_steps=50,
                         callbacks=[best])
    trainer.fit(module, loader, val_loader, ckpt_path=cfg.ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    kept = torch.load(best.best_model_path, map_location="cpu", weights_only=False)
    module.load_state_dict(kept["state_dict"])  # the epoch with the least held-out regret
    path = Path(cfg.out) / "explorer.pt"
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "config": {"width": cfg.width, "temperature": cfg.temperature},
                "goals": train.goals, "context": train.context,
                "state_dict": module.net.state_dict(),
                "info": {"train_samples": len(train), "held_samples": len(held),
                         "data": cfg.data, "epochs": cfg.epochs, "kept_epoch": kept["epoch"],
                         "kept_val_regret": float(best.best_model_score),
                         "last_metrics": metrics}}, buf)
    write_atomic(path, buf.getvalue())
    return path


class ExplorerModule(pl.LightningModule):
    """Lightning's view of the explorer network."""

    def __init__(self, num_goals: int, context: int, cfg: FitConfig):
        super().__init__()
        self.cfg = cfg
        self.net = ExplorerNet(num_goals, ExplorerConfig(cfg.width, cfg.temperature), context)

    def training_step(self, batch, _):
        loss, mine = explorer_loss(self.net, batch, self.cfg.temperature)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/regret", mine)
        return loss

    def validation_step(self, batch, _):
        loss, mine = explorer_loss(self.net, batch, self.cfg.temperature)
        view, _, allowed, costs = batch
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/regret", mine, prog_bar=True)
        self.log("val/regret_nearest", regret(nearest_prior(view).masked_fill(
            ~allowed, float("-inf")), costs))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.net.parameters(), lr=self.cfg.lr, weight_decay=1e-4)


# --------------------------------------------------------------------------- cli


def build_parser():
    return config_commands("spoc-explorer", __doc__.strip().splitlines()[0],
                           {"collect": CollectConfig, "fit": FitConfig})


def main(argv: list[str] | None = None) -> None:
    from eval.cli import EvalInputError

    command, values = parse_config_command(build_parser(),
                                           sys.argv[1:] if argv is None else argv)
    try:
        if command == "collect":
            chunks, samples = collect(CollectConfig(**values))
            print(f"{chunks} chunk(s), {samples} samples -> {values['out']}")
        else:
            print(f"explorer -> {fit(FitConfig(**values))}")
    except (EvalInputError, ValueError) as e:
        print(f"spoc-explorer: {e}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None


if __name__ == "__main__":
    main()
