"""Worker processes: how many a ``--workers`` value asks for, and processes that do not
outlive their parent.

Every ``spoc-*`` option that sets a number of worker processes (``--workers``,
``spoc-dagger --eval_workers``) means the same: N processes, 1 (the default) working in the
command's own process and 0 one per CPU core this process may run on (:func:`worker_count`).
Results never depend on it.

A ``spawn`` or ``forkserver`` worker keeps running when the process that started it is killed
(SIGTERM or ``kill -9``): a killed ``spoc-houses``/``spoc-datagen``/``spoc-eval`` would leave its
workers burning the cores, and a rerun would compete with them. :func:`exit_with_parent`, run
first in every worker (a pool ``initializer``), ends the worker within ``period`` seconds of
its parent's exit.
"""

from __future__ import annotations

import os
import threading
import time

from common.errors import InputError

PARENT_POLL_SECONDS = 1.0
"""How often a worker checks that its parent is alive."""


def cpu_count() -> int:
    """The CPU cores this process may run on (its affinity, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_workers(workers: int, option: str = "--workers") -> None:
    """InputError unless ``workers`` is a number of worker processes or 0 (one per core)."""
    if workers < 0:
        raise InputError(f"{option} {workers}: give a number of worker processes (1: work in "
                         "this process), or 0 for one per CPU core")


def worker_count(workers: int, option: str = "--workers") -> int:
    """The processes a ``--workers`` value asks for: itself, or one per CPU core for 0
    (InputError for a negative value)."""
    check_workers(workers, option)
    return workers or cpu_count()


def _watch(parent: int, period: float) -> None:
    while True:
        time.sleep(period)
        if os.getppid() != parent:  # reparented: the parent is gone
            os._exit(1)


def exit_with_parent(period: float = PARENT_POLL_SECONDS) -> None:
    """End this process (exit status 1) once its parent process has exited.

    Call it at the start of a worker process. A daemon thread polls ``os.getppid()``, which
    changes when the parent dies (for a forkserver worker the parent is the server, which
    exits with the process that started it).
    """
    parent = os.getppid()
    threading.Thread(target=_watch, args=(parent, period), daemon=True,
                     name="exit-with-parent").start()
