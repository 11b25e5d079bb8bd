"""Python API: train many seeds in one compiled call, save, load, deploy."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from vecpg.config import ConfigError, TrainConfig
from vecpg.distributions import distribution
from vecpg.envs.protocol import EnvSpec
from vecpg.execute import run_lanes
from vecpg.networks import AgentParams, init_agent_params, make_agent, policy_dist
from vecpg.stats import mean_ci95

FINAL_FRACTION = 0.1  # summary returns average the last 10% of iterations


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"invalid seeds={seeds!r}: must be an integer >= 1 or a list of ints")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise ConfigError(f"invalid seeds={seeds!r}: must be distinct non-negative integers")
    return out


@dataclasses.dataclass
class Results:
    """Output of `vecpg.train`. metrics leaves are [seeds, iterations] numpy arrays."""

    config: TrainConfig
    seeds: list[int]
    metrics: dict[str, np.ndarray]
    params: AgentParams  # leaves with a leading [seeds] axis
    spec: EnvSpec
    compile_s: float = float("nan")
    run_s: float = float("nan")
    num_devices: int = 1

    def final_returns(self) -> np.ndarray:
        """[seeds] mean episode_return over the last 10% of iterations."""
        r = self.metrics["episode_return"]
        k = max(1, int(round(r.shape[1] * FINAL_FRACTION)))
        return r[:, -k:].mean(axis=1)

    def summary(self) -> dict[str, Any]:
        final = self.final_returns()
        mean, lo, hi = mean_ci95(final)
        steps = self.metrics["env_steps"][0, -1] * len(self.seeds)
        return {
            "env": self.config.env,
            "algo": self.config.algo,
            "seeds": self.seeds,
            "final_return_mean": float(mean),
            "final_return_ci95": [float(lo), float(hi)],
            "final_return_per_seed": [float(x) for x in final],
            "env_steps_per_seed": int(self.metrics["env_steps"][0, -1]),
            "compile_s": self.compile_s,
            "run_s": self.run_s,
            "env_steps_per_s": float(steps / self.run_s) if self.run_s > 0 else None,
            "nonfinite_total": int(self.metrics["nonfinite"].sum()),
        }

    def save(self, run_dir: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write config.json, spec.json, metrics.npz, summary.json, params.msgpack and
        curves.png. Files go to a temporary sibling first, then replace `run_dir`, so a
        failure never leaves a half-written run or destroys an earlier one."""
        run_dir = Path(run_dir)
        check_out_dir(run_dir, overwrite)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", dir=run_dir.parent))
        try:
            (tmp / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
            (tmp / "spec.json").write_text(json.dumps(self.spec.to_json(), indent=2))
            np.savez(tmp / "metrics.npz", seeds=np.array(self.seeds), **self.metrics)
            (tmp / "summary.json").write_text(json.dumps(self.summary(), indent=2))
            (tmp / "params.msgpack").write_bytes(flax.serialization.to_bytes(self.params))
            from vecpg.plots import plot_curves

            plot_curves(
                self.metrics, tmp / "curves.png", title=f"{self.config.algo} on {self.config.env}"
            )
            if run_dir.exists():
                shutil.rmtree(run_dir)
            os.replace(tmp, run_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return run_dir


def check_out_dir(run_dir: Path, overwrite: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"invalid out={str(run_dir)!r}: exists and is not a directory")
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"invalid out={str(run_dir)!r}: directory exists and is not empty; pass --overwrite"
        )


def train(
    config: TrainConfig,
    seeds: int | Sequence[int] = 8,
    progress: bool = False,
    max_runs_per_call: int | None = None,
) -> Results:
    """Train `config` on every seed in ONE compiled call (vmapped over seeds, the seeds
    axis sharded over all local devices).

    Seed s uses `jax.random.key(s)`, so seed s of a batch matches seed s trained alone.
    With `progress`, a live line (rich bar on a terminal) is driven from inside the
    compiled run every `config.log_every` iterations. `max_runs_per_call` splits the
    seeds into equal chunks (same compiled program, same results) to bound memory.
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"invalid config={type(config).__name__}: must be a vecpg.TrainConfig")
    seeds = seed_list(seeds)
    check_max_runs(max_runs_per_call)
    out = run_lanes(
        config.static(),
        seeds,
        [config.hparams()] * len(seeds),
        max_runs_per_call,
        progress,
        config.num_iterations * config.batch_size,
    )
    from vecpg.envs import make_env

    return Results(
        config=config,
        seeds=seeds,
        metrics=out.metrics,
        params=out.params,
        spec=make_env(config.env, config.backend).spec,
        compile_s=out.compile_s,
        run_s=out.run_s,
        num_devices=out.num_devices,
    )


def check_max_runs(max_runs_per_call: int | None) -> None:
    if max_runs_per_call is not None and (
        not isinstance(max_runs_per_call, int) or max_runs_per_call < 1
    ):
        raise ConfigError(
            f"invalid max_runs_per_call={max_runs_per_call!r}: must be an integer >= 1 or None"
        )


def _params_template(config: TrainConfig, spec: EnvSpec, num_seeds: int) -> AgentParams:
    agent = make_agent(spec, config.hidden, config.activation)
    one = init_agent_params(agent, jax.random.key(0))
    return jax.tree.map(lambda x: np.zeros((num_seeds, *x.shape), x.dtype), one)


def load(run_dir: str | os.PathLike) -> Results:
    """Read a run directory written by `Results.save`."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a vecpg run dir (no config.json)")
    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    spec = EnvSpec.from_json(json.loads((run_dir / "spec.json").read_text()))
    with np.load(run_dir / "metrics.npz") as z:
        metrics = {k: z[k] for k in z.files if k != "seeds"}
        seeds = [int(s) for s in z["seeds"]]
    summary = json.loads((run_dir / "summary.json").read_text())
    params = flax.serialization.from_bytes(
        _params_template(config, spec, len(seeds)), (run_dir / "params.msgpack").read_bytes()
    )
    return Results(
        config, seeds, metrics, params, spec, summary.get("compile_s"), summary.get("run_s")
    )


def load_policy(run_dir: str | os.PathLike, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A deterministic numpy policy: obs [obs_dim] or [N, obs_dim] -> action (argmax or
    clipped mean), with the run's observation normalisation applied."""
    res = load(run_dir)
    if seed not in res.seeds:
        raise ConfigError(f"invalid seed={seed!r}: this run has seeds {res.seeds}")
    i = res.seeds.index(seed)
    params = jax.tree.map(lambda x: jnp.asarray(x[i]), res.params)
    agent = make_agent(res.spec, res.config.hidden, res.config.activation)
    dist = distribution(res.spec.discrete)
    use_norm = res.config.normalize_obs

    @jax.jit
    def act(obs: jax.Array) -> jax.Array:
        a = dist.mode(policy_dist(agent, params, obs, use_norm))
        if res.spec.discrete:
            return a
        return jnp.clip(a, res.spec.action_low, res.spec.action_high)

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.asarray(act(jnp.asarray(obs, jnp.float32)))

    return policy
