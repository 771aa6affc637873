#!/usr/bin/env bash
# The houses and expert datasets every headline row uses (docs/experiments/behaviour-cloning.md: the recipe's
# first six commands; docs/experiments/auxiliary-losses.md: the same three datagen commands into data/aux/dataset).
#
#   data/big/houses     train 1,000 / val 60 / test 100 houses, seed 0. Every headline row is
#                       evaluated on the same 1,000 test episodes of the 100 held-out test
#                       houses: --houses data/big/houses/test.jsonl.gz --episodes 1000 --seed 0.
#   data/big/dataset    expert split (20 episodes per training house, 20,000 episodes),
#                       noise-injected split (DART, 10 per house, 10,000) and val split
#                       (5 per val house, 300) at 112x192: behaviour cloning from pixels
#                       (bc-pixels.sh), and the camera and tasks the baselines and the map
#                       agent are run with (--dataset).
#   data/aux/dataset    the same three commands written again into another directory: the box
#                       policies and everything after them (best-learned-agent.sh).
#
# Docs: docs/experiments/behaviour-cloning.md (the recipe), docs/experiments/auxiliary-losses.md
#   (data/aux/dataset), docs/dataset-format.md (what the files hold).
# Time (as run, the 2-core CPU machine shared with other jobs): the expert split of
#   data/big/dataset 33 min, its noise split 279 s; data/aux/dataset's three splits 941 s.
# Requires: nothing but the project installed (bash scripts/quickstart.sh or scripts/test.sh
#   create .venv; activate it first: source .venv/bin/activate).
# Options: WORKERS (default 2, as run): processes for houses and episodes; the files do not
#   depend on it (house i and shard k are pure functions of their seeds). EXTRAS=1 also runs
#   `spoc-datagen verify` on both datasets (every shard checked, every episode replayed).
#
# Not recorded exactly: data/big/dataset was written before the current renderer and video
# encoder (commit c94f520) and data/aux/dataset later, with the renderer of its time; the study page
# says the same commands now give slightly different bytes (ids on 0-2 pixels per frame, the
# encoder's colour conversion). With the current code both directories hold the same episodes.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/research/recipes/_run.sh

WORKERS=${WORKERS:-2}

run spoc-houses generate --split train --num 1000 --seed 0 --out data/big/houses --workers "$WORKERS"
run spoc-houses generate --split val --num 60 --seed 0 --out data/big/houses --workers "$WORKERS"
run spoc-houses generate --split test --num 100 --seed 0 --out data/big/houses --workers "$WORKERS"

for out in data/big/dataset data/aux/dataset; do
    common=(--config configs/datagen/default.yaml --out "$out" --camera.height 112
            --camera.width 192 --tasks.min_pixels 12 --workers "$WORKERS")
    run spoc-datagen episodes "${common[@]}" --houses data/big/houses/train.jsonl.gz \
        --split train --num-shards 200 --episodes-per-shard 100 --episodes-per-house 20
    run spoc-datagen episodes "${common[@]}" --houses data/big/houses/train.jsonl.gz \
        --split train-noise --num-shards 100 --episodes-per-shard 100 --episodes-per-house 10 \
        --action_noise 0.2
    run spoc-datagen episodes "${common[@]}" --houses data/big/houses/val.jsonl.gz \
        --split val --num-shards 6 --episodes-per-shard 50 --episodes-per-house 5
done

if [[ "${EXTRAS:-0}" == 1 ]]; then
    run spoc-datagen verify data/big/dataset
    run spoc-datagen verify data/aux/dataset
fi
