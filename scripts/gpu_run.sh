#!/usr/bin/env bash
# The CPU recipe of docs/experiments/behaviour-cloning.md on one GPU node, in a fixed wall-clock budget: the same houses and
# datagen commands as the CPU recipe (expert + noise-injected expert + val, 112x192), then the
# goal-FiLM CNN of configs/train/gpu.yaml trained from scratch at 112x192 for what is left of
# the budget, its learning rate decayed to 0 over the last DECAY_FRACTION of the batches.
#
# The number of batches is fixed by measurement, not guessed: a first epoch at a constant rate
# gives the node's batches per second, then the run is resumed (--ckpt_path last, as the CPU
# recipe's resumes) with max_epochs and the decay that end by the deadline (training.budget).
# Every command is printed as run. Needs the project installed with a CUDA torch (spoc-* on
# PATH) and the houses of the CPU recipe (spoc-houses generate ... --out data/big/houses).
#
#   HOUSES=data/big/houses DATA=data/gpu/dataset RUN=runs/gpu/film112 BUDGET=550 \
#       bash scripts/gpu_run.sh
# A dry run on a CPU: ACCELERATOR=cpu PRECISION=32-true with small *_SHARDS and
# BATCHES_PER_EPOCH (the datagen resumes: shards already written are kept).
# Another policy: CONFIG, IMAGE_SIZE, BATCH_SIZE and TRAIN_ARGS (more spoc-train arguments,
# split on spaces), e.g. the box policy of configs/train/cpu.yaml (docs/experiments/one-gpu.md) on one GPU:
#   CONFIG=configs/train/cpu.yaml IMAGE_SIZE='[84, 144]' \
#   TRAIN_ARGS='--data.target_box true --model.policy.encoder_batch 0' bash scripts/gpu_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

HOUSES=${HOUSES:-data/big/houses}
DATA=${DATA:-data/gpu/dataset}
RUN=${RUN:-runs/gpu/film112}
BUDGET=${BUDGET:-3600}                 # seconds from the start of this script to the last batch
WORKERS=${WORKERS:-$(nproc)}           # datagen processes
LOADER_WORKERS=${LOADER_WORKERS:-$(( $(nproc) - 2 ))}
BATCHES_PER_EPOCH=${BATCHES_PER_EPOCH:-500}
DECAY_FRACTION=${DECAY_FRACTION:-0.35}
PRECISION=${PRECISION:-bf16-mixed}
CONFIG=${CONFIG:-configs/train/gpu.yaml}
IMAGE_SIZE=${IMAGE_SIZE:-[112, 192]}
BATCH_SIZE=${BATCH_SIZE:-64}
read -r -a TRAIN_ARGS <<< "${TRAIN_ARGS:-}"
ACCELERATOR=${ACCELERATOR:-gpu}
TRAIN_SHARDS=${TRAIN_SHARDS:-200} NOISE_SHARDS=${NOISE_SHARDS:-100} VAL_SHARDS=${VAL_SHARDS:-6}
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
stage() { printf '\n== %s  [%s, %ss]\n' "$1" "$(date +%H:%M:%S)" "$(elapsed)"; }
run() { printf '+ %s\n' "$*"; "$@"; }

stage "1/3 expert episodes at 112x192 ($WORKERS processes)"
COMMON=(--config configs/datagen/default.yaml --out "$DATA" --camera.height 112
        --camera.width 192 --tasks.min_pixels 12 --workers "$WORKERS")
run spoc-datagen episodes "${COMMON[@]}" --houses "$HOUSES/train.jsonl.gz" --split train \
    --num-shards "$TRAIN_SHARDS" --episodes-per-shard 100 --episodes-per-house 20
run spoc-datagen episodes "${COMMON[@]}" --houses "$HOUSES/train.jsonl.gz" --split train-noise \
    --num-shards "$NOISE_SHARDS" --episodes-per-shard 100 --episodes-per-house 10 --action_noise 0.2
run spoc-datagen episodes "${COMMON[@]}" --houses "$HOUSES/val.jsonl.gz" --split val \
    --num-shards "$VAL_SHARDS" --episodes-per-shard 50 --episodes-per-house 5

train() {
    run spoc-train fit --config "$CONFIG" --data.root "$DATA" \
        --data.train_splits '[train, train-noise]' --data.image_size "$IMAGE_SIZE" \
        --data.seq_len 32 --data.batch_size "$BATCH_SIZE" --data.num_workers "$LOADER_WORKERS" \
        --data.batches_per_epoch "$BATCHES_PER_EPOCH" --model.lr 1.0e-3 \
        --model.warmup_steps 300 --trainer.accelerator "$ACCELERATOR" --trainer.devices 1 \
        --trainer.strategy auto --trainer.precision "$PRECISION" --trainer.enable_progress_bar false \
        --trainer.default_root_dir "$RUN" "${TRAIN_ARGS[@]}" "$@"
}

stage "2/3 training, first epoch at a constant rate: the node's batches per second"
start=$(date +%s)
train --trainer.max_epochs 1
first=$(( $(date +%s) - start ))
left=$(( BUDGET - $(elapsed) ))
read -r epochs decay_start decay_steps < <(python3 -m training.budget --first "$first" \
    --left "$left" --batches_per_epoch "$BATCHES_PER_EPOCH" --decay_fraction "$DECAY_FRACTION")
total=$(( decay_start + decay_steps ))
echo "first epoch: $BATCHES_PER_EPOCH batches in ${first}s; ${left}s left -> $total batches," \
     "decayed over the last $decay_steps"

stage "3/3 training to $total batches, the rate decayed from $decay_start"
train --trainer.max_epochs "$epochs" --ckpt_path last \
    --model.decay_start "$decay_start" --model.decay_steps "$decay_steps"
stage "done: $RUN/checkpoints/last.ckpt"
