"""Research probes: switches that measure what a part of an agent is worth, kept out of the
agents' product settings. None is on by default, and a run with any on is a measurement, not
a deployable result (its ``eval_info.json`` records them under ``run.probe``).

Some are privileged (they read what a deployed agent cannot: the simulator's instance ids or
the shortest-path oracle): the harness gives those inputs only to policies that ask for them
(``uses_ids``, ``uses_oracle``). This module also holds the oracle's view of a map agent's
frontiers (:func:`frontier_costs`), which is the learned explorer's training target
(``spoc-explorer collect``) as well as the oracle-explorer probe's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.explorer import (
    VIEW,
    block_costs,
    map_view,
    pick_block,
    reachable_frontier,
)
from datagen.navgraph import MOVE_UNITS
from sim.lattice import heading_step


@dataclass(frozen=True)
class ProbeConfig:
    """Research probes of ``spoc-eval run`` (``--probe.*``); all off by default."""

    memory_steps: int | None = None
    """Checkpoints: clear the policy's recurrent state every this many steps of an episode
    (its previous action is kept), as a training chunk of that length starts mid-episode; how
    much worse it gets says how far back the policy uses its memory (None: the whole
    episode, as deployed)."""
    blocked_input: bool = True
    """Checkpoints: tell the policy when its last move was blocked (as in training);
    ``false`` withholds it (an ablation of the policy's blocked-move input)."""
    map_forget_steps: int = 0
    """``--policy mapper``: start the map and the target memory again every this many steps,
    keeping the pose (0: keep them for the whole episode, as deployed)."""
    simulator_detections: bool = False
    """``--policy mapper``, privileged: find the target in the simulator's instance ids
    instead of with the colour detector, to measure what the detector's errors cost."""
    oracle_explorer: bool = False
    """``--policy mapper``, privileged: pick the frontier by the learned explorer's training
    target (the map steps to it plus the shortest-path oracle's moves from it to the goal),
    to measure what exploring well is worth."""
    appearance: float = 0.0
    """The embedded backend: render every episode under a look drawn from (seed, episode)
    with every part of :class:`sim.appearance.AppearanceConfig` at this fraction of its
    bounds (0-1), to measure how a policy copes with a change of look (0: the houses' own,
    as deployed)."""

    def active(self) -> dict:
        """The probes switched on, by name (empty: none)."""
        return {k: v for k, v in vars(self).items() if v != getattr(ProbeConfig, k)}

    def policy_probes(self) -> list[str]:
        """The names of the probes on that apply to checkpoint policies."""
        return [k for k in ("memory_steps", "blocked_input") if k in self.active()]

    def mapper_probes(self) -> list[str]:
        """The names of the probes on that apply to the map agent."""
        return [k for k in ("map_forget_steps", "simulator_detections", "oracle_explorer")
                if k in self.active()]


def oracle_cell_moves(table, oracle) -> np.ndarray:
    """(ni, nj) float64: the oracle's moves from each lattice cell to the nearest goal state
    (least over headings, rotations not counted; a cell that is no state: the least of its
    eight neighbours' + 1; inf where none)."""
    d = oracle.dist[np.maximum(table.index, 0)]
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



class OracleExplorer:
    """A probe (privileged): the block whose frontier cells cost least by
    :func:`frontier_costs`, the fitted explorer's target. Reads ``m.privileged``, which the
    map agent fills from the harness's ``obs["privileged"]`` for an explorer that
    ``uses_oracle``."""

    uses_oracle = True

    def choose(self, m, goal: str, steps: np.ndarray) -> np.ndarray | None:
        if m.privileged is None:
            return None
        view, index = map_view(m, steps)
        costs = block_costs(frontier_costs(view, index, steps, m.privileged, m.cfg.size))
        if not np.isfinite(costs).any():
            return None
        return pick_block(m, view, index, steps, -costs)
