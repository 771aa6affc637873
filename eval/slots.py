"""The evaluation's episode set, planned from ``(seed, number of houses, episodes)`` alone:
slot ``k`` belongs to one house and draws its episode with seeds derived from ``(seed, k,
attempt)`` (:func:`episode_seed`; an attempt that yields no valid episode is retried with the
next attempt seed). The policy plays no part, so every policy meets the same episodes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpisodeSlot:
    """One planned evaluation episode: its index, the house it is drawn in, its seeds."""

    index: int
    house: int
    """Position of the house in the house file (0-based)."""
    seed: int
    """The evaluation seed; attempt ``a`` samples from :func:`episode_seed` (seed, index, a)."""


def episode_seed(seed: int, index: int, attempt: int) -> int:
    """A 32-bit seed for one sampling attempt of one slot (independent streams)."""
    return int(np.random.SeedSequence([seed, index, attempt]).generate_state(1)[0])


def plan_slots(num_houses: int, episodes: int, seed: int) -> list[EpisodeSlot]:
    """``episodes`` slots spread evenly over the houses, house-major (slots of a house are
    consecutive, so a worker's share touches few houses)."""
    per_house = [episodes // num_houses + (h < episodes % num_houses) for h in range(num_houses)]
    houses = [h for h, n in enumerate(per_house) for _ in range(n)]
    return [EpisodeSlot(k, h, seed) for k, h in enumerate(houses)]


def video_slots(episodes: int, videos: int) -> frozenset[int]:
    """Slots whose episodes are filmed: ``videos`` of them, evenly spread over the set."""
    if videos <= 0 or episodes <= 0:
        return frozenset()
    return frozenset(int(k) for k in np.linspace(0, episodes - 1, min(videos, episodes)).round())
