"""Exact lab on finite MDPs: the lecture's quantities in closed form (linear solves).

An MDP is arrays: P [S, A, S'], r [S, A], p0 [S], gamma. Policies are tabular softmax,
pi_theta(a|s) = softmax(theta[s])_a with theta [S, A]. Everything is pure JAX and jit-
and vmap-safe; run under `jax.enable_x64(True)` for identities to 1e-6 and beyond.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class MDP(NamedTuple):
    P: jax.Array  # [S, A, S'] transition probabilities
    r: jax.Array  # [S, A] expected rewards
    p0: jax.Array  # [S] initial distribution
    gamma: jax.Array  # [] discount in (0, 1)


def random_mdp(key: jax.Array, num_states: int, num_actions: int, gamma: float) -> MDP:
    """Dirichlet(1) transitions and initial distribution, standard normal rewards."""
    k1, k2, k3 = jax.random.split(key, 3)
    P = jax.random.dirichlet(k1, jnp.ones(num_states), (num_states, num_actions))
    r = jax.random.normal(k2, (num_states, num_actions))
    p0 = jax.random.dirichlet(k3, jnp.ones(num_states))
    return MDP(P, r, p0, jnp.asarray(gamma, P.dtype))


def gridworld(size: int = 4, gamma: float = 0.9, slip: float = 0.1) -> MDP:
    """size x size grid, start top-left, reward 1 for acting in the bottom-right goal (which
    then restarts at the start). Actions up/right/down/left; with prob. `slip` the move
    goes to a uniformly random direction instead."""
    n = size * size
    moves = jnp.array([[-1, 0], [0, 1], [1, 0], [0, -1]])
    rows, cols = jnp.divmod(jnp.arange(n), size)

    def dest(d):
        rr = jnp.clip(rows + moves[d, 0], 0, size - 1)
        cc = jnp.clip(cols + moves[d, 1], 0, size - 1)
        return rr * size + cc

    det = jnp.stack([jax.nn.one_hot(dest(d), n) for d in range(4)], axis=1)  # [S, A, S']
    P = (1 - slip) * det + slip * det.mean(axis=1, keepdims=True)
    goal = n - 1
    start = jax.nn.one_hot(0, n)
    P = P.at[goal].set(jnp.broadcast_to(start, (4, n)))
    r = jnp.zeros((n, 4)).at[goal].set(1.0)
    return MDP(P, r, start, jnp.asarray(gamma))


def policy(theta: jax.Array) -> jax.Array:
    """Tabular softmax: theta [S, A] -> pi [S, A]."""
    return jax.nn.softmax(theta, axis=-1)


def policy_transition(mdp: MDP, pi: jax.Array) -> jax.Array:
    """P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)."""
    return jnp.einsum("sa,sat->st", pi, mdp.P)


def state_values(mdp: MDP, pi: jax.Array) -> jax.Array:
    """V^pi [S] = (I - gamma P_pi)^-1 r_pi."""
    n = mdp.p0.shape[0]
    r_pi = jnp.sum(pi * mdp.r, axis=-1)
    return jnp.linalg.solve(jnp.eye(n) - mdp.gamma * policy_transition(mdp, pi), r_pi)


def q_values(mdp: MDP, pi: jax.Array) -> jax.Array:
    """Q^pi [S, A] = r + gamma P V^pi."""
    return mdp.r + mdp.gamma * mdp.P @ state_values(mdp, pi)


def advantages(mdp: MDP, pi: jax.Array) -> jax.Array:
    """A^pi [S, A] = Q^pi - V^pi."""
    return q_values(mdp, pi) - state_values(mdp, pi)[:, None]


def objective(mdp: MDP, pi: jax.Array) -> jax.Array:
    """J(pi) = E_{s0 ~ p0} V^pi(s0)."""
    return mdp.p0 @ state_values(mdp, pi)


def state_marginals(mdp: MDP, pi: jax.Array, horizon: int) -> jax.Array:
    """p_pi(s_t) for t = 0..horizon: [horizon + 1, S]."""
    P_pi = policy_transition(mdp, pi)

    def step(p, _):
        nxt = p @ P_pi
        return nxt, nxt

    _, ps = jax.lax.scan(step, mdp.p0, None, length=horizon)
    return jnp.concatenate([mdp.p0[None], ps])


def discounted_visitation(mdp: MDP, pi: jax.Array) -> jax.Array:
    """d^pi [S] = (1 - gamma) sum_t gamma^t p_pi(s_t), a distribution."""
    n = mdp.p0.shape[0]
    M = jnp.eye(n) - mdp.gamma * policy_transition(mdp, pi)
    return (1 - mdp.gamma) * jnp.linalg.solve(M.T, mdp.p0)


def policy_gradient(mdp: MDP, theta: jax.Array) -> jax.Array:
    """Exact grad_theta J [S, A] by the policy-gradient theorem:
    1/(1-gamma) sum_s d(s) sum_a pi(a|s) grad log pi(a|s) A(s, a); for softmax this is
    d(s) pi(a|s) A(s, a) / (1 - gamma)."""
    pi = policy(theta)
    d = discounted_visitation(mdp, pi)
    return d[:, None] * pi * advantages(mdp, pi) / (1 - mdp.gamma)


def fisher(mdp: MDP, theta: jax.Array) -> jax.Array:
    """F = E_{s ~ d, a ~ pi}[grad log pi grad log pi^T]: [S*A, S*A] (block diagonal:
    block s is d(s) (diag(pi_s) - pi_s pi_s^T))."""
    pi = policy(theta)
    d = discounted_visitation(mdp, pi)
    blocks = d[:, None, None] * (jax.vmap(jnp.diag)(pi) - pi[:, :, None] * pi[:, None, :])
    return jax.scipy.linalg.block_diag(*blocks)


def surrogate(mdp: MDP, theta: jax.Array, theta_new: jax.Array) -> jax.Array:
    """A_bar(theta') = 1/(1-gamma) E_{s ~ d_theta, a ~ pi_theta'}[A^{pi_theta}(s, a)]:
    the lecture's importance-weighted surrogate, states from the OLD policy."""
    pi, pi_new = policy(theta), policy(theta_new)
    d = discounted_visitation(mdp, pi)
    return jnp.sum(d[:, None] * pi_new * advantages(mdp, pi)) / (1 - mdp.gamma)


def policy_kl(pi_p: jax.Array, pi_q: jax.Array) -> jax.Array:
    """KL(p(.|s) || q(.|s)) per state: [S]."""
    return jnp.sum(pi_p * (jnp.log(pi_p) - jnp.log(pi_q)), axis=-1)


def policy_tv(pi_p: jax.Array, pi_q: jax.Array) -> jax.Array:
    """Total variation 1/2 sum_a |p - q| per state: [S]."""
    return 0.5 * jnp.sum(jnp.abs(pi_p - pi_q), axis=-1)


def surrogate_error_bound(mdp: MDP, theta: jax.Array, eps: jax.Array) -> jax.Array:
    """The lecture's bound, discounted: |J(theta') - J(theta) - A_bar(theta')| <=
    sum_t 2 eps t gamma^t max|A| = 2 eps max|A^{pi_theta}| gamma / (1 - gamma)^2,
    with eps = max_s TV(pi_theta', pi_theta)."""
    a_max = jnp.max(jnp.abs(advantages(mdp, policy(theta))))
    return 2.0 * eps * a_max * mdp.gamma / (1.0 - mdp.gamma) ** 2


def kl_normalised_step(direction: jax.Array, F: jax.Array, max_kl: jax.Array) -> jax.Array:
    """Scale `direction` [S, A] so that 1/2 delta^T F delta = max_kl."""
    quad = direction.ravel() @ F @ direction.ravel()
    return direction * jnp.sqrt(2.0 * max_kl / quad)


def optimal_values(mdp: MDP, iters: int = 2000) -> jax.Array:
    """V* [S] by value iteration."""

    def body(v, _):
        return jnp.max(mdp.r + mdp.gamma * mdp.P @ v, axis=1), None

    v, _ = jax.lax.scan(body, jnp.zeros(mdp.p0.shape), None, length=iters)
    return v
