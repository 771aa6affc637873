"""Houses per second per process: our fast path vs. procthor's own rectangle join.

Both paths run procthor's HouseGenerator with the same stand-in controller and the same
determinism fixes, on the same (split, seed, index) houses, in this one process; they differ
only in ``OrthogonalPolygon._join_neighboring_rectangles`` (ours vs. the package's). The
table also says whether each pair of houses is byte-identical.

    python scripts/bench/bench_houses.py --num 20 --seed 0
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from datagen.houses import procthor_patches
from datagen.houses.procthor_gen import PROCTHOR10K, generate_house, warm_up
from sim.house import write_house_json


def time_house(split: str, seed: int, index: int, fast: bool) -> tuple[float, str]:
    procthor_patches.use_fast_rectangles(fast)
    start = time.perf_counter()
    house = generate_house(split, seed, index, PROCTHOR10K)
    return time.perf_counter() - start, write_house_json(house)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def row(name: str, secs: list[float]) -> str:
    return (f"| {name} | {len(secs) / sum(secs):.2f} | {statistics.median(secs):.2f} | "
            f"{p90(secs):.2f} | {max(secs):.2f} | {sum(secs):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=20, help="houses per path")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--split", default="train", help="train, val or test")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # pandas FutureWarnings from procthor

    warm_up(args.split)  # imports and asset-group cache: not timed
    fast, stock, same = [], [], 0
    for i in range(args.num):
        t_fast, h_fast = time_house(args.split, args.seed, i, True)
        t_stock, h_stock = time_house(args.split, args.seed, i, False)
        fast.append(t_fast)
        stock.append(t_stock)
        same += h_fast == h_stock
        print(f"house {i}: fast {t_fast:.2f} s, package {t_stock:.2f} s, "
              f"identical={h_fast == h_stock}", flush=True)
    procthor_patches.use_fast_rectangles(True)

    print(f"\n{args.num} houses, split={args.split}, seed={args.seed}, ProcTHOR-10K room-spec "
          "mix, one process\n")
    print("| path | houses/s | median s | p90 s | max s | total s |")
    print("|---|---|---|---|---|---|")
    print(row("fast (ours)", fast))
    print(row("package `_join_neighboring_rectangles`", stock))
    print(f"\nspeed-up: {sum(stock) / sum(fast):.1f}x throughput, "
          f"{statistics.median(stock) / statistics.median(fast):.1f}x median; "
          f"byte-identical houses: {same}/{args.num}")


if __name__ == "__main__":
    main()
