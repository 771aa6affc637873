#!/usr/bin/env bash
# The whole pipeline end to end on the embedded simulator, at laptop scale:
# houses -> expert (and noise-injected expert) shards -> behaviour cloning -> evaluation on
# held-out houses.
# Creates .venv and installs the project first, with the `cpu` extra only: nothing here uses
# Ray, AI2-THOR or the test tools. Override the size with the variables below.
set -euo pipefail
cd "$(dirname "$0")/.."
INSTALL_EXTRAS=${INSTALL_EXTRAS:-cpu}
source scripts/_venv.sh

OUT=${OUT:-runs/quickstart}
WORKERS=${WORKERS:-2}
TRAIN_HOUSES=${TRAIN_HOUSES:-96}
VAL_HOUSES=${VAL_HOUSES:-8}
EVAL_EPISODES=${EVAL_EPISODES:-48}
mkdir -p "$OUT"
stage() { printf '\n== %s  [%s]\n' "$1" "$(date +%H:%M:%S)"; }

stage "1/5 houses: ProcTHOR generator, no Unity ($TRAIN_HOUSES train, $VAL_HOUSES val)"
spoc-houses generate --split train --num "$TRAIN_HOUSES" --seed 0 --out "$OUT/houses" \
    --workers "$WORKERS"
spoc-houses generate --split val --num "$VAL_HOUSES" --seed 0 --out "$OUT/houses" \
    --workers "$WORKERS"
spoc-houses validate --require_connected true "$OUT/houses/val.jsonl.gz" > "$OUT/houses/val.report.jsonl"
spoc-houses show "$OUT/houses/train.jsonl.gz" --index 0 --out "$OUT/houses/train-0.png"

stage "2/5 expert episodes: shortest-path oracle, rendered, written as webdataset shards"
spoc-datagen episodes --config configs/datagen/tiny.yaml --houses "$OUT/houses/train.jsonl.gz" \
    --split train --num-shards 16 --episodes-per-shard 64 --out "$OUT/dataset" --workers "$WORKERS"
# The same expert with injected action noise: off-path states labelled with the way back.
spoc-datagen episodes --config configs/datagen/tiny.yaml --houses "$OUT/houses/train.jsonl.gz" \
    --split train-noise --num-shards 8 --episodes-per-shard 64 --action_noise 0.2 \
    --out "$OUT/dataset" --workers "$WORKERS"
spoc-datagen episodes --config configs/datagen/tiny.yaml --houses "$OUT/houses/val.jsonl.gz" \
    --split val --num-shards 2 --episodes-per-shard 16 --out "$OUT/dataset" --workers "$WORKERS"
spoc-datagen verify "$OUT/dataset"

stage "3/5 behaviour cloning (configs/train/tiny.yaml with the goal-FiLM CNN, 2,400 batches: a few minutes on a CPU)"
spoc-train fit --config configs/train/tiny.yaml --data.root "$OUT/dataset" \
    --data.train_splits '[train, train-noise]' --trainer.default_root_dir "$OUT/train" \
    --trainer.max_epochs 12 --data.batches_per_epoch 200 \
    --data.batch_size 8 --data.seq_len 32 --model.policy.goal_film true

stage "4/5 evaluation on held-out houses, with the oracle, random, forward and map-agent baselines"
spoc-eval run --checkpoint "$OUT/train/checkpoints/last.ckpt" --houses "$OUT/houses/val.jsonl.gz" \
    --episodes "$EVAL_EPISODES" --seed 0 --workers "$WORKERS" --out "$OUT/eval/policy"
for baseline in oracle random forward; do
    spoc-eval run --policy "$baseline" --dataset "$OUT/dataset" --houses "$OUT/houses/val.jsonl.gz" \
        --episodes "$EVAL_EPISODES" --seed 0 --workers "$WORKERS" --videos 0 --out "$OUT/eval/$baseline"
done
# The map agent (no learning: depth, odometry, a colour detector fitted on training frames)
spoc-detector fit --data "$OUT/dataset" --split train \
    --types '[Fridge]' --out "$OUT/detector.json"
spoc-eval run --policy mapper --detector "$OUT/detector.json" --dataset "$OUT/dataset" \
    --houses "$OUT/houses/val.jsonl.gz" --episodes "$EVAL_EPISODES" --seed 0 --workers "$WORKERS" \
    --videos 0 --out "$OUT/eval/mapper"

stage "5/5 summary"
spoc-eval compare "$OUT/eval/policy" "$OUT/eval/oracle" "$OUT/eval/random" "$OUT/eval/forward" \
    "$OUT/eval/mapper"
echo
echo "report: $OUT/eval/policy/report.html"
