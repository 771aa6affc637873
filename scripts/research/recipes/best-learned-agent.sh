#!/usr/bin/env bash
# The best learned agent on the 1,000 test episodes: 76.7% [74.0, 79.2], SPL 0.468 (16,200
# batches). A goal-FiLM CNN + LSTM policy trained given the target's box, deployed with a
# colour detector's box; RoomNav goals given the box of their room's anchor object; one more
# DAgger round; `end` only at probability >= 0.9 (--end_threshold 0.9, no per-task rule).
# Its whole lineage, in the order it was run:
#   1. given the target's box: 1,800 batches, the rate decayed from 1,800 over 3,600 (5,400)
#      (docs/experiments/target-box.md)
#   2. the colour detector; a second decay off 5,400 to 9,000; a third off 9,000 to 10,800, the
#      60.4% policy DAgger starts from (docs/experiments/detector.md)
#   3. DAgger rounds 1-6, configs/experiments/dagger-at-scale/{box,box-more,box-gentle}.yaml
#      (docs/experiments/dagger-at-scale.md)
#   4. 2,000 more training houses' expert episodes as the train-more split ("More houses, after
#      DAgger", docs/experiments/dagger-at-scale.md)
#   5. the detector with a colour per asset, plus Fridge, a RoomNav anchor
#      (docs/experiments/colour-per-asset.md, docs/experiments/room-anchors.md)
#   6. the anchors branch off round 6 on data stream 1 (`arm` of the room-type loss,
#      docs/experiments/ensemble-room-loss.md; docs/experiments/room-anchors.md)
#   7. one DAgger round off that branch, evaluated with --end_threshold 0.9
#      (docs/experiments/room-anchors.md)
# Along the way the recipe pairs three stages with their published per-episode results
# (spoc-eval compare; spoc-dagger evaluates each round on the same 1,000 test episodes).
#
# Time (as run, the 2-core CPU machine, often shared): 1,800 batches 43 min; the branch to
#   5,400 78 min; the second decay 93 min; the third 50 min (side by side, one thread); DAgger
#   rounds 1-2 with the BC arm 70 min, rounds 3-4 36 min, rounds 5-6 69 min; the 2,000 more
#   houses 20 min, their episodes 16 min; the per-asset detector fit 14 min on one core; a
#   1,200-batch branch off round 6 about 21 min; the anchors' DAgger round about 30 min with
#   its two evaluations.
# Requires: data-big.sh (data/aux/dataset, data/big/houses).
# Options: WORKERS (houses, episodes and the evaluation; default 2 as run; the files and
#   results do not depend on it).
#
# Not recorded exactly:
# - The third decay (runs/aux/seq32): the study page describes it (off the 9,000-batch checkpoint,
#   the rate back at 1e-3 and to 0 over 1,800 batches, 32-step chunks, one thread beside the
#   128-step run) without its command; the directory is the one
#   configs/experiments/dagger-at-scale/box.yaml starts from, and --trainer.max_epochs 36 is
#   10,800 batches of 300 per epoch.
# - runs/aux/detector.json, which DAgger rounds 1-6 roll out and are evaluated with, was the
#   one-colour fit; `spoc-detector fit` now keeps a colour per asset (the fit of
#   runs/aux/detector3.json), with no option for the older fit, so those rounds' rollouts see
#   the per-asset detector here.
# - Every box-policy stage up to round 6 trained with the box input not moved with the frames'
#   random shift (the code before 6718384); the loader now moves it (training.data.augment.shift_box),
#   which measured level on three data streams (docs/experiments/colour-per-asset.md).
# - DAgger rounds 1-2 trained with encoder_batch 0 (a resume then took it from the
#   checkpoint); configs/train/cpu.yaml's 32 now applies (the same outputs, faster).
# - The study page's "ev ... --end_threshold 0.9 (no per-task rule)" is written out in full below
#   (the published file's run record agrees: detector4, --end_threshold 0.9, 2 workers); its
#   --out and the mkdir before the second `cp -al` are not in the study page.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source scripts/research/recipes/_run.sh

WORKERS=${WORKERS:-2}
DAGGER=configs/experiments/dagger-at-scale
ANCHORS='{Bedroom: Bed, Bathroom: Toilet, Kitchen: Fridge, LivingRoom: Sofa}'

# 1. Given the target's box (--data.target_box true): configs/train/cpu.yaml on data/aux/dataset,
#    expert + noise, 1,800 batches, then the rate decayed to 0 over 3,600 from that checkpoint
train() {
    run spoc-train fit --config configs/train/cpu.yaml --data.root data/aux/dataset \
        --data.train_splits '[train, train-noise]' --data.target_box true "$@"
}
train --trainer.default_root_dir runs/aux/box
run cp runs/aux/box/checkpoints/last.ckpt runs/aux/box-step1800.ckpt
train --trainer.default_root_dir runs/aux/box-5400 --trainer.max_epochs 18 \
    --ckpt_path runs/aux/box-step1800.ckpt --model.decay_start 1800 --model.decay_steps 3600

# 2. The colour detector, fitted on training frames (2,000 episodes of train, every 12th frame);
#    a second decay off 5,400 (a warm restart: the rate back at 1e-3, then to 0 over 3,600) and
#    a third off 9,000 (to 0 over 1,800), one thread as run
run spoc-detector fit --data data/aux/dataset --split train --out runs/aux/detector.json
train --trainer.default_root_dir runs/aux/box-9000 --trainer.max_epochs 30 \
    --ckpt_path runs/aux/box-5400/checkpoints/last.ckpt --model.decay_start 5400 \
    --model.decay_steps 3600
run env OMP_NUM_THREADS=1 spoc-train fit --config configs/train/cpu.yaml \
    --data.root data/aux/dataset --data.train_splits '[train, train-noise]' \
    --data.target_box true --trainer.default_root_dir runs/aux/seq32 --trainer.max_epochs 36 \
    --ckpt_path runs/aux/box-9000/checkpoints/last.ckpt --model.decay_start 9000 \
    --model.decay_steps 1800

# 3. DAgger at scale from runs/aux/seq32, on a hard-linked copy of the dataset (DAgger appends
#    shards; a rerun keeps the copy, which holds them by then, and skips finished rounds)
if [[ ! -e data/aux/dagger ]]; then
    run cp -al data/aux/dataset data/aux/dagger
fi
run spoc-dagger --config "$DAGGER/box.yaml"                                   # rounds 0-2, BC arm
run spoc-dagger --config "$DAGGER/box.yaml" --config "$DAGGER/box-more.yaml"  # rounds 3-4
run spoc-dagger --config "$DAGGER/box.yaml" --config "$DAGGER/box-gentle.yaml" # rounds 5-6
# round 0 is the 10,800-batch policy (detector, 0.7): 60.4% [57.3, 63.4], SPL 0.401;
# round 6 (detector, 0.9 and RoomNav 0.7): 72.6% [69.8, 75.3], SPL 0.464
run spoc-eval compare results/eval1k/aux-box-10800-det-end0.7.json.gz runs/aux/dagger/eval/round-0
run spoc-eval compare results/eval1k/aux-dagger-round6-det-end0.9-room0.7.json.gz \
    runs/aux/dagger/eval/round-6

# 4. 2,000 more training houses (the train split's houses 1,000-2,999: the same generator and
#    seed, so the first 1,000 are data/big's) and 10 expert episodes each, as a split beside the
#    others in data/aux/dagger (the house file is written once: the split records its sha256)
run spoc-houses generate --split train --num 3000 --seed 0 --out data/more/houses \
    --workers "$WORKERS"
if [[ ! -e data/more/houses/train-more.jsonl.gz ]]; then
    run python -c "import gzip; l = gzip.open('data/more/houses/train.jsonl.gz', 'rt').readlines(); \
f = gzip.open('data/more/houses/train-more.jsonl.gz', 'wt'); f.writelines(l[1000:]); f.close()"
fi
run spoc-datagen episodes --config configs/datagen/default.yaml --out data/aux/dagger \
    --camera.height 112 --camera.width 192 --tasks.min_pixels 12 --workers "$WORKERS" \
    --houses data/more/houses/train-more.jsonl.gz --split train-more --num-shards 200 \
    --episodes-per-shard 100 --episodes-per-house 10

# 5. The detector with a colour per asset (as runs/aux/detector3.json) and Fridge, the kitchen's
#    anchor, fitted on its own pixels (the 16 targets' fit is unchanged by it)
run spoc-detector fit --data data/aux/dataset --split train --types '[Fridge]' \
    --out runs/anchor/detector4.json

# 6. The anchors branch off round 6 on data stream 1: 1,200 batches from round 6's weights with
#    a fresh optimizer (3e-4 after 100 warm-up batches, decayed to 0 at 1,200), one thread
run env OMP_NUM_THREADS=1 spoc-train fit --config configs/train/cpu.yaml \
    --data.root data/aux/dagger --data.target_box true \
    --data.train_splits '[train, train-noise, train-more]' \
    --model.init_checkpoint runs/aux/dagger/checkpoints/round-6.ckpt --model.lr 3e-4 \
    --model.warmup_steps 100 --model.decay_start 100 --model.decay_steps 1100 \
    --trainer.max_epochs 4 --trainer.enable_progress_bar false \
    --data.seed 1 --trainer.default_root_dir runs/anchor/seed1 --data.room_anchors "$ANCHORS"

# 7. One DAgger round off it (a fresh rollout seed, 999 rollouts, the rate 3e-4 decayed to 0
#    over 600 batches), on a copy of data/aux/dagger
run mkdir -p data/anchor
if [[ ! -e data/anchor/dagger ]]; then
    run cp -al data/aux/dagger data/anchor/dagger
fi
run spoc-dagger --config "$DAGGER/box.yaml" --dataset data/anchor/dagger --out runs/anchor/dagger \
    --init_checkpoint runs/anchor/seed1/checkpoints/last.ckpt --rounds 1 --betas '[0.0]' --seed 7 \
    --detector runs/anchor/detector4.json --end_threshold 0.9 \
    --end_threshold_by_task '{roomnav: 0.7}' --bc_compare false \
    --train_args "[--data.train_splits, '[train, train-noise, train-more]', \
--data.target_box, 'true', --data.room_anchors, '$ANCHORS', --model.lr, '3e-4', \
--model.warmup_steps, '100', --model.decay_start, '1200', --model.decay_steps, '600', \
--trainer.enable_progress_bar, 'false']"
# round 0 is the anchors branch (RoomNav 0.7): 74.7% [71.9, 77.3], SPL 0.452;
# round 1 with the same rule: 76.1% [73.4, 78.6], SPL 0.473
run spoc-eval compare results/eval1k/anchor-seed1-det4-end0.9-room0.7.json.gz \
    runs/anchor/dagger/eval/round-0
run spoc-eval compare results/eval1k/anchor-dagger1-det4-end0.9-room0.7.json.gz \
    runs/anchor/dagger/eval/round-1

# The best agent: that round's policy with `end` only at probability >= 0.9 for both tasks
run spoc-eval run --checkpoint runs/anchor/dagger/checkpoints/round-1.ckpt \
    --detector runs/anchor/detector4.json --end_threshold 0.9 \
    --houses data/big/houses/test.jsonl.gz --episodes 1000 --seed 0 --workers "$WORKERS" \
    --videos 0 --progress false --out runs/anchor/eval1k-dagger1-end0.9
run spoc-eval compare results/eval1k/anchor-dagger1-det4-end0.9.json.gz \
    runs/anchor/eval1k-dagger1-end0.9
