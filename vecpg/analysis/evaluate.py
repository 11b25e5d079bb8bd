"""Evaluate saved policies and render their episodes.

`evaluate` plays `episodes` full episodes per seed, with the policy's mode
(deterministic) and with samples (stochastic), all seeds and episodes as one jitted,
vmapped `lax.scan`. Episode e of every seed starts from `env.reset(episode_keys(...)[e])`,
so the numbers can be reproduced by hand with `vecpg.load_policy`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vecpg.analysis.stats import mean_bootstrap_curve
from vecpg.config import StaticConfig
from vecpg.envs import make_env, make_env_for
from vecpg.envs.protocol import Env
from vecpg.errors import ConfigError, create_dir, unwritable_reason
from vecpg.models.networks import (
    Agent,
    AgentParams,
    env_action,
    init_agent_params,
    init_memory,
    make_agent,
    policy_step,
)
from vecpg.run.rundir import SavedPolicies, load_policies

SEED_LIMIT = 2**32  # jax.random.key takes a uint32 seed
EVAL_COPIES = 8  # per episode in flight: carry, next step, policy temporaries, scan buffers


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
    diverged: dict[int, int] = {}  # {seed: first diverged training iteration}

    def table(self) -> list[dict[str, Any]]:
        """One row per seed (`diverged_at`: the training iteration it diverged at, or
        None), then the mean over the seeds that did not diverge, each with 95% percentile
        bootstrap CIs (they never leave the range of the returns averaged)."""
        rows = []
        for i, s in enumerate(self.seeds):
            stats = _stats(self.deterministic[i], self.stochastic[i])
            rows.append({"seed": s, **stats, "diverged_at": self.diverged.get(s)})
        kept = [i for i, s in enumerate(self.seeds) if s not in self.diverged]
        if not kept:
            nan = float("nan")
            rows.append({"seed": "mean over seeds", "deterministic": nan,
                         "deterministic_ci95": [nan, nan], "stochastic": nan,
                         "stochastic_ci95": [nan, nan], "all_diverged": True})  # fmt: skip
            return rows
        det, sto = self.deterministic[kept].mean(1), self.stochastic[kept].mean(1)
        label = "mean over seeds"
        if self.diverged:
            label = f"mean over {len(kept)} non-diverged seed" + ("s" if len(kept) > 1 else "")
        rows.append({"seed": label, **_stats(det, sto), "all_diverged": False})
        return rows


def _stats(det: np.ndarray, sto: np.ndarray) -> dict[str, Any]:
    d, dlo, dhi = _mean_ci95(det)
    s, slo, shi = _mean_ci95(sto)
    return {"deterministic": d, "deterministic_ci95": [dlo, dhi], "stochastic": s,
            "stochastic_ci95": [slo, shi]}  # fmt: skip


def _mean_ci95(x: np.ndarray) -> tuple[float, float, float]:
    """Mean of x [n] with its 95% percentile-bootstrap CI (inside [min x, max x])."""
    mean, lo, hi = mean_bootstrap_curve(np.asarray(x, np.float64)[:, None])
    return float(mean[0]), float(lo[0]), float(hi[0])


def check_seed(name: str, seed: object) -> int:
    """An evaluation or policy seed: an integer in [0, 2**32), or one line."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"invalid {name}={seed!r}: must be an integer in [0, 2**32)")
    return seed


def load_checked(run_dir: str | Path) -> SavedPolicies:
    """`load_policies`, with one line when config.json no longer describes the network in
    params.msgpack (its hidden sizes, torso or env edited after training)."""
    mismatch = ConfigError(
        f"invalid run_dir={str(run_dir)!r}: config.json no longer matches params.msgpack "
        "(hidden/env edited?)"
    )
    try:
        saved = load_policies(run_dir)
    except ConfigError as e:  # rundir says "corrupt" when the structure differs
        if "params.msgpack is corrupt" in str(e) and _params_decode(Path(run_dir)):
            raise mismatch from None
        raise
    want = jax.eval_shape(functools.partial(init_agent_params, saved.agent), jax.random.key(0))
    got = jax.tree.map(lambda x: x.shape[1:], saved.params)
    try:
        same = jax.tree.all(jax.tree.map(lambda w, g: w.shape == g, want, got))
    except ValueError:  # another tree structure
        same = False
    if not same:
        raise mismatch
    return saved


def _params_decode(run_dir: Path) -> bool:
    """Whether params.msgpack decodes as msgpack at all (then it is whole, not corrupt)."""
    import flax.serialization

    try:
        flax.serialization.msgpack_restore((run_dir / "params.msgpack").read_bytes())
    except Exception:  # msgpack raises many types on truncated or foreign bytes
        return False
    return True


def check_memory(env: Env, agent: Agent, num_seeds: int, episodes: int) -> None:
    """One line naming `episodes` when seeds x episodes episodes in flight at once (each
    with its env state, policy activations and [max_episode_steps] action keys) would not
    fit in EVAL_COPIES copies within the usable memory of the device; before compiling."""
    from vecpg.run.memory import USABLE_FRACTION, available_bytes, gib

    state = jax.eval_shape(env.reset, jax.random.key(0))
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    obs_size = int(np.prod(env.spec.obs_shape))
    activations = 4 * (16 * obs_size + 2 * sum(agent.actor.hidden) + 128)
    steps = env.spec.max_episode_steps
    per_episode = EVAL_COPIES * (state_bytes + activations) + steps * 8 + 64
    need = num_seeds * episodes * per_episode
    free, what = available_bytes()
    usable = USABLE_FRACTION * free
    if need > usable:
        fit = max(int(usable // (num_seeds * per_episode)), 0)
        raise ConfigError(
            f"invalid episodes={episodes}: {num_seeds} seeds x {episodes} episodes of up to "
            f"{steps} steps need about {gib(need)} of {what}, over the {gib(usable)} usable; "
            f"use at most {fit} episodes"
        )


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
    length; rewards after termination are masked, whatever the env returns there). A
    recurrent policy's core state starts at zeros and is carried through the episode."""
    k_act = jax.random.fold_in(key, 1)
    first = env.reset(key)

    def body(carry, k):
        step, alive, total, length, memory, t = carry
        memory, dist = policy_step(
            agent, params, memory, step.obs, t == 0, normalize_obs=normalize_obs
        )
        action = agent.dist.mode(dist) if deterministic else agent.dist.sample(k, dist)
        nxt = env.step(step.state, env_action(agent, action))
        total = total + jnp.where(alive, nxt.reward, 0.0)
        length = length + alive.astype(jnp.int32)
        alive = alive & ~nxt.terminated
        out = (nxt, alive, total, length, memory, t + 1)
        return out, (nxt.state if keep_states else None)

    keys = jax.random.split(k_act, env.spec.max_episode_steps)
    memory = init_memory(agent, ())
    memory0 = None if memory is None else memory.actor
    init = (first, jnp.bool_(True), jnp.float32(0.0), jnp.int32(0), memory0, jnp.int32(0))
    (_, _, total, length, _, _), states = jax.lax.scan(body, init, keys)
    return Episode(total, length, states)


def _compiled_returns(c: StaticConfig):
    """(params [seeds], keys [episodes], deterministic) -> returns, lengths [seeds, episodes];
    cached on what the policy and env depend on, not on training-only settings."""
    key = (c.env, c.backend, c.playground_impl, c.mask_obs, tuple(c.hidden), c.activation,
           c.torso, c.memory, c.memory_size, c.normalize_obs)  # fmt: skip
    return _compiled_returns_for(*key)


@functools.lru_cache(maxsize=8)
def _compiled_returns_for(
    env_name, backend, playground_impl, mask_obs, hidden, activation, torso, memory,
    memory_size, normalize,
):  # fmt: skip
    env = make_env(env_name, backend, playground_impl, mask_obs)
    agent = make_agent(env.spec, hidden, activation, torso, memory, memory_size)

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
    """Deterministic and stochastic returns of every seed's policy in a run dir (and
    which seeds diverged in training)."""
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ConfigError(f"invalid episodes={episodes!r}: must be an integer >= 1")
    check_seed("seed", seed)
    saved = load_checked(run_dir)
    c = saved.results.config
    check_memory(make_env_for(c), saved.agent, len(saved.results.seeds), episodes)
    fn = _compiled_returns(c.static())
    keys = episode_keys(seed, episodes)
    det, det_len = fn(saved.params, keys, True)
    sto, _ = fn(saved.params, keys, False)
    return EvalResult(
        saved.results.seeds,
        np.asarray(det),
        np.asarray(sto),
        np.asarray(det_len),
        saved.results.diverged(),
    )


def check_render_out(out: Path, overwrite: bool) -> None:
    """One line unless a file can be written at `out`: not a directory, not under a
    file, somewhere writable, and (unless `overwrite`) not an existing file."""
    where = f"invalid out={str(out)!r}"
    if out.is_dir():
        raise ConfigError(f"{where}: is a directory; give a file name")
    reason = unwritable_reason(out)
    if reason:
        raise ConfigError(f"{where}: {reason}")
    if out.exists() and not overwrite:
        raise ConfigError(f"{where}: the file exists; pass --overwrite to replace it")
    if out.exists() and not os.access(out, os.W_OK):
        raise ConfigError(f"{where}: cannot write there (Permission denied)")


def render(
    run_dir: str | Path,
    seed: int,
    out: str | Path | None = None,
    episode_seed: int = 0,
    *,
    overwrite: bool = False,
) -> Path:
    """Write one deterministic episode of seed `seed`'s policy: brax's interactive HTML
    viewer for brax envs, a GIF for gymnax and Playground envs it can draw (`out`
    defaults to rollout.html or rollout.gif). An existing `out` is replaced only with
    `overwrite`; `out` is checked before any compile."""
    check_seed("seed", seed)
    check_seed("episode_seed", episode_seed)
    if out is not None:  # before the run dir's own checks
        check_render_out(Path(out), overwrite)
    saved = load_checked(run_dir)
    params = saved.of_seed(seed)
    c = saved.results.config
    env = make_env_for(c)
    suffix = getattr(env, "render_suffix", None)
    if suffix is None or not hasattr(env, "render"):
        raise ConfigError(f"invalid env={c.env!r}: no renderer for this env source")
    path = Path(out) if out is not None else Path("rollout" + suffix)
    if path.suffix.lower() != suffix:
        source = c.env.split("/")[0]
        raise ConfigError(f"invalid out={str(path)!r}: {source} envs render to a {suffix} file")
    if out is None:
        check_render_out(path, overwrite)
    check_env = getattr(env, "check_render", None)
    if check_env is not None:
        check_env()  # e.g. gymnax's classic control without pygame
    play = functools.partial(
        play_episode, env, saved.agent, params,
        normalize_obs=c.normalize_obs, deterministic=True, keep_states=True,
    )  # fmt: skip
    create_dir(path.parent, "out", given=path)  # before the compile
    ep = jax.jit(play)(episode_keys(episode_seed, 1)[0])
    length = max(int(ep.length), 1)
    states = [jax.tree.map(lambda x: x[t], ep.states) for t in range(length)]
    env.render(states, path)
    return path
