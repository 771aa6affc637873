"""``spoc-explorer collect``: roll out the map agent on training houses and write, for every
second exploring step, its map view and the oracle's cost of each frontier block
(:func:`eval.probes.frontier_costs`: the agent's map steps to the block plus the
shortest-path oracle's moves from it to the goal; privileged, so training houses only).
With ``--explorer``, a fitted explorer explores (a DAgger round). Chunks are written
atomically; an interrupted ``collect`` resumes at the first missing chunk.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from agents.explorer import CONTEXT, block_costs, blocks, map_view, reachable_frontier
from agents.map_agent import MapPolicy
from agents.mapper import MapperConfig
from common.cli import progress_bar
from common.files import check_out_dir, write_atomic
from common.workers import check_workers, worker_count
from datagen.tasks import TaskConfig
from eval.config import EvalConfig
from eval.evaluate import build_run
from eval.inputs import file_split, house_split, read_explorer, scan_houses
from eval.probes import frontier_costs
from eval.rollout import batch_obs, lockstep
from eval.slots import plan_slots
from sim.camera import CameraConfig
from training.explorer.data import (
    ExplorerInputError,
    check_at_least,
    chunk_path,
    npz_bytes,
    pack,
)


@dataclass
class CollectConfig:
    """Roll out the map agent on training houses and write its exploring steps' labels."""

    houses: str = "data/houses/train.jsonl.gz"
    """Training houses (never the ones evaluated on)."""
    detector: str = "runs/mapper/detector.json"
    """The colour detector the map agent finds targets with (``spoc-detector fit``)."""
    out: str = "runs/explorer/data"
    dataset: str | None = None
    """A dataset whose camera, agent, tasks and goals to use (as ``spoc-eval run --dataset``)."""
    explorer: str | None = None
    """Explore with this fitted explorer instead of the nearest frontier (a DAgger round)."""
    episodes: int = 2000
    seed: int = 0
    chunk: int = 100
    """Episodes per written file."""
    every: int = 2
    """Keep every this-many-th exploring step of an episode."""
    context: list[str] = field(default_factory=lambda: list(CONTEXT))
    """Object types the map notes where the detector sees them, one view plane each (the
    detector must have their colours)."""
    workers: int = 1
    """Worker processes: 1 works in this process, 0 starts one per CPU core; the files do not
    depend on it."""
    max_steps: int = 500
    camera: CameraConfig | None = None
    """The camera, when no ``--dataset`` gives it (e.g. ``--camera.height 112``)."""
    tasks: TaskConfig | None = None
    """The tasks, when no ``--dataset`` gives them."""
    progress: bool = True
    """Show a progress bar (episodes) on stderr when it is a terminal."""

    def __post_init__(self):
        check_at_least(self, ("episodes", "chunk", "every", "max_steps"), 1)
        check_at_least(self, ("seed",), 0)
        check_workers(self.workers)


def collecting_policy(settings, every: int, context: list[str]):
    """The map agent of ``settings`` that also keeps every ``every``-th exploring step's
    (view, goal index, allowed blocks, block costs) in ``.samples``; it reads the oracle's
    labels from the harness (``uses_oracle``)."""

    class Collecting(MapPolicy):
        def explore(self, m, goal):
            m.explore_steps = getattr(m, "explore_steps", -1) + 1
            if m.privileged is not None and m.explore_steps % every == 0:
                steps = m.steps_from_agent()
                view, index = map_view(m, steps)
                cost = frontier_costs(view, index, steps, m.privileged, m.cfg.size)
                allowed = blocks(reachable_frontier(view, index, steps))  # as pick_block
                if np.isfinite(cost).any():
                    self.samples.append((view, self.goal_ids[goal], allowed, block_costs(cost)))
            return super().explore(m, goal)

    policy = Collecting(settings.camera, settings.agent, settings.tasks, settings.goals,
                        settings.detector, settings.mapper)
    policy.uses_oracle = True
    policy.context_types = tuple(context)
    policy.samples = []
    policy.goal_ids = {g: k for k, g in enumerate(settings.goals)}
    return policy


def collect_chunk(cfg: CollectConfig, settings, houses: dict, slots: list, k: int,
                  tick: Callable[[int], None] = lambda n: None) -> int:
    """Roll out one chunk's slots and write its file; the number of samples (``tick(1)``
    after each episode)."""
    policy = collecting_policy(settings, cfg.every, cfg.context)
    policy.reset(settings.envs_per_worker)

    def act(runs):
        return policy.act(batch_obs(runs, settings.camera, False, depth=True, oracle=True))

    torch.set_num_threads(1)
    lockstep(houses, slots, settings, act, lambda run, result: tick(1), lambda slot, why: tick(1))
    arrays = pack(policy.samples, settings.goals, cfg.context)
    write_atomic(chunk_path(Path(cfg.out), k), npz_bytes(arrays))
    return len(policy.samples)


def _collect_task(task: tuple) -> tuple[int, int]:
    """A pool task: :func:`collect_chunk` of ``task``; (its samples, its episodes)."""
    return collect_chunk(*task), len(task[3])


def collect(cfg: CollectConfig) -> tuple[int, int]:
    """Write the missing chunks of ``cfg.out``; (chunks written, samples written)."""
    check_out_dir(cfg.out)
    if file_split(Path(cfg.houses)) not in (None, "train"):
        raise ExplorerInputError(f"--houses {cfg.houses}: not the train split (meta.json); "
                                 "collect on training houses only, never on the evaluated ones")
    if cfg.explorer is not None:
        read_explorer(cfg.explorer, "--explorer")
    mapper = MapperConfig(explorer=cfg.explorer)
    spec, settings, _, _ = build_run(EvalConfig(
        policy="mapper", detector=cfg.detector, dataset=cfg.dataset, houses=cfg.houses,
        mapper=mapper, max_steps=cfg.max_steps, videos=0, camera=cfg.camera, tasks=cfg.tasks))
    settings = replace(settings, video_slots=frozenset())
    if cfg.explorer is not None:
        explorer = MapPolicy(settings.camera, settings.agent, settings.tasks, settings.goals,
                             settings.detector, settings.mapper).explorer
        if list(explorer.context) != list(cfg.context):
            raise ExplorerInputError(f"--explorer {cfg.explorer}: field 'context' is "
                                     f"{list(explorer.context)}, not --context "
                                     f"{list(cfg.context)}; collect with the context it was "
                                     "fitted on")
    missing = sorted(set(cfg.context) - set(settings.detector.centre))
    if missing:
        raise ExplorerInputError(f"--context: the detector {cfg.detector} has no colour for "
                                 f"{', '.join(missing)}; drop them or fit it with "
                                 "`spoc-detector fit --types`")
    hfile = scan_houses(cfg.houses)
    houses = hfile.read(list(range(len(hfile))))
    for pos, rec in houses.items():
        if house_split(rec) not in (None, "train"):
            raise ExplorerInputError(f"--houses {cfg.houses}: house {pos} ({rec.house_id}) was "
                                     f"generated for the {house_split(rec)} split; collect on "
                                     "training houses only")
    slots = plan_slots(len(houses), cfg.episodes, cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(k, slots[a:a + cfg.chunk]) for k, a in enumerate(range(0, len(slots), cfg.chunk))
            if not chunk_path(out, k).exists()]
    tasks = [(cfg, settings, {s.house: houses[s.house] for s in chunk}, chunk, k)
             for k, chunk in todo]  # each chunk's file is a function of the chunk alone
    workers = min(worker_count(cfg.workers), len(tasks))
    written = 0
    with progress_bar(sum(len(chunk) for _, chunk in todo), "collect", "ep", cfg.progress) as bar:
        if workers <= 1:
            written = sum(collect_chunk(*task, tick=bar.update) for task in tasks)
        else:
            with mp.get_context("forkserver").Pool(workers) as pool:
                for samples, episodes in pool.imap_unordered(_collect_task, tasks):
                    written += samples
                    bar.update(episodes)
    return len(todo), written
