"""Where shards are written: in this process, a local process pool, or a Ray cluster.

Every executor calls :func:`datagen.shards.write_shard` once per shard index, so they all
produce the same bytes. One process per core (simulation work does not batch on a CPU).

A shard may be written any number of times, anywhere: it is a pure function of (config, seed,
index), written to a temporary name and renamed, and a new write deletes the temporaries a
killed one left. So a Ray task whose worker or node dies is simply run again on another node
(:data:`RAY_MAX_RETRIES`), and a rerun of a failed run writes only the shards it lacks.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from common.workers import exit_with_parent, worker_count
from datagen.config import ConfigError, DatagenConfig
from datagen.dataset import refresh_info
from datagen.episodes import HouseFile
from datagen.shards import ShardResult, write_shard

Progress = Callable[[int], None]

RAY_MAX_RETRIES = 3
"""Ray runs a shard's task again, up to this many times, when its worker process or its node
dies (a lost node, the out-of-memory killer) or when it raises one of
:data:`RAY_RETRY_EXCEPTIONS`."""
RAY_RETRY_EXCEPTIONS = (OSError,)
"""Exceptions worth another attempt, perhaps on another node: I/O errors of a shared file
system (a stale NFS handle, a mount that dropped). Any retry is safe, a shard being a pure
function written through a temporary name; any other exception (a bug, unusable input)
would only repeat."""


class ShardsFailed(RuntimeError):
    """Shards that failed for good (their retries spent); every other shard is written."""


def _write_one(cfg: DatagenConfig, k: int, out_dir: str, houses: HouseFile) -> ShardResult:
    """A pool/Ray task: one shard, in a worker process."""
    return write_shard(cfg, k, out_dir, houses)


def run_local(cfg: DatagenConfig, shards: list[int], out_dir: str | os.PathLike,
              houses: HouseFile, workers: int = 0, progress: Progress | None = None
              ) -> list[ShardResult]:
    """Write ``shards`` with ``workers`` processes (0: one per core, as
    :func:`common.workers.worker_count`); in this process when one worker or one shard is
    enough (progress is then reported per episode)."""
    workers = min(worker_count(workers), len(shards))
    if workers <= 1:
        return _finish([write_shard(cfg, k, out_dir, houses, progress) for k in shards],
                       out_dir)
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
    return _finish(results, out_dir)


def _finish(results: list[ShardResult], out_dir: str | os.PathLike) -> list[ShardResult]:
    """``results`` by shard index, once info.json lists every complete shard: a shard found
    complete (for instance by the retry of a task killed after the shard's sidecar was
    written but before info.json was rebuilt) does not rebuild info.json, so it is rebuilt
    here, from the sidecars, as every writer does."""
    if any(r.reused for r in results):
        refresh_info(out_dir)
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
    and have this project installed.

    A task whose worker or node dies is run again from scratch on a live node (up to
    :data:`RAY_MAX_RETRIES` times), with the same bytes. A shard that fails for good does not
    stop the others: once every task has ended, :class:`ShardsFailed` names the failed
    shards, and a rerun of the same command writes just those."""
    ray = start_ray(address)
    task = ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES,
                      retry_exceptions=list(RAY_RETRY_EXCEPTIONS))(_write_one)
    out = str(Path(out_dir).resolve())
    houses = dataclasses.replace(houses, path=str(Path(houses.path).resolve()))
    shard_of = {task.remote(cfg, k, out, houses): k for k in shards}
    pending = list(shard_of)
    results, failed = [], {}
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            res = ray.get(done[0])
        except ray.exceptions.RayError as e:  # retries spent, or an exception not retried
            failed[shard_of[done[0]]] = e
            continue
        results.append(res)
        if progress:
            progress(res.sidecar["episodes"])
    if failed:
        k, error = min(failed.items())
        cause = getattr(error, "cause", None) or error  # a task's own exception, if any
        first = (str(cause).strip().splitlines() or [""])[0]
        raise ShardsFailed(
            f"{len(failed)} of {len(shards)} shards of split {cfg.split!r} failed "
            f"({', '.join(map(str, sorted(failed)))}; shard {k}: {type(cause).__name__}: "
            f"{first}); the other {len(results)} are written, and a rerun of the same "
            "command writes the failed ones") from error
    return _finish(results, out)


EXECUTORS = {"local": run_local, "ray": run_ray}
