"""Worker processes that do not outlive their parent.

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

PARENT_POLL_SECONDS = 1.0
"""How often a worker checks that its parent is alive."""


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
