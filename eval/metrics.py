"""Episode metrics and their aggregation.

One :class:`EpisodeResult` per evaluated episode; :func:`aggregate` turns a list of them into
the ``aggregated`` block of ``eval_info.json``: success rate with its 95% Wilson score
interval, the rate of episodes that reached a goal state (ended there or not), SPL, how the
episodes ended (:func:`outcomes`), and breakdowns by task, by target, by house size (number
of rooms) and by the shortest-path distance to the goal, and for the ObjectNav episodes that
ended away from the goal what the agent stopped at (:func:`stopped_at`). :func:`mcnemar_p`
compares two policies on the same episodes.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

NOTHING = "nothing"
"""``EpisodeResult.stopped_at`` when no object was within the success radius in the final frame."""

Z95 = 1.959963984540054
"""The standard normal quantile for a two-sided 95% interval."""


@dataclass(frozen=True)
class EpisodeResult:
    """One evaluated episode: the row written to ``eval_info.json['per_episode']``."""

    episode: int
    """Index of the episode in the evaluation set (rows are written in this order)."""
    house_id: str
    task: str
    target: str
    success: bool
    spl: float
    steps: int
    """Actions taken, ``end`` included."""
    path_length: float
    """Metres the agent actually moved (blocked moves add nothing)."""
    shortest_length: float
    """Metres of the shortest path from the start to the goal set (the oracle's)."""
    final_distance: float
    """Geodesic metres from the final state to the goal set (the oracle's distance field)."""
    collisions: int
    """``move_ahead`` actions that were blocked."""
    seed: int
    """The episode's seed (the random baseline draws from it)."""
    num_rooms: int
    reached_goal: bool = False
    """The agent stood in a goal state at some step: it would have succeeded had it ended
    there ("success with oracle stop"). Success without it is a navigation failure, with it
    a stopping one."""
    target_in_view: bool | None = None
    """ObjectNav: an instance of the target filled at least the success test's ``min_pixels``
    of the final frame, at any distance (None for RoomNav, and in rows written before this
    field)."""
    target_view_distance: float | None = None
    """Metres to the nearest such instance (None when there is none)."""
    target_pixels: int | None = None
    """ObjectNav: the most pixels any one instance of the target has in the final frame (None
    for RoomNav, and in rows written before this field)."""
    stopped_at: str | None = None
    """ObjectNav: the type of the object that fills the most of the final frame among those
    within the success test's ``max_distance`` with at least its ``min_pixels`` (what the agent
    stopped in front of; the target itself on a success), :data:`NOTHING` if none (None for
    RoomNav, and in rows written before this field)."""

    def row(self) -> dict:
        return asdict(self)


def spl(success: bool, shortest_length: float, path_length: float) -> float:
    """Success weighted by (normalised inverse) Path Length of one episode.

    ``S * l / max(p, l)`` with ``S`` the success indicator, ``l`` the shortest-path length from
    the start to the goal and ``p`` the length of the agent's path, both in metres
    (Anderson et al. 2018, "On Evaluation of Embodied Navigation Agents", arXiv:1807.06757,
    eq. 1; habitat-lab's ``SPL`` measure). An episode whose start already satisfies the goal
    (``l == 0``) scores ``S``.
    """
    if not success:
        return 0.0
    if shortest_length <= 0.0:
        return 1.0
    return shortest_length / max(path_length, shortest_length)


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (Wilson 1927).

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = successes / trials``;
    unlike the normal (Wald) interval it stays inside [0, 1] and is sensible at 0 or n
    successes. No trials give the uninformative ``(0, 1)``.
    """
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"successes={successes} must lie in [0, trials={trials}]")
    n, p = float(trials), successes / trials
    denom = 1.0 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes == 0 else max(0.0, (centre - half) / denom)
    hi = 1.0 if successes == trials else min(1.0, (centre + half) / denom)
    return lo, hi


def summarize(results: list[EpisodeResult]) -> dict:
    """Success rate (fraction), its 95% Wilson interval, SPL and mean episode statistics."""
    n = len(results)
    wins = sum(r.success for r in results)

    def mean(values: Iterable[float]) -> float:
        values = list(values)
        return float(sum(values) / len(values)) if values else 0.0

    return {
        "num_episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else 0.0,
        "success_ci95": list(wilson_interval(wins, n)),
        "reached_goal_rate": mean(r.reached_goal for r in results),
        "spl": mean(r.spl for r in results),
        "steps": mean(r.steps for r in results),
        "path_length": mean(r.path_length for r in results),
        "shortest_length": mean(r.shortest_length for r in results),
        "final_distance": mean(r.final_distance for r in results),
        "collisions": mean(r.collisions for r in results),
    }


def ended_away(r: EpisodeResult, max_steps: int) -> bool:
    """Whether a failed episode ended by ``end`` before ``max_steps`` (away from any goal),
    not by running out of steps."""
    return not r.success and r.steps < max_steps


def outcomes(results: list[EpisodeResult], max_steps: int) -> dict:
    """How the episodes ended, as fractions of all episodes: ``ended_away`` (``end`` away
    from any goal), ``timed_out`` (all ``max_steps`` used, not at a goal), ``left_goal``
    (stood in a goal state at some step and failed: a stopping failure, counted in the other
    two); and, over the failures that ended away, the median geodesic metres still to go, the
    median ratio of the path walked to the shortest path, and (ObjectNav rows that record it)
    the fraction that ended with the target in view and the median metres to it there
    (None without such rows)."""
    n = max(1, len(results))
    failed = [r for r in results if not r.success]
    away = [r for r in failed if ended_away(r, max_steps)]
    timed_out = [r for r in failed if not ended_away(r, max_steps)]
    ratios = [r.path_length / r.shortest_length for r in away if r.shortest_length > 0]
    viewed = [r.target_in_view for r in away if r.target_in_view is not None]
    seen = [r.target_view_distance for r in away if r.target_view_distance is not None]
    return {
        "ended_away": len(away) / n,
        "timed_out": len(timed_out) / n,
        "left_goal": sum(r.reached_goal for r in failed) / n,
        "ended_away_final_distance_median": statistics.median(
            r.final_distance for r in away) if away else 0.0,
        "ended_away_path_ratio_median": statistics.median(ratios) if ratios else 0.0,
        "ended_away_target_in_view": (sum(map(bool, viewed)) / len(viewed)) if viewed else None,
        "ended_away_view_distance_median": statistics.median(seen) if seen else None,
    }


DISTANCE_BINS = (2.0, 4.0, 8.0)
"""Edges (metres) of the shortest-path distance breakdown: 0-2, 2-4, 4-8, 8+ m."""


def distance_bin(metres: float, edges: tuple[float, ...] = DISTANCE_BINS) -> int:
    """The index of the distance bin of a shortest-path length (``len(edges)``: the last)."""
    return sum(metres >= edge for edge in edges)


def distance_label(index: int, edges: tuple[float, ...] = DISTANCE_BINS) -> str:
    """``"0-2 m"`` ... ``"8+ m"``: the label of a :func:`distance_bin` index."""
    lower = 0.0 if index == 0 else edges[index - 1]
    return f"{lower:g}+ m" if index == len(edges) else f"{lower:g}-{edges[index]:g} m"


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test of two policies on the same episodes: the probability,
    if neither is better, of discordant episodes splitting at least as unevenly as
    ``only_a`` (only the first succeeds) against ``only_b`` (the binomial test with p = 1/2)."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _breakdown(results: list[EpisodeResult], key: Callable[[EpisodeResult], object],
               label: Callable[[object], str] = str) -> dict:
    groups: dict[object, list[EpisodeResult]] = defaultdict(list)
    for r in results:
        groups[key(r)].append(r)
    return {label(k): summarize(groups[k]) for k in sorted(groups)}


def stopped_at(results: list[EpisodeResult], max_steps: int) -> dict[str, dict]:
    """ObjectNav episodes that ended away from the goal, by target (rows that record
    ``stopped_at``): ``ended_away`` (how many), ``target_in_view`` (of those, the fraction with
    the target in the final frame) and ``stopped_at`` (what the agent stood in front of:
    object type -> episodes, most first, :data:`NOTHING` included). Targets in name order."""
    groups: dict[str, list[EpisodeResult]] = defaultdict(list)
    for r in results:
        if ended_away(r, max_steps) and r.stopped_at is not None:
            groups[r.target].append(r)
    return {target: {"ended_away": len(rows),
                     "target_in_view": sum(bool(r.target_in_view) for r in rows) / len(rows),
                     "stopped_at": dict(Counter(r.stopped_at for r in rows).most_common())}
            for target, rows in sorted(groups.items())}


def aggregate(results: list[EpisodeResult], max_steps: int) -> dict:
    """The ``aggregated`` block: overall numbers, the outcomes, per-task, per-target
    ("task/target"), per-house-size (rooms) and per-distance breakdowns, and what ObjectNav
    episodes that ended away from the goal stopped at."""
    return {
        **summarize(results),
        "outcomes": outcomes(results, max_steps),
        "stopped_at": stopped_at(results, max_steps),
        "per_task": _breakdown(results, lambda r: r.task),
        "per_target": _breakdown(results, lambda r: f"{r.task}/{r.target}"),
        "by_num_rooms": _breakdown(results, lambda r: r.num_rooms),
        "by_distance": _breakdown(results, lambda r: distance_bin(r.shortest_length),
                                  distance_label),
    }
