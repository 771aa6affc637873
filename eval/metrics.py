"""Episode metrics and their aggregation.

One :class:`EpisodeResult` per evaluated episode; :func:`aggregate` turns a list of them into
the ``aggregated`` block of ``eval_info.json``: success rate with its 95% Wilson score
interval, the rate of episodes that reached a goal state (ended there or not), SPL with its
95% bootstrap interval, how the episodes ended (:func:`outcomes`), and breakdowns by task, by
target, by house size (number of rooms) and by the shortest-path distance to the goal, and for
the ObjectNav episodes that ended away from the goal what the agent stopped at
(:func:`stopped_at`). :func:`analysis` recomputes that block from an ``eval_info`` dict's rows.

Two policies on the same episodes are compared by :func:`paired`: the exact McNemar test on
success (:func:`mcnemar_p`) and, on SPL, the mean paired difference with its bootstrap
interval (:func:`bootstrap_interval`) and the Wilcoxon signed-rank test (:func:`wilcoxon_p`).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

NOTHING = "nothing"
"""``EpisodeResult.stopped_at`` when no object was within the success radius in the final frame."""

Z95 = 1.959963984540054
"""The standard normal quantile for a two-sided 95% interval."""
RESAMPLES = 10_000
"""Bootstrap resamples of every interval that has no closed form (SPL's)."""
BOOTSTRAP_SEED = 0
"""Seed of the bootstrap's resampling: the same rows give the same interval on every run."""


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


def bootstrap_interval(values: Iterable[float], resamples: int = RESAMPLES,
                       seed: int = BOOTSTRAP_SEED, confidence: float = 0.95
                       ) -> tuple[float, float]:
    """The percentile bootstrap interval of a mean (Efron 1979, "Bootstrap methods: another
    look at the jackknife", Ann. Statist. 7(1); Efron & Tibshirani 1993, ch. 13).

    ``resamples`` resamples of the ``n`` values, each ``n`` draws with replacement from
    ``np.random.default_rng(seed)``; the interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of their means. The same values in the same order give
    the same interval. Applied to paired differences it is the paired bootstrap. Equal values
    give that value at both ends (no rounding in the means); no values give ``(0, 0)``.
    """
    x = np.asarray(list(values), dtype=np.float64)  # (n,)
    n = len(x)
    if n == 0:
        return 0.0, 0.0
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)  # (resamples,)
    chunk = max(1, (1 << 20) // n)  # about 4 MiB of indices at a time
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(rows, n), dtype=np.int32)  # (rows, n)
        means[start:start + rows] = x[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def summarize(results: list[EpisodeResult]) -> dict:
    """Success rate (fraction), its 95% Wilson interval, SPL, its 95% bootstrap interval
    (:func:`bootstrap_interval`) and mean episode statistics."""
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
        "spl_ci95": list(bootstrap_interval([r.spl for r in results])),
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


HOW_ENDED = ("success", "ended away", "timed out")
"""How an episode ended (:func:`how_ended`)."""


def how_ended(r: EpisodeResult, max_steps: int) -> str:
    """``success``, ``ended away`` (a failure that ended by ``end``: :func:`ended_away`) or
    ``timed out`` (a failure that used all ``max_steps``)."""
    if r.success:
        return HOW_ENDED[0]
    return HOW_ENDED[1] if ended_away(r, max_steps) else HOW_ENDED[2]


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
    """Two-sided exact McNemar test of two policies on the same episodes (McNemar 1947, "Note
    on the sampling error of the difference between correlated proportions or percentages",
    Psychometrika 12(2)): the probability, if neither is better, of the discordant episodes
    splitting at least as unevenly as ``only_a`` (only the first succeeds) against ``only_b``:
    the two-sided binomial test with p = 1/2 on the discordant pairs
    (``scipy.stats.binomtest(only_a, only_a + only_b).pvalue``), in exact integer arithmetic."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def wilcoxon_p(differences: Iterable[float]) -> tuple[float, float]:
    """(statistic, two-sided p) of the Wilcoxon signed-rank test that paired differences are
    symmetric about zero (Wilcoxon 1945, "Individual comparisons by ranking methods",
    Biometrics Bulletin 1(6)), by ``scipy.stats.wilcoxon``. Zero differences are dropped, as
    Wilcoxon did; with none left there is no evidence either way: ``(0.0, 1.0)``. The p-value
    is exact for up to 50 differences without ties, by an exhaustive permutation for up to 13
    with ties, else from the normal approximation with the tie correction, so it does not
    depend on a random state. (scipy.stats is imported here: it takes a second, and only
    comparisons need it.)"""
    from scipy import stats

    d = np.asarray(list(differences), dtype=np.float64)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0, 1.0
    result = stats.wilcoxon(d, zero_method="wilcox", correction=False, method="auto")
    return float(result.statistic), float(result.pvalue)


def paired(reference: list[EpisodeResult], other: list[EpisodeResult],
           resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """``other`` against ``reference`` on the same episodes, row ``i`` of each being the same
    episode. Success: the episodes only ``other`` succeeds in (``only_run``) and only
    ``reference`` does (``only_reference``), the difference of the success rates and the exact
    McNemar p (:func:`mcnemar_p`). SPL (Anderson et al. 2018): the mean of the per-episode
    differences ``other - reference`` with its paired bootstrap interval
    (:func:`bootstrap_interval` of the differences), the episodes where ``other``'s SPL is
    higher (``better``), lower (``worse``) or equal (``ties``), and the Wilcoxon signed-rank
    test of the differences (:func:`wilcoxon_p`)."""
    if len(reference) != len(other):
        raise ValueError(f"{len(reference)} and {len(other)} rows: not paired")
    n = max(1, len(reference))
    only_run = sum(b.success and not a.success for a, b in zip(reference, other))
    only_ref = sum(a.success and not b.success for a, b in zip(reference, other))
    d = np.array([b.spl - a.spl for a, b in zip(reference, other)], dtype=np.float64)  # (n,)
    statistic, p = wilcoxon_p(d)
    return {
        "success": {"difference": (only_run - only_ref) / n, "only_run": only_run,
                    "only_reference": only_ref, "mcnemar_p": mcnemar_p(only_ref, only_run)},
        "spl": {"difference": float(d.mean()) if len(d) else 0.0,
                "ci95": list(bootstrap_interval(d, resamples, seed)),
                "better": int((d > 0).sum()), "worse": int((d < 0).sum()),
                "ties": int((d == 0).sum()), "wilcoxon_statistic": statistic,
                "wilcoxon_p": p},
    }


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


def episode_results(info: dict) -> list[EpisodeResult]:
    """The rows of an ``eval_info`` dict as :class:`EpisodeResult` (TypeError on a bad row)."""
    return [EpisodeResult(**row) for row in info["per_episode"]]


def analysis(info: dict) -> dict:
    """The ``aggregated`` block recomputed from the episode rows of an ``eval_info`` dict."""
    return aggregate(episode_results(info), int(info["run"]["max_steps"]))
