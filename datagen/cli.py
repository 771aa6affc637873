"""``spoc-datagen``: expert episodes into webdataset shards, their verification and summary.

    spoc-datagen episodes --config configs/datagen/tiny.yaml --houses houses/train.jsonl.gz \\
        --split train --out data/nav [--num-shards N] [--shard-index K] [--executor ray]
    spoc-datagen verify data/nav
    spoc-datagen info data/nav [--json true]
    spoc-datagen upgrade data/nav [--houses FILE ...]

Every option of ``episodes`` can also be set in the YAML given to ``--config``;
``--print_config`` prints the resolved config. Options may be spelled ``--num-shards`` or
``--num_shards``. Bad input (house file, config, output directory, a ``verify``, ``info`` or
``upgrade`` directory that holds no dataset) prints one line and exits with status 2 before
anything is written; ``--debug`` adds its traceback.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

from jsonargparse import ActionConfigFile, ArgumentParser

from common.cli import command_parser, entry_point
from common.files import check_out_dir
from common.workers import check_workers
from datagen.config import ConfigError, DatagenConfig, VideoConfig
from datagen.dataset import describe, open_dataset, read_info, summary, upgrade_dataset
from datagen.episodes import HouseFile
from datagen.executors import EXECUTORS, ShardsFailed, run_local, run_ray, start_ray
from datagen.tasks import TaskConfig
from datagen.verify import verify_dataset
from sim.camera import CameraConfig
from sim.house_check import HouseError
from sim.lattice import AgentConfig


@dataclass
class RunOptions:
    """Where and how the shards are written (not part of the dataset's identity)."""

    out: str = "data/nav"
    """Dataset directory (shards go to OUT/{split}/)."""
    shard_index: int | None = None
    """Write only this shard (a SLURM array task); default: every shard of the split."""
    executor: str = "local"
    """local (a process pool on this machine) or ray (one task per shard)."""
    ray_address: str | None = None
    """Ray cluster address for --executor ray (e.g. auto); default: start a local Ray."""
    workers: int = 1
    """Local executor processes: 1 works in this process, 0 starts one per CPU core; the
    shards do not depend on it."""
    progress: bool = True
    """Show a progress bar (episodes/s) on stderr."""

    def check(self, num_shards: int) -> None:
        """ConfigError naming the first option that cannot be used (``num_shards``: the
        split's), or an InputError for an ``out`` that cannot be a directory."""
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor {self.executor!r}: use one of {sorted(EXECUTORS)}")
        if self.shard_index is not None and not 0 <= self.shard_index < num_shards:
            raise ConfigError(f"--shard-index {self.shard_index}: must be in "
                              f"0..{num_shards - 1} (--num-shards {num_shards})")
        check_workers(self.workers)
        check_out_dir(self.out)


def build_parser() -> ArgumentParser:
    parser = command_parser("spoc-datagen", __doc__)
    commands = parser.add_subcommands(dest="command")
    ep = ArgumentParser(description="Write expert episodes of one split into shards.")
    ep.add_argument("--config", action=ActionConfigFile, help="YAML config file")
    ep.add_class_arguments(DatagenConfig, as_group=True, instantiate=False)
    ep.add_class_arguments(RunOptions, as_group=True, instantiate=False)
    commands.add_subcommand("episodes", ep, help="write expert episodes into shards")
    ve = ArgumentParser(description="Check every shard and replay every episode.")
    ve.add_argument("dir", type=str, help="dataset directory")
    ve.add_argument("--replay", type=bool, default=True, help="replay episodes in the env")
    ve.add_argument("--progress", type=bool, default=True,
                    help="show a progress bar (episodes) on stderr when it is a terminal")
    commands.add_subcommand("verify", ve, help="check a dataset end to end")
    inf = ArgumentParser(description="Describe a dataset: kind, camera, splits, features.")
    inf.add_argument("dir", type=str, help="dataset directory")
    inf.add_argument("--json", type=bool, default=False, help="print the summary as JSON")
    commands.add_subcommand("info", inf, help="describe a dataset from its info.json")
    up = ArgumentParser(description="Copy an older dataset's house files in and rewrite its "
                                    "info.json with the dataset card.")
    up.add_argument("dir", type=str, help="dataset directory")
    up.add_argument("--houses", type=str, nargs="+", default=[],
                    help="the house files the splits were generated from, for a split whose "
                         "info.json path is not found (matched by sha256)")
    commands.add_subcommand("upgrade", up, help="make an older dataset movable")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``spoc-datagen``: bad input is one line and exit status 2
    (:func:`common.cli.entry_point`)."""
    return entry_point("spoc-datagen", run, argv)


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "verify":
        return run_verify(args.verify.dir, args.verify.replay, args.verify.progress)
    if args.command == "info":
        return run_info(args.info.dir, args.info.json)
    if args.command == "upgrade":
        return run_upgrade(args.upgrade.dir, args.upgrade.houses)
    ns = args.episodes
    data = _build(DatagenConfig, ns)
    options = RunOptions(**{k: ns[k] for k in RunOptions.__dataclass_fields__})
    return run_episodes(data, options)


def _build(cls, ns):
    """A DatagenConfig from parsed options (nested dataclasses built and validated; a value
    one refuses is a ConfigError)."""
    nested = {"camera": CameraConfig, "agent": AgentConfig, "tasks": TaskConfig,
              "video": VideoConfig}
    kwargs = {}
    for name in cls.__dataclass_fields__:
        value = ns[name]
        try:
            kwargs[name] = nested[name](**value.as_dict()) if name in nested else value
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return cls(**kwargs)


def run_episodes(data: DatagenConfig, run: RunOptions) -> int:
    """Validate inputs, register the split, write the shards; exit status."""
    run.check(data.num_shards)
    try:
        houses = HouseFile.scan(data.houses)
    except HouseError as e:
        raise ConfigError(f"--houses {e}") from None
    if run.executor == "ray":
        start_ray(run.ray_address)  # an unreachable cluster fails before the split is made
    open_dataset(data, houses, run.out)
    shards = [run.shard_index] if run.shard_index is not None else list(range(data.num_shards))
    bar = _progress_bar(run.progress, len(shards) * data.episodes_per_shard)
    t0 = time.perf_counter()
    try:
        if run.executor == "ray":
            results = run_ray(data, shards, run.out, houses, run.ray_address, bar.update)
        else:
            results = run_local(data, shards, run.out, houses, run.workers, bar.update)
    except ShardsFailed as e:  # every other shard is written; a rerun redoes these
        print(f"spoc-datagen: {' '.join(str(e).split())}; rerun the same command to write "
              "them (complete shards are skipped)", file=sys.stderr)
        return 1
    finally:
        bar.close()
    _report(results, time.perf_counter() - t0, run.out, data.split)
    return 0


def _progress_bar(enabled: bool, total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="ep", desc="episodes", disable=not enabled, smoothing=0.1)


def _report(results, seconds: float, out: str, split: str) -> None:
    written = [r for r in results if not r.reused]
    episodes = sum(r.sidecar["episodes"] for r in written)
    steps = sum(r.sidecar["steps"] for r in written)
    skipped: dict[str, int] = {}
    for r in results:
        for reason, n in r.sidecar["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + n
    print(f"{out}/{split}: wrote {len(written)} shards ({episodes} episodes, {steps} steps) in "
          f"{seconds:.1f} s, {len(results) - len(written)} already complete; skipped episodes: "
          f"{skipped or 'none'}", file=sys.stderr)


def run_verify(directory: str, replay: bool = True, progress: bool = False) -> int:
    """Print every problem of a dataset, one per line; status 1 when there is any (a
    directory that holds no dataset is a DatasetError)."""
    problems = verify_dataset(directory, replay=replay, progress=progress)
    for p in problems:
        print(p)
    if problems:
        print(f"spoc-datagen verify: {len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    print(f"spoc-datagen verify: {directory} is sound", file=sys.stderr)
    return 0


def run_info(directory: str, as_json: bool = False) -> int:
    """Print a dataset's summary (:func:`datagen.dataset.summary`), as text or JSON."""
    s = summary(directory, read_info(directory, hint=False))  # it lists what is older
    print(json.dumps(s, indent=2) if as_json else describe(s))
    return 0


def run_upgrade(directory: str, houses: list[str]) -> int:
    """Give an older dataset its house files and card; print what changed."""
    changes = upgrade_dataset(directory, houses)
    for change in changes:
        print(change)
    print(f"spoc-datagen upgrade: {directory} "
          f"{'upgraded' if changes else 'was already current'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
