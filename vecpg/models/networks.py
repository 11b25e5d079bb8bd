"""Separate actor and critic networks with orthogonal initialisation: a torso reads the
observation (flattened for the MLP, or a small conv net for [H, W, C] images), then the
hidden layers and the head."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from vecpg.envs.protocol import EnvSpec
from vecpg.models import obs_norm
from vecpg.models.distributions import GaussianParams, distribution
from vecpg.models.layers import (  # noqa: F401  (re-exported)
    MLP,
    PatchConv,
    Torso,
    gram_schmidt,
    orthogonal,
    resolve_torso,
)
from vecpg.models.obs_norm import RunningStats, init_stats
from vecpg.models.orthogonal import orthogonalize
from vecpg.models.recurrent import RecurrentActor, RecurrentCritic, zero_carry


class Actor(nn.Module):
    """obs [..., *obs_shape] -> distribution parameters (logits, or GaussianParams with a
    state-independent log-std broadcast to the batch)."""

    hidden: tuple[int, ...]
    activation: str
    num_actions: int
    discrete: bool
    torso: str = "mlp"  # resolved (see resolve_torso)
    obs_rank: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array) -> Any:
        x = Torso(self.torso, self.obs_rank)(obs)
        out = MLP(self.hidden, self.activation, self.num_actions, 0.01)(x)
        if self.discrete:
            return out
        log_std = self.param("log_std", nn.initializers.zeros, (self.num_actions,))
        return GaussianParams(out, jnp.broadcast_to(log_std, out.shape))


class Critic(nn.Module):
    """obs [..., *obs_shape] -> value [...]."""

    hidden: tuple[int, ...]
    activation: str
    torso: str = "mlp"
    obs_rank: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = Torso(self.torso, self.obs_rank)(obs)
        return MLP(self.hidden, self.activation, 1, 1.0)(x)[..., 0]


@flax.struct.dataclass
class AgentParams:
    """Everything a policy needs at deployment: both networks and the obs normaliser."""

    actor: Any
    critic: Any
    obs_stats: RunningStats


@flax.struct.dataclass
class Memory:
    """The recurrent cores' states of B envs (leaves [B, memory_size]): the actor's, as
    the rollout carried it, and the critic's, as the update's replay left it."""

    actor: Any
    critic: Any


class Agent(NamedTuple):
    """Static network definitions for one env spec (`memory`: none | gru | lstm)."""

    actor: Actor | RecurrentActor
    critic: Critic | RecurrentCritic
    spec: EnvSpec
    memory: str = "none"
    memory_size: int = 0

    @property
    def dist(self):
        return distribution(self.spec.discrete)

    @property
    def recurrent(self) -> bool:
        return self.memory != "none"


def make_agent(
    spec: EnvSpec,
    hidden: tuple[int, ...],
    activation: str,
    torso: str = "auto",
    memory: str = "none",
    memory_size: int = 128,
) -> Agent:
    """Actor and critic for `spec` (`torso`: auto | mlp | cnn, see `resolve_torso`; with
    `memory` gru | lstm, a core of `memory_size` units after the torso of each)."""
    kind, rank = resolve_torso(torso, tuple(spec.obs_shape)), len(spec.obs_shape)
    hidden = tuple(hidden)
    if memory == "none":
        return Agent(
            actor=Actor(hidden, activation, spec.num_actions, spec.discrete, kind, rank),
            critic=Critic(hidden, activation, kind, rank),
            spec=spec,
        )
    return Agent(
        actor=RecurrentActor(
            hidden, activation, spec.num_actions, spec.discrete, kind, rank, memory, memory_size
        ),
        critic=RecurrentCritic(hidden, activation, kind, rank, memory, memory_size),
        spec=spec,
        memory=memory,
        memory_size=memory_size,
    )


def make_agent_for(spec: EnvSpec, c: Any) -> Agent:
    """`make_agent` with a config's (TrainConfig or StaticConfig) network fields."""
    return make_agent(spec, tuple(c.hidden), c.activation, c.torso, c.memory, c.memory_size)


def init_agent_params(agent: Agent, key: jax.Array) -> AgentParams:
    """Both networks' initial parameters; their orthogonal kernels drawn together."""
    k_actor, k_critic, k_orth = jax.random.split(key, 3)
    dummy = jnp.zeros(agent.spec.obs_shape, jnp.float32)
    if agent.recurrent:
        carry, reset = zero_carry(agent.memory, agent.memory_size, ()), jnp.bool_(True)
        actor = agent.actor.init(k_actor, carry, dummy, reset)
        critic = agent.critic.init(k_critic, carry, dummy, reset)
    else:
        actor, critic = agent.actor.init(k_actor, dummy), agent.critic.init(k_critic, dummy)
    actor, critic = orthogonalize((actor, critic), k_orth)
    return AgentParams(actor=actor, critic=critic, obs_stats=init_stats(agent.spec.obs_shape))


def init_memory(agent: Agent, batch_shape: tuple[int, ...]) -> Memory | None:
    """Zero core states for `batch_shape` envs; None for a feed-forward agent."""
    if not agent.recurrent:
        return None
    z = zero_carry(agent.memory, agent.memory_size, batch_shape)
    return Memory(actor=z, critic=z)


def policy_step(
    agent: Agent,
    params: AgentParams,
    carry: Any,
    obs: jax.Array,
    reset: jax.Array,
    *,
    normalize_obs: bool,
) -> tuple[Any, Any]:
    """One step of the policy on raw obs [..., *obs_shape]: (actor core state [..., H],
    reset [...]) -> (its next state, distribution parameters [..., ...]). A feed-forward
    agent ignores `carry` and `reset` and returns carry as given (None)."""
    x = obs_norm.normalize_obs(params.obs_stats, obs) if normalize_obs else obs
    if agent.recurrent:
        return agent.actor.apply(params.actor, carry, x, reset)
    return carry, agent.actor.apply(params.actor, x)


def policy_dist(agent: Agent, params: AgentParams, obs: jax.Array, *, normalize_obs: bool) -> Any:
    """Raw obs [..., *obs_shape] -> distribution parameters (leaves [..., ...]), with the
    running observation normalisation applied when `normalize_obs`: `policy_step` of a
    feed-forward agent, which carries no state."""
    return policy_step(agent, params, None, obs, jnp.bool_(False), normalize_obs=normalize_obs)[1]


def state_value(agent: Agent, critic_params: Any, obs: jax.Array) -> jax.Array:
    """V(s): obs [..., *obs_shape] -> [...] (normalised observations; feed-forward)."""
    return cast(jax.Array, agent.critic.apply(critic_params, obs))


def env_action(agent: Agent, action: jax.Array) -> jax.Array:
    """What the env receives: continuous actions clipped to the action bounds."""
    if agent.spec.discrete:
        return action
    return jnp.clip(action, agent.spec.action_low, agent.spec.action_high)
