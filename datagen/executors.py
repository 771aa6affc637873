"""Where shards are written: in this process, a local process pool, or a Ray cluster.

Every executor calls :func:`datagen.shards.write_shard` once per shard index, so they all
produce the same bytes. One process per core (simulation work does not batch on a CPU).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from common.workers import exit_with_parent
from datagen.config import ConfigError, DatagenConfig
from datagen.episodes import HouseFile
from datagen.shards import ShardResult, write_shard

Progress = Callable[[int], None]


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _write_one(cfg: DatagenConfig, k: int, out_dir: str, houses: HouseFile) -> ShardResult:
    """A pool/Ray task: one shard, in a worker process."""
    return write_shard(cfg, k, out_dir, houses)


def run_local(cfg: DatagenConfig, shards: list[int], out_dir: str | os.PathLike,
              houses: HouseFile, workers: int = 0, progress: Progress | None = None
              ) -> list[ShardResult]:
    """Write ``shards`` with ``workers`` processes (0: one per core); in this process when
    one worker or one shard is enough (progress is then reported per episode)."""
    workers = min(workers or default_workers(), len(shards))
    if workers <= 1:
        return [write_shard(cfg, k, out_dir, houses, progress) for k in shards]
    results = []
    ctx = mp.get_context("spawn")  # no forked numba/threads state
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                             initializer=exit_with_parent) as pool:
        futures = [pool.submit(_write_one, cfg, k, str(out_dir), houses) for k in shards]
        for fut in as_completed(futures):
            res = fut.result()
            results.append(res)
            if progress:
                progress(res.sidecar["episodes"])
    return sorted(results, key=lambda r: r.index)


def start_ray(address: str | None = None):
    """The ``ray`` module, joined to the cluster at ``address`` (``auto`` for the one this node
    belongs to; None: a local Ray) unless Ray is already initialised; ConfigError when Ray is
    not installed or the cluster cannot be reached."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install -e '.[cluster]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address)
        except ConnectionError as e:
            raise ConfigError(f"--ray-address {address}: {e}; give the address of a running "
                              "cluster, or none to start a local Ray") from None
    return ray


def run_ray(cfg: DatagenConfig, shards: list[int], out_dir: str | os.PathLike,
            houses: HouseFile, address: str | None = None, progress: Progress | None = None
            ) -> list[ShardResult]:
    """One Ray task (1 CPU) per shard. Joins the cluster at ``address`` (``auto`` for the
    one this node belongs to) unless Ray is already initialised. Every node must see
    ``out_dir`` and the house file at the same paths (a shared file system with fcntl locks)
    and have this project installed."""
    ray = start_ray(address)
    task = ray.remote(num_cpus=1)(_write_one)
    out = str(Path(out_dir).resolve())
    houses = dataclasses.replace(houses, path=str(Path(houses.path).resolve()))
    pending = [task.remote(cfg, k, out, houses) for k in shards]
    results = []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        res = ray.get(done[0])
        results.append(res)
        if progress:
            progress(res.sidecar["episodes"])
    return sorted(results, key=lambda r: r.index)


EXECUTORS = {"local": run_local, "ray": run_ray}
