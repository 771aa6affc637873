"""What the training loaders read, against what info.json lists.

Two checks, both limited by one fraction (``data.max_missing_fraction``): up to it each loss
is a warning that names it, past it a one-line :class:`DatasetMismatchError` naming the
dataset, the split, the shards and the fix.

- When a data module is made, :func:`check_shards` compares each split's shards on disk with
  info.json's shard table: a shard the table lists (or the split was registered with,
  ``num_shards``) that is not on disk is missing, and a shard on disk that the table does not
  list is unlisted (read, but no episode count vouches for it). The fraction is of the
  split's shards.
- As the streams read, each finished reading of a shard is compared with the episodes
  info.json gives it (:class:`EpisodeLedger`). Python's ``tarfile`` takes a damaged header
  after the first member for the end of the archive and raises nothing, so a shard that
  yields fewer samples than listed has lost the rest. The fraction is of the split's listed
  episodes; each shard's shortfall counts once, however often training revisits it, while
  the batches' ``num_lost`` counts it at every visit.

Neither check re-reads or hashes a shard: ``spoc-datagen verify`` is the full check.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from datagen.constants import INFO_FILE, SHARD_GLOB
from datagen.shards import shard_name
from training.data.info import DataOptionError, DatasetMismatchError

DEFAULT_MAX_MISSING_FRACTION = 0.01
"""The default ``data.max_missing_fraction``: a split may lose at most 1% of its shards, and
of its episodes, with a warning; more is an error."""
NAMES_SHOWN = 4
"""Shards a message names before it says how many more."""


class MissingShardsError(DatasetMismatchError):
    """More of a split's shards are missing on disk (or unlisted) than the limit allows."""


class LostEpisodesError(DatasetMismatchError):
    """Shards yielded fewer episodes than info.json lists, past the limit."""


class UnreadableShardsError(DatasetMismatchError):
    """A stream read nothing usable for too long: the shards look unreadable."""


def check_fraction(value: float, where: str = "data.max_missing_fraction") -> float:
    """``value`` if it is a fraction in [0, 1], else a one-line DataOptionError."""
    if not 0.0 <= float(value) <= 1.0:
        raise DataOptionError(f"{where}: {value} is not a fraction in [0, 1] (0: refuse any "
                              "missing shard or episode; 1: only warn)")
    return float(value)


def fix_hint(root: str | Path) -> str:
    """What to do about a damaged dataset, for the end of a message."""
    return (f"run `spoc-datagen verify {root}` and rerun `spoc-datagen episodes` for the "
            "split, which rewrites missing and damaged shards")


def named(names: list[str]) -> str:
    """``a, b, c`` for a few names, ``a, b, c, d and 6 more`` for many."""
    shown = ", ".join(names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass
class SplitShards:
    """One split's shards on disk against info.json's table."""

    split: str
    listed: dict[str, int]
    """Shard name -> the episodes info.json lists for it."""
    on_disk: list[str]
    """Shard names found on disk, sorted."""
    registered: int = 0
    """The shards the split was registered with (``num_shards``)."""
    missing: list[str] = field(init=False)
    """Listed or registered shards that are not on disk."""
    unlisted: list[str] = field(init=False)
    """Shards on disk that info.json does not list."""

    def __post_init__(self):
        expected = set(self.listed) | {shard_name(k) for k in range(self.registered)}
        disk = set(self.on_disk)
        self.missing = sorted(expected - disk)
        self.unlisted = sorted(disk - set(self.listed))

    @property
    def total(self) -> int:
        """Shards the split should have, and shards it has, together."""
        return len(set(self.listed) | set(self.on_disk) | set(self.missing))

    @property
    def fraction(self) -> float:
        """The fraction of the split's shards missing or unlisted."""
        return (len(self.missing) + len(self.unlisted)) / max(1, self.total)

    def problems(self) -> str:
        """``3 of 6 shards ... missing (names); 1 ... not listed (names)``, or ''."""
        out = []
        if self.missing:
            out.append(f"{len(self.missing)} of its {self.total} shards are missing on disk "
                       f"({named(self.missing)})")
        if self.unlisted:
            out.append(f"{len(self.unlisted)} shard(s) on disk are not listed in {INFO_FILE} "
                       f"({named(self.unlisted)})")
        return " and ".join(out)


def split_shards(root: str | Path, info: dict, split: str) -> SplitShards:
    """The split's shards on disk against info.json's ``splits.{split}`` entry (its fields
    checked by :func:`training.data.info.check_info`)."""
    entry = info.get("splits", {}).get(split) or {}
    listed = {name: sidecar["episodes"] for name, sidecar in entry.get("shards", {}).items()}
    on_disk = sorted(p.name for p in (Path(root) / split).glob(SHARD_GLOB))
    return SplitShards(split, listed, on_disk, entry.get("num_shards", 0))


def check_shards(root: str | Path, info: dict, splits: list[str], max_fraction: float
                 ) -> dict[str, tuple[str, int]]:
    """Compare the splits' shards on disk with info.json: past ``max_fraction`` of a split's
    shards missing or unlisted, a one-line :class:`MissingShardsError`; below it a warning
    naming them. Returns shard path -> (split, episodes listed) of the listed shards on
    disk (what :class:`EpisodeLedger` checks the reads against)."""
    root = Path(root)
    episodes = {}
    for split in dict.fromkeys(splits):
        shards = split_shards(root, info, split)
        problems = shards.problems()
        if problems and shards.fraction > max_fraction:
            raise MissingShardsError(
                f"{root}: split '{split}': {problems}, more than data.max_missing_fraction="
                f"{max_fraction:g} of its shards; {fix_hint(root)} (or raise "
                "--data.max_missing_fraction to train on what is there)")
        if problems:
            warnings.warn(f"{root}: split '{split}': {problems}; training reads the shards on "
                          f"disk; {fix_hint(root)}", stacklevel=2)
        for name in set(shards.listed) & set(shards.on_disk):
            episodes[str(root / split / name)] = (split, shards.listed[name])
    return episodes


class EpisodeLedger:
    """Shard readings against info.json's episode counts, in the process that consumes the
    batches (a loader's workers report each finished reading in their batches'
    ``shard_reads``, :class:`training.data.streams.EpochDataLoader`).

    ``episodes``: shard path -> (split, episodes listed) (:func:`check_shards`). A shard that
    yields fewer is warned about once, naming it and the episodes lost; past ``max_fraction``
    of its split's listed episodes lost, :meth:`record` raises :class:`LostEpisodesError`.
    """

    def __init__(self, root: str | Path, episodes: dict[str, tuple[str, int]],
                 max_fraction: float):
        self.root, self.episodes, self.max_fraction = Path(root), dict(episodes), max_fraction
        self.totals: dict[str, int] = {}
        for split, count in self.episodes.values():
            self.totals[split] = self.totals.get(split, 0) + count
        self.lost: dict[str, int] = {}
        """Shard path -> the most episodes one reading of it fell short by."""

    def shortfall(self, url: str, read: int) -> int:
        """Episodes a reading of ``url`` that yielded ``read`` samples fell short by (0 for a
        shard info.json does not list)."""
        if url not in self.episodes:
            return 0
        return max(0, self.episodes[url][1] - int(read))

    def lost_in(self, split: str) -> int:
        """Episodes of ``split`` lost so far (each shard's shortfall once)."""
        return sum(n for url, n in self.lost.items() if self.episodes[url][0] == split)

    def record(self, url: str, read: int) -> int:
        """One reading of a shard to its end, which yielded ``read`` episodes; returns its
        shortfall. Warns the first time a shard falls short; raises while its split's loss
        is past the limit."""
        short = self.shortfall(url, read)
        if short == 0:
            return 0
        new = short > self.lost.get(url, 0)
        if new:
            self.lost[url] = short
        split, listed = self.episodes[url]
        lost, total = self.lost_in(split), self.totals[split]
        what = (f"{url}: yielded {listed - self.lost[url]} of the {listed} episodes "
                f"{INFO_FILE} lists ({self.lost[url]} lost: the tar ends early, damaged or cut "
                "short)")
        if lost / max(1, total) > self.max_fraction:
            shards = sorted(u for u in self.lost if self.episodes[u][0] == split)
            raise LostEpisodesError(
                f"{what}; split '{split}' of {self.root} has lost {lost} of its {total} "
                f"episodes in {named([Path(u).name for u in shards])}, more than "
                f"data.max_missing_fraction={self.max_fraction:g}; {fix_hint(self.root)} (or "
                "raise --data.max_missing_fraction to train on what is there)")
        if new:
            warnings.warn(f"{what}; split '{split}' has lost {lost} of its {total} episodes "
                          f"so far; {fix_hint(self.root)}", stacklevel=2)
        return short
