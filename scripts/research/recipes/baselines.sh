#!/usr/bin/env bash
# Baselines on the 1,000 test episodes (docs/experiments/behaviour-cloning.md, the 1,000-episode
# table):
#   oracle (the shortest-path expert)         100.0% [99.6, 100.0], SPL 1.000
#   random                                      1.6% [1.0, 2.6],    SPL 0.016
#   always forward, `end` when blocked           3.2% [2.3, 4.5],    SPL 0.021
#
# Docs: docs/experiments/behaviour-cloning.md; per-episode results:
#   results/eval1k/{oracle,random,forward}.json.gz.
# Time (as run, 2 CPU cores): the 100 test houses 1 min; the three evaluations 3 min 12 s in all.
# Requires: nothing but the project installed. The camera, agent and tasks are given here
#   (those of data/big/dataset: 112x192, ObjectNav's min_pixels 12, the default tasks); with
#   data-big.sh's dataset, --dataset data/big/dataset gives the same.
# Options: WORKERS (default 2, as run; the results do not depend on it).
#
# The published files were made by exactly these commands (their run records name the house
# file where it was written); their episodes (house, task, target, seed per episode) are those
# of every other results/eval1k/ file. The last command pairs each new run with its file.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/research/recipes/_run.sh

WORKERS=${WORKERS:-2}
run spoc-houses generate --split test --num 100 --seed 0 --out data/big/houses --workers "$WORKERS"
episodes=(--houses data/big/houses/test.jsonl.gz --episodes 1000 --seed 0 --workers "$WORKERS"
          --videos 0 --camera.height 112 --camera.width 192 --tasks.min_pixels 12)
for policy in oracle random forward; do
    run spoc-eval run --policy "$policy" "${episodes[@]}" --out "runs/big/eval1k/$policy"
    # each new run paired with its published file
    run spoc-eval compare "results/eval1k/$policy.json.gz" "runs/big/eval1k/$policy"
done
