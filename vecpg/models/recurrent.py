"""Recurrent actor and critic: the torso, then a GRU or LSTM core (flax's cells), then
the hidden layers and the head. Each module is ONE step; sequences are replayed by a
`lax.scan` over time (`replay_actor`, `replay_critic`), so the rollout (one step at a
time) and the update (whole env sequences) run the same function.

The core's state (`carry`: [..., H] for a GRU, (c, h) for an LSTM) is reset to zeros
where an episode starts: `reset` [...] is True at the first step of an episode (an env's
episode step counter is 0), so a reset happens before that step's observation is read.

Shapes: B envs, T steps. Batches of sequences are env-major ([B, T, ...]) so that
minibatches and device shares split whole env sequences.
"""

from __future__ import annotations

from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from vecpg.models.distributions import GaussianParams
from vecpg.models.layers import MLP, Torso, deferred_orthogonal

MEMORIES = ("none", "gru", "lstm")


def zero_carry(memory: str, size: int, batch_shape: tuple[int, ...]) -> Any:
    """The core's state at an episode's start: [*batch_shape, size] (an LSTM: (c, h))."""
    z = jnp.zeros((*batch_shape, size), jnp.float32)
    return (z, z) if memory == "lstm" else z


def reset_carry(carry: Any, reset: jax.Array) -> Any:
    """carry with zeros where `reset` [...] is True (leaves [..., H])."""
    return jax.tree.map(lambda c: jnp.where(reset[..., None], 0.0, c), carry)


def _cell(memory: str, size: int) -> nn.Module:
    """flax's cell with its defaults, except the recurrent kernels' orthogonal init: vecpg's
    (plain matmuls) rather than flax's (a QR, which jaxlib 0.10's CPU runtime can deadlock
    on when it is vmapped over seeds; `vecpg.models.orthogonal.gram_schmidt`)."""
    cls = nn.OptimizedLSTMCell if memory == "lstm" else nn.GRUCell
    return cls(size, recurrent_kernel_init=deferred_orthogonal(1.0), name="core")


class RecurrentActor(nn.Module):
    """(carry, obs [..., *obs_shape], reset [...]) -> (carry, distribution parameters)."""

    hidden: tuple[int, ...]
    activation: str
    num_actions: int
    discrete: bool
    torso: str
    obs_rank: int
    memory: str  # "gru" | "lstm"
    memory_size: int

    @nn.compact
    def __call__(self, carry: Any, obs: jax.Array, reset: jax.Array) -> tuple[Any, Any]:
        x = Torso(self.torso, self.obs_rank)(obs)
        carry, x = _cell(self.memory, self.memory_size)(reset_carry(carry, reset), x)
        out = MLP(self.hidden, self.activation, self.num_actions, 0.01)(x)
        if self.discrete:
            return carry, out
        log_std = self.param("log_std", nn.initializers.zeros, (self.num_actions,))
        return carry, GaussianParams(out, jnp.broadcast_to(log_std, out.shape))


class RecurrentCritic(nn.Module):
    """(carry, obs [..., *obs_shape], reset [...]) -> (carry, value [...])."""

    hidden: tuple[int, ...]
    activation: str
    torso: str
    obs_rank: int
    memory: str
    memory_size: int

    @nn.compact
    def __call__(self, carry: Any, obs: jax.Array, reset: jax.Array) -> tuple[Any, jax.Array]:
        x = Torso(self.torso, self.obs_rank)(obs)
        carry, x = _cell(self.memory, self.memory_size)(reset_carry(carry, reset), x)
        return carry, MLP(self.hidden, self.activation, 1, 1.0)(x)[..., 0]


def time_major(x: jax.Array) -> jax.Array:
    """[B, T, ...] <-> [T, B, ...]."""
    return jnp.swapaxes(x, 0, 1)


def replay(module: nn.Module, params: Any, h0: Any, obs: jax.Array, reset: jax.Array):
    """Run `module` over env-major sequences: h0 [B, ...], obs [B, T, *obs_shape], reset
    [B, T] -> (final carry [B, ...], outputs [B, T, ...], carries after each step [B, T, ...]
    (before any reset the next step applies))."""

    def step(carry, inp):
        o, r = inp
        carry, out = module.apply(params, carry, o, r)
        return carry, (out, carry)

    final, (outs, carries) = jax.lax.scan(step, h0, (time_major(obs), time_major(reset)))
    return final, jax.tree.map(time_major, outs), jax.tree.map(time_major, carries)


def replay_actor(module: nn.Module, params: Any, h0: Any, obs: jax.Array, reset: jax.Array):
    """Distribution parameters [B, T, ...] of the actor replayed over [B, T] sequences."""
    return replay(module, params, h0, obs, reset)[1]


def replay_critic(
    module: nn.Module,
    params: Any,
    h0: Any,
    obs: jax.Array,
    next_obs: jax.Array,
    reset: jax.Array,
) -> tuple[Any, jax.Array, jax.Array]:
    """(final carry [B, ...], V(s_t) [B, T], V(s_{t+1}) [B, T]) over [B, T] sequences.

    V(s_{t+1}) continues the core from its state after step t on the true next
    observation (before any reset): the value a truncated episode bootstraps from. Where
    no episode ends at t it equals V(s_{t+1}) of the next step.
    """
    final, v_t, carries = replay(module, params, h0, obs, reset)
    no_reset = jnp.zeros(reset.shape, bool)
    _, v_tp1 = module.apply(params, carries, next_obs, no_reset)
    return final, cast(jax.Array, v_t), cast(jax.Array, v_tp1)
