"""Record the golden metrics (run once, before a refactor): `python tests/golden/make_golden.py`.

ppo and trpo on CartPole, seeds [0, 1], 20 iterations of 8 envs x 32 steps, one compiled
call on one XLA CPU device. tests/test_golden.py compares the current code against it.
"""

from pathlib import Path

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
    out = {}
    for algo, cfg in CONFIGS.items():
        res = vecpg.train(cfg, seeds=[0, 1])
        for k, v in res.metrics.items():
            out[f"{algo}/{k}"] = v
    return out


if __name__ == "__main__":
    np.savez(GOLDEN, **record())
    print(f"wrote {GOLDEN}")
