"""ProcTHOR houses from the real ``procthor`` package, without Unity, reproducibly.

:func:`generate_house` runs procthor's ``HouseGenerator`` (room specs of ProcTHOR-10K by
default) with :class:`~datagen.houses.standin.GeometricController` in place of AI2-THOR,
after :mod:`datagen.houses.procthor_patches` has made it deterministic and fast. The house
comes back as schema 1.0.0 with ``metadata.houseId == f"{split}-{seed}-{index}"``.

Seeds. procthor seeds the *global* ``random`` and ``np.random`` with the house seed (and
draws from them throughout), so one call must own its process while it runs: generate one
house per call, in worker processes for parallel runs. The house seed is
:func:`house_seed`, a 32-bit layout (numpy seeds must be < 2**32) with disjoint ranges::

    bits 31-30: split   (train 0, val 1, test 2)   -> SPLIT_SEED_OFFSETS
    bits 29-27: attempt (0-7; resampling after a failed validation)
    bits 26-20: dataset seed (0-127)
    bits 19-0 : house index (0 - 1,048,575)

so no two (split, seed, index, attempt) share a house seed, and evaluation splits never
reuse a training seed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from typing import Any

from datagen.houses import procthor_imports, procthor_patches
from datagen.houses.standin import GeometricController
from datagen.houses.validate import house_report
from sim.house import upgrade_house
from sim.house_check import HouseError, check_house

GENERATOR_VERSION = "1.0.0"
"""Bump when generated houses change for the same (split, seed, index)."""

SPLITS = ("train", "val", "test")
INDEX_BITS, SEED_BITS, ATTEMPT_BITS = 20, 7, 3
SPLIT_SHIFT = INDEX_BITS + SEED_BITS + ATTEMPT_BITS  # 30
SPLIT_SEED_OFFSETS = {split: i << SPLIT_SHIFT for i, split in enumerate(SPLITS)}
"""First house seed of each split; each split owns [offset, offset + 2**30)."""
MAX_ATTEMPTS = 1 << ATTEMPT_BITS

PROCTHOR10K = "procthor10k"
"""Name of the ProcTHOR-10K room-spec mix (procthor's PROCTHOR10K_ROOM_SPEC_SAMPLER)."""

RoomSpecMix = str | Mapping[str, float]

_CONTROLLER = GeometricController()


def house_seed(split: str, seed: int, index: int, attempt: int = 0) -> int:
    """The procthor seed of house ``index`` of ``split`` for dataset ``seed``; see module doc."""
    if split not in SPLIT_SEED_OFFSETS:
        raise ValueError(f"split={split!r}: use one of {', '.join(SPLITS)}")
    for name, value, bits in (("seed", seed, SEED_BITS), ("index", index, INDEX_BITS),
                              ("attempt", attempt, ATTEMPT_BITS)):
        if not 0 <= value < (1 << bits):
            raise ValueError(f"{name}={value} is out of range: use 0 <= {name} < {1 << bits}")
    return (SPLIT_SEED_OFFSETS[split] | attempt << (INDEX_BITS + SEED_BITS)
            | seed << INDEX_BITS | index)


def house_id(split: str, seed: int, index: int) -> str:
    """The stable id of a generated house."""
    return f"{split}-{seed}-{index}"


def procthor_version() -> str:
    return importlib_metadata.version("procthor")


def room_spec_sampler(room_spec_mix: RoomSpecMix = PROCTHOR10K):
    """procthor's ``RoomSpecSampler`` for a mix: ``"procthor10k"`` (its own weights) or a
    mapping of ProcTHOR-10K ``room_spec_id`` -> sampling weight (e.g. small houses only)."""
    procthor_imports.load()
    from procthor.generation.room_specs import PROCTHOR10K_ROOM_SPEC_SAMPLER as P10K
    from procthor.generation.room_specs import RoomSpecSampler

    if isinstance(room_spec_mix, str):
        if room_spec_mix != PROCTHOR10K:
            raise ValueError(f"room_spec_mix={room_spec_mix!r}: give {PROCTHOR10K!r} or a "
                             "mapping of room_spec_id -> weight")
        return P10K
    unknown = sorted(set(room_spec_mix) - set(P10K.room_spec_map))
    if unknown or not room_spec_mix:
        raise ValueError(f"room_spec_mix: unknown room_spec_id(s) {unknown}; choose from "
                         f"{sorted(P10K.room_spec_map)}")
    if any(w <= 0 for w in room_spec_mix.values()):
        raise ValueError(f"room_spec_mix={dict(room_spec_mix)}: weights must be > 0")
    ids = sorted(room_spec_mix)
    sampler = RoomSpecSampler(room_specs=[P10K[i] for i in ids])
    sampler.weights = [float(room_spec_mix[i]) for i in ids]
    return sampler


def room_spec_mix_weights(room_spec_mix: RoomSpecMix = PROCTHOR10K) -> dict[str, float]:
    """room_spec_id -> weight of a mix, as recorded in meta.json."""
    sampler = room_spec_sampler(room_spec_mix)
    return {s.room_spec_id: float(w) for s, w in zip(sampler.room_specs, sampler.weights)}


def _plain(obj: Any) -> Any:
    """JSON round trip turning numpy scalars into Python numbers."""
    def default(o: Any) -> Any:
        if hasattr(o, "item"):
            return o.item()
        raise TypeError(f"house field of type {type(o).__name__} is not JSON serialisable")

    return json.loads(json.dumps(obj, default=default))


def warm_up(split: str) -> None:
    """Apply the procthor fixes and fill its asset-group cache for ``split`` (the first house
    of a process pays ~2 s for this otherwise; benchmarks call it before timing)."""
    procthor_patches.apply()
    procthor_patches.warm_asset_group_cache(split, _CONTROLLER)


def sample_procthor_house(split: str, seed: int, room_spec_mix: RoomSpecMix = PROCTHOR10K
                          ) -> dict:
    """procthor's raw (schema 0.0.1) house for a procthor seed. Reseeds the global RNGs."""
    procthor_imports.load()
    from procthor.generation import HouseGenerator

    warm_up(split)
    _CONTROLLER.begin_house()
    generator = HouseGenerator(split=split, seed=seed, controller=_CONTROLLER,
                               room_spec_sampler=room_spec_sampler(room_spec_mix))
    house, _ = generator.sample()
    return _plain(house.data)


def generate_house(split: str, seed: int, index: int,
                   room_spec_mix: RoomSpecMix = PROCTHOR10K, attempt: int = 0) -> dict:
    """House ``index`` of dataset ``seed`` in ``split``: schema 1.0.0, passes check_house.

    Byte-identical ``write_house_json`` output for the same arguments in any process, order
    or PYTHONHASHSEED. Reseeds the global ``random``/``np.random`` (see module doc).
    ``attempt`` > 0 gives the replacement drawn when an earlier attempt failed validation.
    """
    hseed = house_seed(split, seed, index, attempt)
    house = upgrade_house(sample_procthor_house(split, hseed, room_spec_mix))
    house["metadata"].update({
        "houseId": house_id(split, seed, index),
        "generator": {"name": "procthor", "version": GENERATOR_VERSION,
                      "procthorVersion": procthor_version(), "split": split,
                      "datasetSeed": seed, "index": index, "attempt": attempt,
                      "houseSeed": hseed},
    })
    check_house(house, house_id(split, seed, index), None)
    return house


# --------------------------------------------------------------------------- validation

MIN_REACHABLE_CELLS_PER_ROOM = 5
"""procthor's ``House.validate`` rule: at least 5 reachable agent positions per room."""


def house_problem(house: dict) -> str | None:
    """Why a generated house must be resampled (a short reason for meta.json), or None:
    :func:`sim.house.check_house` must pass, then
    :func:`datagen.houses.validate.house_report` must say the rooms are connected and there
    are enough reachable cells."""
    try:
        check_house(house, house.get("metadata", {}).get("houseId", "<generated>"), None)
    except HouseError as e:
        return f"check_house:{e.field}"
    report = house_report(house)
    if not report["connected"]:
        return "disconnected_rooms"
    cells = report["reachable_cells"]
    if isinstance(cells, Mapping):
        enough = min(cells.values(), default=0) >= MIN_REACHABLE_CELLS_PER_ROOM
    else:
        enough = cells >= MIN_REACHABLE_CELLS_PER_ROOM * len(house["rooms"])
    return None if enough else "too_few_reachable_cells"


def generate_valid_house(split: str, seed: int, index: int,
                         room_spec_mix: RoomSpecMix = PROCTHOR10K) -> tuple[dict, list[str]]:
    """The first attempt (0, 1, ...) whose house passes :func:`house_problem`, and the reasons
    the earlier attempts failed. Raises RuntimeError after MAX_ATTEMPTS failures."""
    failures: list[str] = []
    for attempt in range(MAX_ATTEMPTS):
        try:
            house = generate_house(split, seed, index, room_spec_mix, attempt)
        except Exception as e:  # procthor raises bare Exception/AssertionError when it fails
            failures.append(f"procthor:{type(e).__name__}")
            continue
        problem = house_problem(house)
        if problem is None:
            return house, failures
        failures.append(problem)
    raise RuntimeError(f"house {house_id(split, seed, index)}: all {MAX_ATTEMPTS} attempts "
                       f"failed ({', '.join(failures)}); try another --seed or room-spec mix")
