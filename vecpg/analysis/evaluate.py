"""Evaluate saved policies and render their episodes.

`evaluate` plays `episodes` full episodes per seed, with the policy's mode
(deterministic) and with samples (stochastic), all seeds and episodes as one jitted,
vmapped `lax.scan`. Episode e of every seed starts from `env.reset(episode_keys(...)[e])`,
so the numbers can be reproduced by hand with `vecpg.load_policy`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vecpg.analysis.stats import mean_ci95
from vecpg.config import StaticConfig
from vecpg.envs import make_env, make_env_for
from vecpg.envs.protocol import Env
from vecpg.errors import ConfigError
from vecpg.models.networks import Agent, AgentParams, env_action, make_agent, policy_dist
from vecpg.run.rundir import load_policies


class Episode(NamedTuple):
    """One episode, padded to max_episode_steps: leaves [T, ...] (states only if kept)."""

    total: jax.Array  # [] undiscounted return up to the first termination
    length: jax.Array  # [] steps until termination (or the time limit)
    states: Any  # env states [T] after each step (None unless keep_states)


class EvalResult(NamedTuple):
    seeds: list[int]
    deterministic: np.ndarray  # [seeds, episodes] returns
    stochastic: np.ndarray  # [seeds, episodes]
    deterministic_length: np.ndarray  # [seeds, episodes]

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for i, s in enumerate(self.seeds):
            rows.append({"seed": s, **_stats(self.deterministic[i], self.stochastic[i])})
        det, sto = self.deterministic.mean(1), self.stochastic.mean(1)
        rows.append({"seed": "mean over seeds", **_stats(det, sto)})
        return rows


def _stats(det: np.ndarray, sto: np.ndarray) -> dict[str, Any]:
    d, dlo, dhi = mean_ci95(det)
    s, slo, shi = mean_ci95(sto)
    return {"deterministic": d, "deterministic_ci95": [dlo, dhi], "stochastic": s,
            "stochastic_ci95": [slo, shi]}  # fmt: skip


def episode_keys(seed: int, episodes: int) -> jax.Array:
    """[episodes] keys: episode e of an evaluation with `seed` resets with key e."""
    return jax.random.split(jax.random.key(seed), episodes)


def play_episode(
    env: Env,
    agent: Agent,
    params: AgentParams,
    key: jax.Array,
    *,
    normalize_obs: bool,
    deterministic: bool,
    keep_states: bool,
) -> Episode:
    """Reset with `key`, act until termination or the time limit (a scan of fixed
    length; rewards after termination are masked, whatever the env returns there)."""
    k_act = jax.random.fold_in(key, 1)
    first = env.reset(key)

    def body(carry, k):
        step, alive, total, length = carry
        dist = policy_dist(agent, params, step.obs, normalize_obs=normalize_obs)
        action = agent.dist.mode(dist) if deterministic else agent.dist.sample(k, dist)
        nxt = env.step(step.state, env_action(agent, action))
        total = total + jnp.where(alive, nxt.reward, 0.0)
        length = length + alive.astype(jnp.int32)
        alive = alive & ~nxt.terminated
        return (nxt, alive, total, length), (nxt.state if keep_states else None)

    keys = jax.random.split(k_act, env.spec.max_episode_steps)
    init = (first, jnp.bool_(True), jnp.float32(0.0), jnp.int32(0))
    (_, _, total, length), states = jax.lax.scan(body, init, keys)
    return Episode(total, length, states)


def _compiled_returns(c: StaticConfig):
    """(params [seeds], keys [episodes], deterministic) -> returns, lengths [seeds, episodes];
    cached on what the policy and env depend on, not on training-only settings."""
    key = (c.env, c.backend, c.playground_impl, tuple(c.hidden), c.activation, c.torso,
           c.normalize_obs)  # fmt: skip
    return _compiled_returns_for(*key)


@functools.lru_cache(maxsize=8)
def _compiled_returns_for(env_name, backend, playground_impl, hidden, activation, torso, normalize):
    env = make_env(env_name, backend, playground_impl)
    agent = make_agent(env.spec, hidden, activation, torso)

    def returns(params, keys, deterministic):
        one = functools.partial(
            play_episode, env, agent, params,
            normalize_obs=normalize, deterministic=deterministic, keep_states=False,
        )  # fmt: skip
        ep = jax.vmap(one)(keys)
        return ep.total, ep.length

    per_seed = jax.vmap(returns, in_axes=(0, None, None))
    return jax.jit(per_seed, static_argnums=2)


def evaluate(run_dir: str | Path, episodes: int = 10, seed: int = 0) -> EvalResult:
    """Deterministic and stochastic returns of every seed's policy in a run dir."""
    if not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"invalid episodes={episodes!r}: must be an integer >= 1")
    saved = load_policies(run_dir)
    fn = _compiled_returns(saved.results.config.static())
    keys = episode_keys(seed, episodes)
    det, det_len = fn(saved.params, keys, True)
    sto, _ = fn(saved.params, keys, False)
    return EvalResult(saved.results.seeds, np.asarray(det), np.asarray(sto), np.asarray(det_len))


def render(run_dir: str | Path, seed: int, out: str | Path, episode_seed: int = 0) -> Path:
    """Write one deterministic episode of seed `seed`'s policy: brax's interactive HTML
    viewer for brax envs, a GIF (gymnax's visualizer) for gymnax envs it can draw."""
    saved = load_policies(run_dir)
    params = saved.of_seed(seed)
    c = saved.results.config
    env = make_env_for(c)
    if not hasattr(env, "render"):
        raise ConfigError(f"invalid env={c.env!r}: no renderer for this env source")
    play = functools.partial(
        play_episode, env, saved.agent, params,
        normalize_obs=c.normalize_obs, deterministic=True, keep_states=True,
    )  # fmt: skip
    ep = jax.jit(play)(episode_keys(episode_seed, 1)[0])
    length = max(int(ep.length), 1)
    states = [jax.tree.map(lambda x: x[t], ep.states) for t in range(length)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    env.render(states, out)
    return out
