"""Record the golden metrics (before a refactor, or when a change is meant to move them):

    VECPG_CPU_DEVICES=1 python tests/golden/make_golden.py

ppo and trpo on CartPole, seeds [0, 1], 20 iterations of 8 envs x 32 steps, one compiled
call on one XLA CPU device. Every metric the trainer logs is recorded under
"<algo>/<name>", whatever the names are. tests/test_golden.py compares the current code
against the first iterations of it, within a float32 tolerance.
"""

from pathlib import Path

import jax
import numpy as np

import vecpg

GOLDEN = Path(__file__).with_name("cartpole_ppo_trpo.npz")
CONFIGS = {
    algo: vecpg.TrainConfig(
        algo=algo, env="gymnax/CartPole-v1", num_envs=8, num_steps=32, total_steps=20 * 256
    )
    for algo in ("ppo", "trpo")
}


def record() -> dict[str, np.ndarray]:
    """{"<algo>/<metric>": [2 seeds, 20 iterations]} for every metric of both runs."""
    devices = jax.device_count()
    assert devices == 1, f"{devices} devices: record with VECPG_CPU_DEVICES=1"
    out = {}
    for algo, cfg in CONFIGS.items():
        res = vecpg.train(cfg, seeds=[0, 1])
        for k, v in res.metrics.items():
            out[f"{algo}/{k}"] = v
    return out


if __name__ == "__main__":
    np.savez(GOLDEN, **record())
    print(f"wrote {GOLDEN}")
