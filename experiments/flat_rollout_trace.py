"""How much of the rollout's trace and compile does the lanes vmap cost? A probe.

vecpg vmaps each training iteration over lanes, so the rollout scan runs under a vmap
and JAX batches the env step's jaxpr twice (over envs, then over lanes, through the
scan's batching rule). This probe traces and compiles, for the same R lanes x B envs:

  nested  vmap over lanes of (scan over time of (policy, vmap over envs of the step))
          (what `vecpg.training.rollout.rollout` under `run_iterations` does)
  flat    scan over time of (policy vmapped over lanes, env step vmapped once over
          the flat R*B envs): the env step is batched once, the scan is under no vmap

Both use the same wrappers (`step_episode`, fresh starts from `env.reset`) and the
policy with each lane's parameters. Run on an idle machine, compile cache off:

    VECPG_COMPILE_CACHE=off python experiments/flat_rollout_trace.py --env brax/hopper \
        --backend positional --num-envs 64 --num-steps 64 --lanes 2
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp

import vecpg  # noqa: F401  (cores, cache)
from vecpg.bench.throughput import cold_env_traces
from vecpg.config import TrainConfig
from vecpg.envs.wrappers import begin_pending, fresh_starts, step_episode
from vecpg.models.networks import env_action, policy_dist
from vecpg.training import execute
from vecpg.training.rollout import rollout
from vecpg.training.trainer import make_pieces
from vecpg.training.xla_options import program_options


def flat_rollout(p, params, env_state, keys, num_steps):
    """params, env_state, keys: leading [R]; the env step vmapped over R*B at once."""
    r, b = env_state.t.shape[:2]
    flat = lambda x: x.reshape(r * b, *x.shape[2:])  # noqa: E731
    unflat = lambda x: x.reshape(r, b, *x.shape[1:])  # noqa: E731
    split = jax.vmap(jax.random.split)(keys)
    fresh = jax.vmap(lambda k: fresh_starts(p.env, k, b))(split[:, 0])
    fresh_flat = jax.tree.map(flat, fresh)
    step = functools.partial(step_episode, defer_reset=True)
    step_keys = jax.vmap(lambda k: jax.random.split(k, num_steps))(split[:, 1])  # [R, T]

    def body(state, k):  # state leaves [R, B, ...], k [R]
        state = jax.tree.map(unflat, jax.vmap(begin_pending)(jax.tree.map(flat, state), fresh_flat))

        def act(params, obs, k):
            dist = policy_dist(p.agent, params, obs, normalize_obs=p.static.normalize_obs)
            a = p.agent.dist.sample(k, dist)
            return a, p.agent.dist.log_prob(dist, a)

        action, log_prob = jax.vmap(act)(params, state.obs, k)
        out = jax.vmap(step, in_axes=(None, 0, 0))(
            p.env, jax.tree.map(flat, state), flat(env_action(p.agent, action))
        )
        return jax.tree.map(unflat, out.state), (log_prob, unflat(out.reward))

    return jax.lax.scan(body, env_state, jnp.moveaxis(step_keys, 1, 0))


def timed(name, fn, *args):
    t0 = time.perf_counter()
    traced = fn.trace(*args)
    t1 = time.perf_counter()
    lowered = traced.lower()
    t2 = time.perf_counter()
    lowered.compile()
    t3 = time.perf_counter()
    row = {"rollout": name, "trace_s": round(t1 - t0, 2), "lower_s": round(t2 - t1, 2),
           "compile_s": round(t3 - t2, 2)}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="brax/hopper")
    ap.add_argument("--backend", default="positional")
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--num-steps", type=int, default=64)
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--order", default="nested,flat,nested,flat")
    a = ap.parse_args()
    cfg = TrainConfig(env=a.env, backend=a.backend, num_envs=a.num_envs,
                      num_steps=a.num_steps, total_steps=10 * a.num_envs * a.num_steps)  # fmt: skip
    static = cfg.static()
    fns = execute.train_fns(static)
    keys, hp, _ = execute.abstract_inputs(a.lanes, execute.runs_sharding())
    state = jax.eval_shape(functools.partial(execute.init_from_key_data, fns), keys, hp)
    jit = functools.partial(jax.jit, compiler_options=program_options(static))
    for name in a.order.split(","):
        cold_env_traces(cfg)
        p = make_pieces(static)
        if name == "nested":
            one = lambda s, p=p: rollout(p.env, p.agent, s.params, s.env_state, s.key,  # noqa: E731
                                         num_steps=a.num_steps,
                                         normalize_obs=static.normalize_obs)  # fmt: skip
            fn = jit(jax.vmap(one))
        else:
            fn = jit(lambda s, p=p: flat_rollout(p, s.params, s.env_state, s.key, a.num_steps))
        with jax.set_mesh(execute.runs_mesh()):
            timed(name, fn, state)


if __name__ == "__main__":
    main()
