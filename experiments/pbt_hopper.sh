#!/usr/bin/env bash
# PBT against the best fixed config: ppo on brax hopper (positional), 8 populations (seeds
# 0-7) of 8 members sampled from the space of experiments/search_hopper.sh, exploit and
# explore every 20 of 196 iterations; the same 8 configs x 8 seeds without PBT as the
# fixed side. Copies report.md, summary.json and the two figures to
# experiments/results/pbt_hopper/. Run from the repo root.
set -euo pipefail
out=${1:-runs/pbt-hopper}
vecpg search --algo ppo --env brax/hopper --backend positional --num-envs 32 \
  --num-steps 32 --total-steps 200704 --learning-rate 3e-4 \
  --space learning_rate=log:1e-5:1e-2 --space clip_eps=uniform:0.1:0.3 \
  --space gae_lambda=uniform:0.8:0.99 --trials 8 --seeds 8 --sampler random \
  --sample-seed 0 --pbt --pbt-interval 20 --no-progress --out "$out"
mkdir -p experiments/results/pbt_hopper
cp "$out/report.md" "$out/summary.json" "$out/pbt_vs_fixed.png" "$out/pbt_schedules.png" \
  experiments/results/pbt_hopper/
