"""What one `vecpg bench` run measures. `BenchPlan` is the CLI's flags themselves."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from vecpg.config import TrainConfig
from vecpg.errors import ConfigError, check_output_dir

DEFAULT_SCALING_SEEDS = (1, 8, 32, 128)
BENCH_FILES = ("bench.json", "bench.md")  # what `vecpg bench` writes (and may replace)
# `vecpg bench --preset gpu`: the issue-14 GPU table, sized to fit a 10-minute command.
GPU_PRESET: dict[str, Any] = dict(
    env="brax/hopper",
    backend="positional",
    num_envs=2048,
    num_steps=32,
    update_epochs=4,
    num_minibatches=4,
    iterations=10,
    repeats=3,
    peer_steps=4_194_304,
    scaling=True,
    scaling_seeds=(1, 16, 64, 256),
    scaling_env="brax/hopper",
    scaling_envs=128,
    scaling_steps=32,
    logging_runs=0,
    detail=False,
    many_seeds=1024,
)
MANY_SEEDS_CONFIG = TrainConfig(total_steps=500_000)  # CartPole, vecpg's ppo defaults
VMAP_CONFIG = TrainConfig(total_steps=49_152)  # --vmap-runs: CartPole, 48 iterations of 8 x 128


@dataclasses.dataclass(frozen=True)
class BenchPlan:
    """Side-by-side timings in one process: env ceiling, vecpg ppo/trpo, trust-region
    pieces, Brax PPO (and rejax) peers, seeds scaling, logging overhead."""

    env: str = "brax/hopper"
    """Environment to time on."""
    backend: str = "positional"
    """Brax backend."""
    num_envs: int = 64
    """Parallel environments."""
    num_steps: int = 64
    """Rollout length (batch = num_envs * num_steps)."""
    update_epochs: int = 4
    """PPO epochs per batch."""
    num_minibatches: int = 4
    """Minibatches per epoch (update-to-data ratio = epochs x minibatches)."""
    memory: Literal["none", "gru", "lstm"] = "none"
    """Time ppo and trpo with a recurrent core (gru | lstm) of --memory-size units, and the
    same configs without it, side by side (the phase and trust-region detail and the peer
    comparisons are for feed-forward policies: skipped)."""
    memory_size: int = 128
    """Units of the recurrent core (with --memory)."""
    cpu_fast_math: bool = True
    """vecpg's programs with the config's cpu_fast_math (Brax PPO, a peer, always compiles
    with XLA's defaults; XLA_FLAGS gives both the same options)."""
    cpu_opt_level: int = 1
    """vecpg's programs with the config's cpu_opt_level (LLVM level on CPU, 0-3)."""
    cpu_fusion_emitters: bool = True
    """vecpg's programs with XLA CPU's MLIR fusion emitters (the config's field; off:
    its LLVM IR emitters, a shorter compile and a slower run)."""
    gpu_autotune: bool = False
    """vecpg's programs with XLA's GPU autotuning (the config's gpu_autotune)."""
    iterations: int = 10
    """Training iterations per timed call."""
    repeats: int = 3
    """Timed calls per measurement (the median is reported)."""
    peer_steps: int = 200_000
    """Env steps for the Brax PPO (brax envs) and rejax comparisons (0: skip peers)."""
    scaling: bool = True
    """Measure seeds scaling (on --scaling-env)."""
    scaling_seeds: Annotated[tuple[int, ...], tyro.conf.UseAppendAction] = ()
    """Repeatable seed count for the scaling table (default 1, 8, 32, 128)."""
    scaling_env: str = "gymnax/CartPole-v1"
    """Environment of the seeds-scaling and logging tables."""
    scaling_envs: int = 8
    """Parallel environments per seed in the seeds-scaling table."""
    scaling_steps: int = 128
    """Rollout length per seed in the seeds-scaling table."""
    logging_runs: int = 8
    """Seeds for the host-callback / W&B overhead measurement (0: skip)."""
    detail: bool = True
    """Time the phases of one iteration and the trust-region pieces."""
    many_seeds: int = 0
    """Also train this many CartPole ppo seeds x 500k steps in one call (0: skip)."""
    vmap_runs: int = 0
    """Also time this many CartPole runs as one vmapped call vs one by one (0: skip)."""
    quick: bool = False
    """Tiny settings for a smoke test (gymnax CartPole, small batch, no peers)."""
    preset: Literal["none", "gpu"] = "none"
    """gpu: the GPU table (hopper 2048 x 32 with 4 x 4 minibatches, Brax PPO at 4.2M
    steps, hopper seeds scaling 1/16/64/256, 1024 CartPole seeds); it sets those fields."""
    out: str = "bench"
    """Directory for bench.json and bench.md: new, empty, or an earlier bench's."""

    def resolved(self) -> BenchPlan:
        """The plan to run: checked (one line per bad flag), `--preset` / `--quick` applied."""
        if self.preset == "gpu":
            return dataclasses.replace(self, **GPU_PRESET, preset="none").resolved()
        # env, backend and the LLVM level, before compiling
        TrainConfig(env=self.env, backend=self.backend, cpu_opt_level=self.cpu_opt_level)
        check_output_dir(Path(self.out), "out", BENCH_FILES, "vecpg bench")
        TrainConfig(env=self.scaling_env)
        for name in ("num_envs", "num_steps", "iterations", "repeats", "update_epochs",
                     "num_minibatches"):  # fmt: skip
            _at_least(name, getattr(self, name), 1)
        for name in ("scaling_envs", "scaling_steps", "memory_size"):
            _at_least(name, getattr(self, name), 1)
        for name in ("peer_steps", "logging_runs", "vmap_runs", "many_seeds"):
            _at_least(name, getattr(self, name), 0)
        if any(not isinstance(n, int) or n < 1 for n in self.scaling_seeds):
            raise ConfigError(
                f"invalid scaling_seeds={self.scaling_seeds!r}: must be integers >= 1"
            )
        seeds = self.scaling_seeds or DEFAULT_SCALING_SEEDS
        plan = dataclasses.replace(self, scaling_seeds=seeds if self.scaling else ())
        if not self.quick:
            return plan
        return dataclasses.replace(
            plan,
            env="gymnax/CartPole-v1",
            backend="generalized",
            num_envs=8,
            num_steps=32,
            iterations=4,
            repeats=2,
            peer_steps=0,
            scaling_seeds=(1, 4),
            scaling_envs=4,
            scaling_steps=32,
            logging_runs=2,
            update_epochs=2,
            num_minibatches=2,
        )

    def base(self) -> TrainConfig:
        """The timed training config: the bench env with vecpg's other defaults."""
        return TrainConfig(
            env=self.env,
            backend=self.backend,
            num_envs=self.num_envs,
            num_steps=self.num_steps,
            total_steps=self.iterations * self.num_envs * self.num_steps,
            update_epochs=self.update_epochs,
            num_minibatches=self.num_minibatches,
            hidden=(64, 64),
            memory=self.memory,
            memory_size=self.memory_size,
            **self.xla_options(),
        )

    def xla_options(self) -> dict[str, Any]:
        """The XLA option fields, for every program the bench compiles."""
        return dict(
            cpu_fast_math=self.cpu_fast_math,
            cpu_opt_level=self.cpu_opt_level,
            cpu_fusion_emitters=self.cpu_fusion_emitters,
            gpu_autotune=self.gpu_autotune,
        )

    def scaling_config(self) -> TrainConfig:
        return TrainConfig(
            env=self.scaling_env,
            backend=self.backend,  # a brax scaling env uses the bench's backend
            num_envs=self.scaling_envs,
            num_steps=self.scaling_steps,
            total_steps=self.iterations * self.scaling_envs * self.scaling_steps,
            **self.xla_options(),
        )


def _at_least(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"invalid {name}={value!r}: must be an integer >= {low}")
