#!/usr/bin/env bash
# Pose-only shards against video shards, and visual randomisation on load, at the quickstart's
# size: the quickstart's houses and episodes written twice (with video, and pose-only), the
# quickstart's policy trained on each (the pose-only one renders its frames on load), a third
# trained on the pose-only shards with every part of the appearance randomised, all evaluated
# on the same 200 held-out episodes and paired with `spoc-eval compare`.
#
# Docs: docs/experiments/pose-only.md
# Time (as run, 2 CPU cores, shared): houses 1 min; datagen 1.5 min (video) and 0.5 min
#   (pose-only); training 3 min on video and 7 min on pose-only shards (the loader renders
#   every chunk), 27 min with the appearance randomised on a machine busy with other jobs;
#   each evaluation 35-46 s.
# Requires: nothing but the project installed. Options: OUT (default runs/pose-only),
#   WORKERS (default 2).
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/research/recipes/_run.sh

OUT=${OUT:-runs/pose-only}
WORKERS=${WORKERS:-2}
H=$OUT/houses

run spoc-houses generate --split train --num 96 --seed 0 --out "$H" --workers "$WORKERS"
run spoc-houses generate --split val --num 8 --seed 0 --out "$H" --workers "$WORKERS"
for kind in video none; do
    data=(--config configs/datagen/tiny.yaml --out "$OUT/data-$kind" --frames "$kind"
          --workers "$WORKERS")
    run spoc-datagen episodes "${data[@]}" --houses "$H/train.jsonl.gz" --split train \
        --num-shards 16 --episodes-per-shard 64
    run spoc-datagen episodes "${data[@]}" --houses "$H/train.jsonl.gz" --split train-noise \
        --num-shards 8 --episodes-per-shard 64 --action_noise 0.2
    run spoc-datagen episodes "${data[@]}" --houses "$H/val.jsonl.gz" --split val \
        --num-shards 2 --episodes-per-shard 16
    run spoc-datagen verify "$OUT/data-$kind"
done
# the quickstart's training recipe on each; the third with the appearance randomised
train=(--config configs/train/tiny.yaml --data.train_splits '[train, train-noise]'
       --trainer.max_epochs 12 --data.batches_per_epoch 200 --data.batch_size 8
       --data.seq_len 32 --model.policy.goal_film true --trainer.enable_progress_bar false)
run spoc-train fit "${train[@]}" --data.root "$OUT/data-video" \
    --trainer.default_root_dir "$OUT/train-video"
run spoc-train fit "${train[@]}" --data.root "$OUT/data-none" \
    --trainer.default_root_dir "$OUT/train-none"
run spoc-train fit "${train[@]}" --data.root "$OUT/data-none" \
    --trainer.default_root_dir "$OUT/train-none-appearance" \
    --data.appearance.object_colors 1 --data.appearance.surface_colors 1 \
    --data.appearance.lighting 1 --data.appearance.noise 1
for run_name in video none none-appearance; do
    run spoc-eval run --checkpoint "$OUT/train-$run_name/checkpoints/last.ckpt" \
        --houses "$H/val.jsonl.gz" --episodes 200 --seed 0 --workers "$WORKERS" --videos 0 \
        --out "$OUT/eval/$run_name"
done
run spoc-eval compare "$OUT/eval/video" "$OUT/eval/none" "$OUT/eval/none-appearance"
# the same episodes with every look shifted (a probe), each paired with its run above
for run_name in video none none-appearance; do
    run spoc-eval run --checkpoint "$OUT/train-$run_name/checkpoints/last.ckpt" \
        --houses "$H/val.jsonl.gz" --episodes 200 --seed 0 --workers "$WORKERS" --videos 0 \
        --probe.appearance 1 --out "$OUT/eval/$run_name-shifted"
    run spoc-eval compare "$OUT/eval/$run_name" "$OUT/eval/$run_name-shifted"
done
run spoc-eval compare "$OUT/eval/none-shifted" "$OUT/eval/none-appearance-shifted" \
    "$OUT/eval/video-shifted"
