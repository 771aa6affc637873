"""The shortest-path expert: distance-to-goal of every state and the action that follows it.

A multi-source Dijkstra from the goal set over the reversed navigation graph
(:mod:`scipy.sparse.csgraph` on :class:`~datagen.navgraph.NavTable`) gives each state's
integer distance to the nearest goal. The expert action at a goal is ``end``; elsewhere it is
the motion minimising ``weight + distance(successor)``, the first in :data:`MOTIONS` order on a
tie. Weights count metres first and actions second (see :mod:`datagen.navgraph`), so the
expert's path is a geodesic (SPL 1.0) with the fewest actions among geodesics. Because every
state has a distance, :meth:`Oracle.expert_action` answers off the expert's path (DAgger).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import dijkstra

from datagen.navgraph import MOTIONS, NavTable
from sim.lattice import END

State = tuple[int, int, int]


@dataclass(frozen=True)
class ExpertPath:
    """The expert's episode from a start: ``states[t]`` is where action ``actions[t]`` is taken.

    T = len(actions) = len(states); the last action is END at a goal state.
    """

    states: list[State]
    actions: list[int]
    metres: float
    """Metres moved: the geodesic distance from the start to the nearest goal."""


class Oracle:
    """Distance-to-goal and expert actions for one goal set on one navigation table."""

    def __init__(self, table: NavTable, goal: np.ndarray):
        """goal: (N,) bool over the table's nodes; at least one must be true."""
        goal = np.asarray(goal, dtype=bool)
        if goal.shape != (len(table),):
            raise ValueError(f"goal mask has shape {goal.shape}, expected ({len(table)},)")
        if not goal.any():
            raise ValueError("the goal set is empty: no reachable state satisfies the task")
        self.table, self.goal = table, goal
        self.dist = distances_to_goal(table, goal)  # (N,) float64 of exact integers, inf if none

    def distance(self, state: State) -> float:
        """Integer weight from ``state`` to the nearest goal (inf when none is reachable)."""
        return float(self.dist[self.table.node(state)])

    def is_goal(self, state: State) -> bool:
        return bool(self.goal[self.table.node(state)])

    def expert_action(self, state: State) -> int:
        """The expert's action (index into ACTIONS) at any reachable state."""
        return self._action(self.table.node(state))

    def _action(self, n: int) -> int:
        if self.goal[n]:
            return END
        if not np.isfinite(self.dist[n]):
            raise ValueError(f"no goal is reachable from state {self.table.state(n)}")
        succ = self.table.succ[n]
        cost = np.where(succ >= 0, self.table.weight[n] + self.dist[np.maximum(succ, 0)], np.inf)
        return MOTIONS[int(np.argmin(cost))]  # argmin takes the first of equal costs

    def path(self, start: State, max_steps: int | None = None) -> ExpertPath:
        """The expert's states and actions from ``start`` to ``end`` at a goal."""
        n = self.table.node(start)
        states, actions, metres = [], [], 0.0
        while True:
            a = self._action(n)
            states.append(self.table.state(n))
            actions.append(a)
            if a == END:
                return ExpertPath(states, actions, metres)
            if max_steps is not None and len(actions) >= max_steps:
                raise ValueError(f"expert path from {start} is longer than {max_steps} steps")
            col = MOTIONS.index(a)
            metres += float(self.table.metres[n, col])
            n = int(self.table.succ[n, col])


def distances_to_goal(table: NavTable, goal: np.ndarray) -> np.ndarray:
    """(N,) float64: minimum path weight from each node to any goal node (inf if none)."""
    sources = np.flatnonzero(goal)
    return dijkstra(table.reverse_matrix(), directed=True, indices=sources, min_only=True)
