"""Writing a split of generated houses: ``out_dir/{split}.jsonl.gz`` plus ``out_dir/meta.json``.

Layout (the ProcTHOR-10K one): one house per line, canonical JSON
(:func:`sim.house.write_house_json`), in index order. The gzip stream is
byte-deterministic (mtime 0, no file name), so a split is a pure function of
(split, num, seed, room-spec mix) whatever the number of workers.

Resuming: each finished house is kept as ``out_dir/.{split}.partial/{index:06d}.json``
(written to a temporary name, then renamed), holding the house and the reasons earlier
attempts were resampled. A rerun skips them. The final file and meta.json are written to a
temporary name and renamed, so nothing half-written is ever left under the final names; the
partial folder is removed once they are written (a killed run keeps it).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from common.errors import InputError
from common.files import write_atomic
from common.workers import check_workers, exit_with_parent, worker_count
from datagen.houses.procthor_gen import (
    GENERATOR_VERSION,
    INDEX_BITS,
    PROCTHOR10K,
    SEED_BITS,
    SPLIT_SEED_OFFSETS,
    SPLITS,
    RoomSpecMix,
    generate_valid_house,
    procthor_version,
    room_spec_mix_weights,
)
from sim.house import write_house_json

META_FILE = "meta.json"
SEED_LAYOUT = ("house_seed = split_offset | attempt << 27 | seed << 20 | index "
               "(datagen.houses.procthor_gen.house_seed)")


def split_file(out_dir: Path, split: str) -> Path:
    return out_dir / f"{split}.jsonl.gz"


def partial_dir(out_dir: Path, split: str) -> Path:
    return out_dir / f".{split}.partial"


def partial_file(out_dir: Path, split: str, index: int) -> Path:
    return partial_dir(out_dir, split) / f"{index:06d}.json"


def deterministic_gzip(data: bytes) -> bytes:
    """gzip bytes that depend only on ``data`` (mtime 0, empty file name)."""
    import io

    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def check_generate_args(split: str, num: int, seed: int, workers: int, out_dir: Path) -> None:
    """InputError naming the option when a split cannot be generated as asked: the seed
    layout (:data:`SEED_LAYOUT`) bounds the dataset seed and the number of houses."""
    if split not in SPLITS:
        raise InputError(f"--split {split!r}: unknown split; use one of {', '.join(SPLITS)}")
    if not 1 <= num <= 1 << INDEX_BITS:
        raise InputError(f"--num {num}: out of range; generate 1 to {1 << INDEX_BITS:,} houses "
                         "per split")
    if not 0 <= seed < 1 << SEED_BITS:
        raise InputError(f"--seed {seed}: out of range; use 0 <= seed < {1 << SEED_BITS}")
    check_workers(workers)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file; give a folder")


def build_partial(out_dir: str, split: str, seed: int, index: int,
                  room_spec_mix: RoomSpecMix) -> int:
    """Generate house ``index`` and save it as its partial file (run in a worker process)."""
    house, failures = generate_valid_house(split, seed, index, room_spec_mix)
    record = {"failures": failures, "house": json.loads(write_house_json(house))}
    write_atomic(partial_file(Path(out_dir), split, index),
                 json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
    return index


def _missing(out_dir: Path, split: str, num: int) -> list[int]:
    return [i for i in range(num) if not partial_file(out_dir, split, i).exists()]


def _run_tasks(out_dir: Path, split: str, seed: int, todo: list[int], workers: int,
               room_spec_mix: RoomSpecMix, progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=f"houses {split}", unit="house", disable=not progress)
    workers = min(worker_count(workers), len(todo))
    if workers <= 1:  # in this process: procthor reseeds this process's global RNGs
        for i in todo:
            build_partial(str(out_dir), split, seed, i, room_spec_mix)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                 initializer=exit_with_parent) as pool:
            futures = [pool.submit(build_partial, str(out_dir), split, seed, i, room_spec_mix)
                       for i in todo]
            for future in as_completed(futures):
                future.result()
                bar.update()
    bar.close()


def _read_partials(out_dir: Path, split: str, num: int) -> Iterable[dict]:
    for i in range(num):
        yield json.loads(partial_file(out_dir, split, i).read_text())


def _assemble(out_dir: Path, split: str, num: int) -> tuple[bytes, Counter, Counter]:
    lines, failures, specs = [], Counter(), Counter()
    for record in _read_partials(out_dir, split, num):
        lines.append(write_house_json(record["house"]) + "\n")
        failures.update(record["failures"])
        specs[record["house"]["metadata"].get("roomSpecId", "?")] += 1
    return "".join(lines).encode(), failures, specs


def _write_meta(out_dir: Path, split: str, entry: dict) -> dict:
    path = out_dir / META_FILE
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta.update({"generator": "procthor", "generator_version": GENERATOR_VERSION,
                 "procthor_version": procthor_version(), "seed_layout": SEED_LAYOUT})
    meta.setdefault("splits", {})[split] = entry
    write_atomic(path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return meta


def generate_houses(split: str, num: int, seed: int, out_dir: str | os.PathLike,
                    workers: int = 1, progress: bool = True,
                    room_spec_mix: RoomSpecMix = PROCTHOR10K) -> Path:
    """Generate houses 0..num-1 of ``split`` into ``out_dir/{split}.jsonl.gz`` (resumable)
    and record the run in ``out_dir/meta.json``. Returns the .jsonl.gz path."""
    out = Path(out_dir)
    check_generate_args(split, num, seed, workers, out)
    try:
        partial_dir(out, split).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    todo = _missing(out, split, num)
    _run_tasks(out, split, seed, todo, workers, room_spec_mix, progress)
    data, failures, specs = _assemble(out, split, num)
    gz = deterministic_gzip(data)
    target = split_file(out, split)
    write_atomic(target, gz)
    _write_meta(out, split, {
        "file": target.name, "num_houses": num, "seed": seed,
        "split_seed_offset": SPLIT_SEED_OFFSETS[split],
        "room_spec_mix": room_spec_mix_weights(room_spec_mix),
        "room_spec_counts": dict(sorted(specs.items())),
        "resampled": sum(failures.values()), "resample_reasons": dict(sorted(failures.items())),
        "sha256": hashlib.sha256(gz).hexdigest(),
    })
    shutil.rmtree(partial_dir(out, split))
    return target
