#!/usr/bin/env bash
# Random search for ppo on brax hopper (positional): 32 trials x 2 selection seeds, the
# top 3 confirmed on 8 fresh seeds; copies report.md and summary.json to
# experiments/results/search_hopper/. Run from the repo root.
set -euo pipefail
out=${1:-runs/search-hopper}
vecpg search --algo ppo --env brax/hopper --backend positional --num-envs 32 \
  --num-steps 32 --total-steps 200704 --learning-rate 3e-4 \
  --space learning_rate=log:1e-5:1e-2 --space clip_eps=uniform:0.1:0.3 \
  --space gae_lambda=uniform:0.8:0.99 --trials 32 --seeds 2 --top 3 --confirm-seeds 8 \
  --sampler random --sample-seed 0 --no-progress --out "$out"
# the report written again by the current code (exact best-config lines)
python -c "import sys; from pathlib import Path; from vecpg.tuning.run import load_search; load_search(sys.argv[1]).save(Path(sys.argv[1]))" "$out"
mkdir -p experiments/results/search_hopper
cp "$out/report.md" "$out/summary.json" experiments/results/search_hopper/
