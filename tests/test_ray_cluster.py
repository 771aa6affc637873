"""Fault tolerance of cluster datagen.

A Ray cluster of a head and two worker nodes on this machine, each a ``ray start --block``
in its own process group, writes a split with ``spoc-datagen episodes --executor ray`` while
one worker node is killed (SIGKILL) in the middle of writing a shard: the run finishes by
itself, with the bytes of a single-process run. Every process the test starts carries a
marker in its environment, so all of them, and only they, are killed at the end.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_shards import snapshot, tiny_config, write_all

from datagen.cli import main
from datagen.dataset import refresh_info, shard_paths
from datagen.episodes import HouseFile
from datagen.executors import run_local
from sim.house import load_houses, write_house_json

HOUSE = "tests/fixtures/house_3703.json"
MARKER = "SPOC_TEST_RAY_CLUSTER"
"""Environment variable set (to the cluster's folder) in every process the test starts."""
NUM_SHARDS, EPISODES = 4, 16
"""Enough shards that every node gets one, each long enough to be killed mid-write."""
DATAGEN = ["--num-shards", str(NUM_SHARDS), "--episodes-per-shard", str(EPISODES),
           "--episodes-per-house", str(EPISODES), "--camera.height", "48",
           "--camera.width", "64", "--tasks.min_pixels", "3", "--progress", "false"]
START_TIMEOUT, RUN_TIMEOUT = 90.0, 180.0


@pytest.fixture
def houses(tmp_path) -> str:
    path = tmp_path / "houses.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(write_house_json(next(load_houses(HOUSE)).house) + "\n")
    return str(path)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> tuple[str, int]:
    """(state, parent pid) of a process from /proc (OSError once it is gone)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def marked(value: str) -> list[int]:
    """Live (not zombie) processes whose environment has ``MARKER=value``."""
    needle = f"{MARKER}={value}".encode()
    out = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            if _stat(pid)[0] != "Z":
                out.append(pid)
        except OSError:  # gone, or not ours to read
            continue
    return out


def node_of(pid: int, roots: set[int]) -> int | None:
    """The root in ``roots`` (a ``ray start`` process) that ``pid`` descends from."""
    while pid > 1:
        if pid in roots:
            return pid
        pid = _stat(pid)[1]
    return None


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _pids():
        with contextlib.suppress(OSError):
            children.setdefault(_stat(pid)[1], []).append(pid)
    out, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def kill_tree(root: int) -> None:
    """SIGKILL the process group of ``root`` (a session leader) and every process below it,
    in whatever group (Ray's worker processes make their own): a node, gone at once."""
    below = descendants(root)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(root, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_dead(pids, timeout: float = 20.0) -> list[int]:
    """The processes of ``pids`` still alive after ``timeout`` seconds (a zombie is dead)."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def tail(path: Path, n: int = 2000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


class Cluster:
    """A head and worker nodes started as separate ``ray start --block`` processes, each in
    its own session (process group) and with its HOME under ``home``."""

    def __init__(self, home: Path):
        self.base = Path(tempfile.mkdtemp(prefix="spoc-ray-"))  # short: Ray's socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self.env.update({"HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0",
                         MARKER: str(self.base)})
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start_nodes(self, workers: int) -> None:
        ray = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block",
               "--num-cpus", "1", "--disable-usage-stats", "--object-store-memory",
               str(100 * 2**20), "--dashboard-agent-listen-port", "0"]
        self.start("head", [*ray, "--head", "--port", str(self.port),
                            "--include-dashboard", "false", "--dashboard-port",
                            str(free_port()), "--ray-client-server-port", str(free_port()),
                            "--temp-dir", str(self.base / "head")])
        for i in range(workers):  # one log monitor per machine: the head's
            self.start(f"worker{i}", [*ray, "--address", self.address,
                                      "--include-log-monitor", "false",
                                      "--temp-dir", str(self.base / f"worker{i}")])

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = self.base / f"{name}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen(cmd, env=self.env, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        for proc, log in zip(self.procs, self.logs, strict=True):
            while "Ray runtime started" not in log.read_text(errors="replace"):
                assert proc.poll() is None, f"{log.name} exited:\n{tail(log)}"
                assert time.monotonic() < deadline, f"{log.name} did not start:\n{tail(log)}"
                time.sleep(0.1)

    def close(self) -> None:
        """SIGKILL every process group started here and every process carrying the marker
        (Ray's workers, in groups of their own), and wait until none is left."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for _ in range(50):
            left = marked(str(self.base))
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            wait_dead(left, timeout=2.0)
        for proc in self.procs:
            proc.wait(timeout=20)
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def ray_cluster(home: Path, workers: int = 2):
    """A started :class:`Cluster`; afterwards none of its processes is left."""
    cluster = Cluster(home)
    try:
        cluster.start_nodes(workers)
        yield cluster
    finally:
        cluster.close()
        assert not marked(str(cluster.base)), "processes of the test's Ray cluster are left"


# --------------------------------------------------------------------------- tests


def test_a_killed_worker_node_is_retried_with_the_same_bytes(houses, tmp_path):
    pytest.importorskip("ray", reason="the fault-tolerant run needs Ray: pip install -e "
                                      "'.[cluster]'")
    reference, out = tmp_path / "reference", tmp_path / "ray"
    with ray_cluster(tmp_path / "home") as cluster:
        # The single-process run, while the nodes start.
        assert main(["episodes", "--houses", houses, "--out", str(reference), "--workers",
                     "1", *DATAGEN]) == 0
        cluster.wait_ready()
        workers = {p.pid for p in cluster.procs[1:]}  # the worker nodes' `ray start`
        driver = cluster.start("datagen", [
            sys.executable, "-m", "datagen.cli", "episodes", "--houses", houses, "--out",
            str(out), "--executor", "ray", "--ray-address", cluster.address, *DATAGEN])
        deadline = time.monotonic() + RUN_TIMEOUT
        killed = None
        while driver.poll() is None:
            assert time.monotonic() < deadline, \
                f"datagen did not finish:\n{tail(cluster.logs[-1])}"
            if killed is None:
                killed = _kill_a_node_mid_shard(out, workers)
            time.sleep(0.005)
        stderr = tail(cluster.logs[-1])
        assert driver.returncode == 0, stderr
        assert killed is not None, f"no shard was written on a worker node:\n{stderr}"
        assert f"wrote {NUM_SHARDS} shards" in stderr, stderr
    assert not killed.exists()  # the retry deleted the killed writer's temporary
    assert snapshot(out) == snapshot(reference)  # every tar, sidecar and info.json


def _kill_a_node_mid_shard(out: Path, roots: set[int]) -> Path | None:
    """Once a worker node has written part of a shard (its temporary file holds some bytes),
    SIGKILL the node's whole process group and its workers; the temporary it left."""
    for tmp in sorted((out / "train").glob(".shard-*.tar.tmp-*")):
        pid = int(tmp.name.rsplit("-", 1)[1])
        try:
            root = node_of(pid, roots)
            size = tmp.stat().st_size
        except OSError:  # finished or gone meanwhile
            continue
        if root is None or size == 0:
            continue
        kill_tree(root)
        assert not wait_dead([pid]), f"the shard writer {pid} survived SIGKILL"
        # Dead before renaming its temporary: the node died in the middle of the shard.
        assert tmp.exists(), f"{tmp.name}: finished before its node was killed"
        return tmp
    return None


def test_a_shard_found_complete_is_listed_in_info(houses, tmp_path):
    """A worker killed after writing its shard's sidecar but before rebuilding info.json:
    the retry (or a rerun) finds the shard complete, and info.json lists it again."""
    cfg = tiny_config(houses, num_shards=2, episodes_per_shard=1, episodes_per_house=1)
    write_all(cfg, tmp_path / "reference")
    out = tmp_path / "ds"
    write_all(cfg, out)
    tar, sidecar = shard_paths(out, cfg.split, 1)
    kept = tar.read_bytes(), sidecar.read_bytes()
    tar.unlink()
    sidecar.unlink()
    refresh_info(out)  # info.json without shard 1, as before the killed worker rebuilt it
    tar.write_bytes(kept[0])
    sidecar.write_bytes(kept[1])
    results = run_local(cfg, [0, 1], out, HouseFile.scan(houses), workers=1)
    assert [r.reused for r in results] == [True, True]
    assert snapshot(out) == snapshot(tmp_path / "reference")
