"""The navigation graph: lattice states ``(i, j, h)`` joined by action-labelled edges.

:func:`build_nav_graph` is the model: a :class:`networkx.DiGraph` whose nodes are the
reachable states and whose edges carry the action (an index into :data:`sim.lattice.ACTIONS`),
the metres it moves and an exact integer ``weight``. :class:`NavTable` is the same graph as
arrays (one row per node, one column per motion action) that the oracle hands to
:mod:`scipy.sparse.csgraph`; a test checks that the two agree edge for edge.

Weights are integers so that ties are exact: a move costs its length in units of
``1e-9`` grid steps (``MOVE_UNITS`` straight, ``DIAGONAL_UNITS`` diagonally) plus
``ACTION_UNITS`` per action, so a minimum-weight path is shortest in metres first and has the
fewest actions among those. Blocked moves (self-loops) are not edges; ``end`` is not an edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix

from sim.lattice import ACTIONS, MOVE_AHEAD, ROTATE_LEFT, ROTATE_RIGHT, Lattice, heading_step

MOTIONS = (MOVE_AHEAD, ROTATE_LEFT, ROTATE_RIGHT)
"""The actions that are graph edges, in tie-break order."""
MOVE_UNITS = 1_000_000_000
"""Weight of one straight move (one grid step)."""
DIAGONAL_UNITS = round(MOVE_UNITS * math.sqrt(2))
"""Weight of one diagonal move (headings == 8)."""
ACTION_UNITS = 1
"""Weight added per action: among equally short paths, the one with fewest actions wins."""


def move_units(h: int, headings: int) -> int:
    """Weight of ``move_ahead`` at heading ``h``, without the per-action unit."""
    di, dj = heading_step(h, headings)
    return DIAGONAL_UNITS if di and dj else MOVE_UNITS


def build_nav_graph(lattice: Lattice) -> nx.DiGraph:
    """The state graph of a lattice's reachable states (the reference model).

    Nodes: ``(i, j, h)`` tuples. Edges: ``action`` (int), ``metres`` (float), ``weight`` (int).
    """
    graph = nx.DiGraph()
    states = lattice.reachable_states()
    graph.add_nodes_from(states)
    H, grid = lattice.agent.headings, lattice.agent.grid
    for s in states:
        for a in MOTIONS:
            t, ok = lattice.step(s, a)
            if not ok or t == s:
                continue
            units = move_units(s[2], H) if a == MOVE_AHEAD else 0
            graph.add_edge(s, t, action=a, metres=grid * units / MOVE_UNITS,
                           weight=units + ACTION_UNITS)
    return graph


@dataclass
class NavTable:
    """The navigation graph as arrays; node ``n`` is ``states[n]``.

    states: (N, 3) int32 ``(i, j, h)``; index: (ni, nj, H) int32 node of a state or -1;
    succ: (N, 3) int32 successor per motion action (:data:`MOTIONS` order), -1 if blocked;
    weight: (N, 3) int64 edge weights; metres: (N, 3) float64 metres moved.
    """

    lattice: Lattice
    states: np.ndarray
    index: np.ndarray
    succ: np.ndarray
    weight: np.ndarray
    metres: np.ndarray

    @classmethod
    def build(cls, lattice: Lattice) -> NavTable:
        """The table of a lattice's reachable states, in ``lattice.reachable_states()`` order."""
        H, grid = lattice.agent.headings, lattice.agent.grid
        cells = np.argwhere(lattice.reachable)  # (C, 2), row-major like reachable_states()
        n_cells = len(cells)
        states = np.empty((n_cells * H, 3), dtype=np.int32)
        states[:, :2] = np.repeat(cells, H, axis=0)
        states[:, 2] = np.tile(np.arange(H), n_cells)
        index = np.full((lattice.ni, lattice.nj, H), -1, dtype=np.int32)
        index[states[:, 0], states[:, 1], states[:, 2]] = np.arange(len(states))
        i, j, h = states.T
        succ = np.full((len(states), 3), -1, dtype=np.int32)
        weight = np.full((len(states), 3), ACTION_UNITS, dtype=np.int64)
        metres = np.zeros((len(states), 3))
        steps = np.array([heading_step(k, H) for k in range(H)])  # (H, 2)
        units = np.array([move_units(k, H) for k in range(H)], dtype=np.int64)  # (H,)
        ok = lattice.move_ok[i, j, h]
        ti, tj = i + steps[h, 0], j + steps[h, 1]
        succ[ok, 0] = index[ti[ok], tj[ok], h[ok]]
        weight[:, 0] += units[h]
        metres[:, 0] = grid * units[h] / MOVE_UNITS
        succ[:, 1] = index[i, j, (h - 1) % H]
        succ[:, 2] = index[i, j, (h + 1) % H]
        return cls(lattice, states, index, succ, weight, metres)

    def __len__(self) -> int:
        return len(self.states)

    def node(self, state: tuple[int, int, int]) -> int:
        """The node of a state; ValueError when it is not a reachable state."""
        i, j, h = (int(v) for v in state)
        n = self.index[i, j, h] if self.lattice.in_grid(i, j) and 0 <= h < self.index.shape[2] \
            else -1
        if n < 0:
            raise ValueError(f"state {(i, j, h)} is not a reachable lattice state of house "
                             f"{self.lattice.scene.house_id}")
        return int(n)

    def state(self, node: int) -> tuple[int, int, int]:
        """The ``(i, j, h)`` of a node."""
        i, j, h = self.states[node]
        return int(i), int(j), int(h)

    def reverse_matrix(self) -> csr_matrix:
        """(N, N) sparse weights of the reversed graph: entry (t, s) is the edge s -> t."""
        src, col = np.nonzero(self.succ >= 0)
        dst = self.succ[src, col]
        return csr_matrix((self.weight[src, col].astype(np.float64), (dst, src)),
                          shape=(len(self), len(self)))

    def to_networkx(self) -> nx.DiGraph:
        """The same graph as :func:`build_nav_graph` builds."""
        graph = nx.DiGraph()
        graph.add_nodes_from(self.state(n) for n in range(len(self)))
        for n, a in zip(*np.nonzero(self.succ >= 0)):
            graph.add_edge(self.state(n), self.state(self.succ[n, a]), action=MOTIONS[a],
                           metres=float(self.metres[n, a]), weight=int(self.weight[n, a]))
        return graph


def action_name(action: int) -> str:
    """The name of an action index."""
    return ACTIONS[action]
