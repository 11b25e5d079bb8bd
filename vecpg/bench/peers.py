"""Peer trainers for `vecpg bench`, run in the same process with matched settings:
Brax's own PPO (`brax.training.agents.ppo.train`), and rejax PPO when installed for the
bench (it needs gymnax 0.0.9, so it runs in a subprocess with its own path).

Brax PPO keeps its default `bootstrap_on_timeout=False`: with its default training
wrappers `True` fails (they do not set the `time_out` info key it reads).

Matching: vecpg's iteration (num_envs x num_steps, num_minibatches x update_epochs) is
Brax's training step with unroll_length=num_steps and batch_size*num_minibatches =
num_envs; same MLP sizes and activation, Gaussian policy, observation normalisation,
reward scale, discount, GAE lambda, clip, entropy and gradient-norm settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from vecpg.bench.compile_log import compile_log
from vecpg.config import TrainConfig

REJAX_PATH_ENV = "VECPG_REJAX_PATH"  # a pip --target dir holding rejax + gymnax 0.0.9


@contextlib.contextmanager
def device_put_replicated_shim() -> Iterator[None]:
    """Brax 0.14.2's trainers call `jax.device_put_replicated`, removed in jax 0.10:
    provide it (a stack sharded over the devices) for the duration of the bench only."""
    if hasattr(jax, "device_put_replicated"):
        yield
        return

    def device_put_replicated(x, devices):
        # An identity pmap gives arrays laid out exactly like pmap outputs, so Brax's
        # pmapped epoch does not recompile when its own outputs come back in.
        stack = lambda a: jnp.stack([jnp.asarray(a)] * len(devices))  # noqa: E731
        return jax.pmap(lambda t: t, devices=devices)(jax.tree.map(stack, x))

    jax.device_put_replicated = device_put_replicated
    try:
        yield
    finally:
        del jax.device_put_replicated


def brax_ppo(cfg: TrainConfig, total_steps: int, eval_envs: int, seed: int = 0) -> dict:
    """Train Brax PPO on cfg's brax env with matched settings, in three training epochs
    (Brax's evals between them are not timed): the first includes compilation, the last
    gives the steady-state env steps/s.

    compile_s: the training epoch's compile (first epoch minus a steady one) plus that of
    Brax's env reset program, which it compiles before the timed epochs (JAX's own
    timers, `compile_log`): vecpg's compile_s holds its reset too. Its evaluation
    programs are left out (vecpg's are compiled by `vecpg eval`, not by training); every
    program Brax compiled is listed under compile_log."""
    import functools

    from brax import envs
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo
    from flax import linen

    name = cfg.env.removeprefix("brax/")
    network = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=tuple(cfg.hidden),
        value_hidden_layer_sizes=tuple(cfg.hidden),
        activation=getattr(linen, cfg.activation),
        distribution_type="normal",
    )
    epochs: list[tuple[float, dict]] = []
    t0 = time.perf_counter()

    def progress(step: int, metrics: dict) -> None:
        epochs.append((time.perf_counter() - t0, {k: float(v) for k, v in metrics.items()}))

    with device_put_replicated_shim(), compile_log() as log:
        ppo.train(
            environment=envs.get_environment(name, backend=cfg.backend),
            num_timesteps=total_steps,
            episode_length=1000,
            num_envs=cfg.num_envs,
            unroll_length=cfg.num_steps,
            batch_size=cfg.num_envs // cfg.num_minibatches,
            num_minibatches=cfg.num_minibatches,
            num_updates_per_batch=cfg.update_epochs,
            learning_rate=cfg.learning_rate,
            entropy_cost=cfg.ent_coef,
            discounting=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
            clipping_epsilon=cfg.clip_eps,
            max_grad_norm=cfg.max_grad_norm,
            reward_scaling=cfg.reward_scale,
            normalize_observations=True,
            network_factory=network,
            num_evals=4,
            num_eval_envs=eval_envs,
            deterministic_eval=True,
            seed=seed,
            progress_fn=progress,
        )
    train_epochs = [m for _, m in epochs if "training/sps" in m]
    first_s = train_epochs[0]["training/walltime"]  # compile + one epoch
    steady_s = train_epochs[-1]["training/walltime"] - train_epochs[-2]["training/walltime"]
    epoch_compile_s = max(first_s - steady_s, 0.0)
    reset_compile_s = log.program_s("reset")
    return {
        "env_steps_per_s": train_epochs[-1]["training/sps"],
        # what a Brax user compiles before training: its env reset program (compiled
        # before the timed epochs) and its training epoch (in the first epoch's time)
        "compile_s": epoch_compile_s + reset_compile_s,
        "epoch_compile_s": epoch_compile_s,
        "reset_compile_s": reset_compile_s,
        "compile_log": log.summary(),
        "eval_return": epochs[-1][1]["eval/episode_reward"],
        "wall_s": epochs[-1][0],
    }


REJAX_SCRIPT = r"""
import json, sys, time
import jax, jax.numpy as jnp
import jax.interpreters.xla as xla
from jax._src import core
if not hasattr(xla, "pytype_aval_mappings"):  # distrax -> tfp reads this; jax 0.10 removed it
    xla.pytype_aval_mappings = core.pytype_aval_mappings
from rejax import PPO
cfg = json.loads(sys.argv[1])
algo = PPO.create(env="CartPole-v1", skip_initial_evaluation=True, **cfg)
evaluate = algo.eval_callback
timed = algo.replace(eval_callback=lambda a, ts, rng: jnp.zeros(()))  # time training only
train = jax.jit(timed.train)
t0 = time.perf_counter(); jax.block_until_ready(train(jax.random.PRNGKey(0)))
first = time.perf_counter() - t0
t0 = time.perf_counter(); ts, _ = jax.block_until_ready(train(jax.random.PRNGKey(0)))
steady = time.perf_counter() - t0
lengths, returns = jax.jit(lambda ts: evaluate(algo, ts, ts.rng))(ts)
print(json.dumps({"first_s": first, "steady_s": steady, "eval_return": float(returns.mean())}))
"""


def rejax_ppo(cfg: TrainConfig, total_steps: int) -> dict[str, Any]:
    """rejax PPO on gymnax CartPole-v1 with matched settings, in a subprocess whose path
    starts with $VECPG_REJAX_PATH (rejax 0.1.3 needs gymnax 0.0.9's 5-value step). Its
    in-loop evaluation is replaced by a no-op for the timed calls; the return is rejax's
    own evaluation (128 deterministic episodes) of the final state."""
    path = os.environ.get(REJAX_PATH_ENV)
    if not path or not Path(path, "rejax").exists():
        return {"skipped": f"set {REJAX_PATH_ENV} to a dir with rejax + gymnax==0.0.9"}
    settings = {
        "num_envs": cfg.num_envs,
        "num_steps": cfg.num_steps,
        "num_epochs": cfg.update_epochs,
        "num_minibatches": cfg.num_minibatches,
        "learning_rate": cfg.learning_rate,
        "gamma": cfg.gamma,
        "gae_lambda": cfg.gae_lambda,
        "clip_eps": cfg.clip_eps,
        "ent_coef": cfg.ent_coef,
        "vf_coef": cfg.vf_coef,
        "max_grad_norm": cfg.max_grad_norm,
        "total_timesteps": total_steps,
        "eval_freq": total_steps,
        "normalize_observations": cfg.normalize_obs,
        "agent_kwargs": {"hidden_layer_sizes": list(cfg.hidden), "activation": cfg.activation},
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", REJAX_SCRIPT, json.dumps(settings)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if proc.returncode != 0:
        return {"skipped": "rejax failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]}
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "env_steps_per_s": total_steps / r["steady_s"],
        "compile_s": max(r["first_s"] - r["steady_s"], 0.0),
        "eval_return": r["eval_return"],
    }


def vecpg_side(cfg: TrainConfig, eval_episodes: int) -> dict[str, Any]:
    """vecpg ppo on one seed: steady-state env steps/s, compile time and the final
    policy's deterministic return (`vecpg.evaluate`)."""
    import tempfile

    from vecpg.analysis.evaluate import evaluate
    from vecpg.bench.throughput import cold_env_traces
    from vecpg.run.api import train

    cold_env_traces(cfg)
    with tempfile.TemporaryDirectory() as d:
        with compile_log() as log:
            res = train(cfg, seeds=[0], run_dir=Path(d) / "run")
        ret = float(evaluate(Path(d) / "run", episodes=eval_episodes).deterministic.mean())
    return {
        "env_steps_per_s": float(res.summary()["env_steps_per_s"]),
        "compile_s": res.compile_s,  # its init and run programs (reset included)
        "eval_return": ret,
        "compile_log": log.summary(),
    }


def peer_comparison(base: TrainConfig, steps: int) -> dict[str, Any]:
    """Brax PPO and vecpg ppo, same env, settings and env steps, one seed each; returns
    are deterministic-policy evaluations (Brax's eval over 16 episodes; vecpg's too)."""
    brax = brax_ppo(base, steps, eval_envs=16)
    vec = vecpg_side(dataclasses.replace(base, total_steps=steps), 16)
    ratio = vec["env_steps_per_s"] / brax["env_steps_per_s"]
    compile_ratio = vec["compile_s"] / brax["compile_s"] if brax["compile_s"] > 0 else None
    return {"env_steps": steps, "brax": brax, "vecpg": vec, "throughput_ratio": ratio,
            "compile_ratio": compile_ratio}  # fmt: skip


def rejax_comparison(steps: int, xla_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """rejax PPO and vecpg ppo on CartPole (vecpg's defaults, with the bench's XLA option
    fields `xla_options`), 128 evaluation episodes."""
    cfg = TrainConfig(total_steps=steps, **(xla_options or {}))
    rejax = rejax_ppo(cfg, steps)
    if "skipped" in rejax:
        return rejax
    vec = vecpg_side(cfg, 128)
    ratio = vec["env_steps_per_s"] / rejax["env_steps_per_s"]
    return {"env_steps": steps, "rejax": rejax, "vecpg": vec, "throughput_ratio": ratio}
