"""The map agent's learned explorer at act time: a network that picks which frontier to walk
to from what the agent has mapped (``spoc-eval run --policy mapper --mapper.explorer
EXPLORER.pt``). ``spoc-explorer`` fits it (:mod:`training.explorer`).

The map agent (:mod:`agents.map_agent`) explores by walking to the nearest frontier. Here a
network picks the frontier instead: it reads the egocentric view of the episode's map
(:func:`map_view`: seen floor, blocked, explored, frontier and visited cells, where the
detector saw each ``CONTEXT`` type, and the breadth-first steps from the agent, ``VIEW`` cells
of 0.25 m a side, the agent facing up) with the goal, and scores blocks of 2x2 cells: the
nearest frontier's prior plus what it learned (:class:`ExplorerNet`); the agent walks to the
frontier cells of the best block until none is a frontier any more (:class:`Explorer`). The
rest of the agent (mapping, detection, approach, ``end``) is unchanged. This is the learned
global policy of modular ObjectNav agents (Chaplot et al. 2020, "Object Goal Navigation using
Goal-Oriented Semantic Exploration"; the potential over frontiers of Ramakrishnan et al.
2022, "PONI").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from common.errors import InputError
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
    """The view of an :class:`agents.mapper.EpisodeMap` m with ``steps`` (the map's breadth-first
    steps from the agent, -1 unreachable): ((P + K + 1, VIEW, VIEW) float32, the view index),
    K the context types the map notes (``m.context``,
    :meth:`agents.map_agent.MapPolicy.note_context`)."""
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
            raise InputError(f"{path}: no such file; fit one with `spoc-explorer fit`") from None
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file
            raise InputError(f"{path}: not a readable explorer ({type(e).__name__}); fit one "
                             "with `spoc-explorer fit`") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise InputError(f"{path}: field 'format' is not {FORMAT}: not an explorer saved by "
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
