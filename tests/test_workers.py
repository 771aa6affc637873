"""Worker processes end when the process that started them is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

PARENT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from common.workers import exit_with_parent

    def forever(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(0.1)

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(1, mp_context=ctx,
                                   initializer=exit_with_parent if sys.argv[2] == "1" else None)
        pool.submit(forever, sys.argv[1])
        time.sleep(600)
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
        return f.read().split(")")[-1].split()[0] != "Z"


def worker_after_parent_kill(tmp_path, guarded: bool) -> bool:
    """Start a pool whose task never ends, kill -9 the parent: is the worker still there 5 s on?"""
    pid_file = tmp_path / f"worker-{int(guarded)}.pid"
    script = tmp_path / "parent.py"  # spawn workers import the task from the parent's file
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file), str(int(guarded))],
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        for _ in range(300):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for _ in range(50):
            if not alive(worker):
                return False
            time.sleep(0.1)
        return True
    finally:
        parent.kill()
        if pid_file.exists() and pid_file.read_text() and alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_worker_exits_when_its_parent_is_killed(tmp_path):
    assert worker_after_parent_kill(tmp_path, guarded=False)  # what happens without it
    assert not worker_after_parent_kill(tmp_path, guarded=True)
