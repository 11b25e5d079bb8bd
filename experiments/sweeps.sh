#!/usr/bin/env bash
# Experiments (b) KL-budget sweep for trpo and npg, (c) clip-epsilon sweep for ppo, on
# gymnax CartPole-v1, 16 seeds per point; each sweep is one compiled call. At the default
# 500k steps every setting saturates at 500 (measured: IQM 500 everywhere), so the sweeps
# use a 100k-step budget where the settings differ.
# Command (2-core CPU): bash experiments/sweeps.sh   (runtime is printed per sweep)
set -euo pipefail
cd "$(dirname "$0")/.."
export XLA_FLAGS=--xla_force_host_platform_device_count=2
out=experiments/results
for algo in trpo npg; do
  vecpg sweep --algo "$algo" --grid max_kl=0.0025,0.005,0.01,0.02,0.04 --seeds 16 \
    --total-steps 100000 --no-progress --out "runs/sweep-kl-$algo" --overwrite | grep -v -i warn | tail -9 | tee "$out/sweep_kl_$algo.txt"
  cp "runs/sweep-kl-$algo/ranking.md" "$out/sweep_kl_$algo.md"
  cp "runs/sweep-kl-$algo/ranking.png" "$out/sweep_kl_$algo.png"
done
vecpg sweep --algo ppo --grid clip_eps=0.05,0.1,0.2,0.3,0.5 --seeds 16 \
  --total-steps 100000 --no-progress --out runs/sweep-clip-ppo --overwrite | grep -v -i warn | tail -9 | tee "$out/sweep_clip_ppo.txt"
cp runs/sweep-clip-ppo/ranking.md "$out/sweep_clip_ppo.md"
cp runs/sweep-clip-ppo/ranking.png "$out/sweep_clip_ppo.png"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores" | tee "$out/sweeps_machine.txt"
