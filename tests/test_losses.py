"""The losses, the advantage normalisation, the batch's bootstrapping and the observation
normaliser's update order, against numbers worked out by hand (numpy, float64).

The policy is a categorical over 3 actions whose probabilities are written out: the
stub actor returns its parameters as the logits (log p), the stub critic its parameters
as V(s), so every term of a loss is a textbook formula of those literal arrays.

Tolerances: float32 carries eps = 1.2e-7 relative; a loss here is a mean of 4 terms of
a few float32 operations each (log_softmax, exp, a product), so its error is a few eps
times the largest term. TOL(scale) = 32 eps * scale allows that with room, and stays
orders of magnitude below any formula mistake these tests look for (a missing 0.5, a
KL in the other direction, an unclipped sample: each moves a loss by > 1e-3).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from vecpg.algos import a2c, penalty, ppo
from vecpg.algos import objectives as obj
from vecpg.algos.base import Batch, Nets, Updater, minibatch_epochs
from vecpg.config import TrainConfig
from vecpg.envs import EnvSpec
from vecpg.models.networks import Agent, AgentParams
from vecpg.models.obs_norm import RunningStats, init_stats, update_stats
from vecpg.training import trainer
from vecpg.training.rollout import Transition

EPS32 = float(np.finfo(np.float32).eps)


def tol(scale: float) -> float:
    """Absolute tolerance for a float32 result of magnitude `scale` (module docstring)."""
    return 32 * EPS32 * max(scale, 1.0)


class TableActor(NamedTuple):
    """actor.apply(params, obs) = params: the logits are the parameters themselves."""

    def apply(self, params: Any, obs: jax.Array) -> Any:
        del obs
        return params


class TableCritic(NamedTuple):
    def apply(self, params: Any, obs: jax.Array) -> Any:
        del obs
        return params


SPEC = EnvSpec("table", (1,), True, 3, -1.0, 1.0, 10)
TABLE = Agent(actor=TableActor(), critic=TableCritic(), spec=SPEC)  # type: ignore[arg-type]

# Four samples: pi_new(.|s_i), pi_old(.|s_i), the action taken, its advantage.
P_NEW = np.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.75, 0.125, 0.125]])
P_OLD = np.array([[0.4, 0.3, 0.3], [0.25, 0.5, 0.25], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
ACTION = np.array([0, 1, 0, 0])
ADV = np.array([1.0, -2.0, 0.5, -1.0])
# ratio r = p_new(a) / p_old(a): 0.5/0.4, 0.25/0.5, 0.5/0.5, 0.75/0.5
RATIO = np.array([1.25, 0.5, 1.0, 1.5])
VALUE = np.array([1.0, 2.0, 0.0, -1.0])  # V(s_i) of the critic being trained
TARGET = np.array([1.5, 2.0, -1.0, -1.0])
# 0.5 mean (V - target)^2 = 0.5 * (0.25 + 0 + 1 + 0) / 4
VALUE_LOSS = 0.15625
ENTROPY = float(np.mean(scipy.stats.entropy(P_NEW, axis=-1)))  # scipy: -sum p log p


def table_batch() -> tuple[Nets, Batch]:
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    nets = Nets(actor=f32(np.log(P_NEW)), critic=f32(VALUE))
    batch = Batch(
        obs=jnp.zeros((4, 1)),
        action=jnp.asarray(ACTION, jnp.int32),
        log_prob=f32(np.log(P_OLD[np.arange(4), ACTION])),
        advantage=f32(ADV),
        target=f32(TARGET),
        value=jnp.zeros(4),
        old_dist=f32(np.log(P_OLD)),
    )
    return nets, batch


def hparams(**kw):
    return TrainConfig(**kw).hparams()


def test_table_ratios_are_the_written_ones():
    nets, b = table_batch()
    logp = jax.nn.log_softmax(nets.actor)[jnp.arange(4), b.action]
    np.testing.assert_allclose(np.exp(logp - b.log_prob), RATIO, rtol=0, atol=tol(1.5))


def test_ppo_clipped_loss_by_hand():
    """eps 0.2: min(r A, clip(r, 0.8, 1.2) A) per sample is
    s0 r 1.25, A +1: min(1.25, 1.2) = 1.2          (clipped)
    s1 r 0.5,  A -2: min(-1.0, 0.8 * -2) = -1.6    (clipped)
    s2 r 1.0,  A .5: 0.5                           (inside)
    s3 r 1.5,  A -1: min(-1.5, 1.2 * -1) = -1.5    (outside, not clipped: pessimistic)
    mean -0.35, policy loss +0.35; clip fraction 3/4."""
    nets, b = table_batch()
    hp = hparams(clip_eps=0.2, vf_coef=0.5, ent_coef=0.01)
    loss, m = ppo.clipped_loss(nets, TABLE, b, hp)
    want_policy = -np.mean([1.2, -1.6, 0.5, -1.5])
    assert want_policy == pytest.approx(0.35)
    np.testing.assert_allclose(m["policy_loss"], want_policy, rtol=0, atol=tol(1.6))
    np.testing.assert_allclose(m["value_loss"], VALUE_LOSS, rtol=0, atol=tol(1.0))
    np.testing.assert_allclose(m["entropy"], ENTROPY, rtol=0, atol=tol(1.1))
    np.testing.assert_allclose(m["clip_frac"], 0.75, rtol=0, atol=0)
    want = want_policy + 0.5 * VALUE_LOSS - 0.01 * ENTROPY
    np.testing.assert_allclose(loss, want, rtol=0, atol=tol(1.6))


def test_ppo_clipped_samples_carry_no_policy_gradient():
    """d loss / d logits_i = -(A_i / N) r_i (onehot(a_i) - p_i) for unclipped samples and 0
    for clipped ones (s0, s1): the textbook gradient of r = p(a) / p_old(a) in logits."""
    nets, b = table_batch()
    hp = hparams(clip_eps=0.2, vf_coef=0.0, ent_coef=0.0)
    grad = jax.grad(lambda actor: ppo.clipped_loss(nets._replace(actor=actor), TABLE, b, hp)[0])(
        nets.actor
    )
    onehot = np.eye(3)[ACTION]
    want = -(ADV / 4)[:, None] * RATIO[:, None] * (onehot - P_NEW)
    want[:2] = 0.0  # clipped
    np.testing.assert_allclose(grad, want, rtol=0, atol=tol(0.4))


@pytest.mark.parametrize("coef", [0.0, 2.0])
def test_penalized_loss_by_hand_uses_kl_old_new(coef):
    """ppo_kl and dual: -(E[r A] - coef * E_s[KL(pi_old || pi_new)]) + vf 0.5 E[(V-t)^2]
    - ent E[H], with the KL from scipy's rel_entr (sum p_old log(p_old / p_new))."""
    nets, b = table_batch()
    hp = hparams(vf_coef=0.5, ent_coef=0.01)
    loss, m = penalty.penalized_loss(nets, TABLE, b, hp, coef=jnp.float32(coef))
    kl_old_new = np.mean(scipy.special.rel_entr(P_OLD, P_NEW).sum(-1))
    kl_new_old = np.mean(scipy.special.rel_entr(P_NEW, P_OLD).sum(-1))
    surr = np.mean(RATIO * ADV)  # (1.25 - 1 + 0.5 - 1.5) / 4 = -0.1875
    assert surr == pytest.approx(-0.1875)
    want_policy = -(surr - coef * kl_old_new)
    np.testing.assert_allclose(m["policy_loss"], want_policy, rtol=0, atol=tol(1.5))
    want = want_policy + 0.5 * VALUE_LOSS - 0.01 * ENTROPY
    np.testing.assert_allclose(loss, want, rtol=0, atol=tol(1.5))
    if coef:  # the other direction would be told apart
        assert coef * abs(kl_old_new - kl_new_old) > 100 * tol(1.5)


def test_kl_functions_are_named_by_their_direction():
    """kl_old_new = E_s[KL(pi_old || pi_new)], kl_new_old = E_s[KL(pi_new || pi_old)], from
    a distribution or from actor parameters, against scipy's rel_entr."""
    nets, b = table_batch()
    want_old_new = np.mean(scipy.special.rel_entr(P_OLD, P_NEW).sum(-1))
    want_new_old = np.mean(scipy.special.rel_entr(P_NEW, P_OLD).sum(-1))
    assert abs(want_old_new - want_new_old) > 1e-3  # the two differ on this batch
    for got, want in (
        (obj.kl_old_new(TABLE, nets.actor, b), want_old_new),
        (obj.mean_kl_old_new(TABLE, nets.actor, b), want_old_new),
        (obj.kl_new_old(TABLE, nets.actor, b), want_new_old),
        (obj.mean_kl_new_old(TABLE, nets.actor, b), want_new_old),
    ):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol(1.0))
    logged = trainer.policy_change_metrics(TABLE, nets.actor, b)
    np.testing.assert_allclose(logged["kl_old_new"], want_old_new, rtol=0, atol=tol(1.0))
    np.testing.assert_allclose(logged["kl_new_old"], want_new_old, rtol=0, atol=tol(1.0))
    np.testing.assert_allclose(logged["max_ratio"], RATIO.max(), rtol=0, atol=tol(1.5))


def test_adaptive_beta_and_dual_ascent_by_hand():
    """PPO's rule with d_targ 0.01: halve below 0.01/1.5, double above 0.015, else keep;
    dual: lambda + dual_lr (KL - eps), floored at 0."""
    hp = hparams(max_kl=0.01, dual_lr=0.5)
    beta = jnp.float32(1.0)
    for kl, want in ((0.006, 0.5), (0.0067, 1.0), (0.01, 1.0), (0.0149, 1.0), (0.016, 2.0)):
        assert float(penalty.adaptive_beta(beta, jnp.float32(kl), hp)) == want, kl
    lam = jnp.float32(0.3)
    for kl, want in ((0.03, 0.31), (0.0, 0.295), (0.01, 0.3)):
        got = float(penalty.dual_ascent(lam, jnp.float32(kl), hp))
        np.testing.assert_allclose(got, want, rtol=0, atol=tol(0.3))
    assert float(penalty.dual_ascent(jnp.float32(0.001), jnp.float32(0.0), hp)) == 0.0


def test_a2c_loss_by_hand():
    """-E[log pi(a|s) A] + vf 0.5 E[(V - t)^2] - ent E[H]: log pi(a|s) = log 0.5, log 0.25,
    log 0.5, log 0.75."""
    nets, b = table_batch()
    hp = hparams(vf_coef=0.25, ent_coef=0.1)
    loss, m = a2c.pg_loss(nets, TABLE, b, hp)
    want_policy = -np.mean(np.log([0.5, 0.25, 0.5, 0.75]) * ADV)
    np.testing.assert_allclose(m["policy_loss"], want_policy, rtol=0, atol=tol(3.0))
    np.testing.assert_allclose(m["value_loss"], VALUE_LOSS, rtol=0, atol=tol(1.0))
    want = want_policy + 0.25 * VALUE_LOSS - 0.1 * ENTROPY
    np.testing.assert_allclose(loss, want, rtol=0, atol=tol(3.0))


def test_a2c_update_normalises_advantages_over_the_whole_batch(monkeypatch):
    """The loss receives (A - mean A) / (std A + 1e-8) of the whole batch (numpy's
    population std), once per iteration."""
    seen = []

    def spy(nets, agent, b, hp):
        seen.append(np.asarray(b.advantage))
        return a2c.obj.value_loss(agent, nets.critic, b), {}

    monkeypatch.setattr(a2c, "pg_loss", spy)
    nets, b = table_batch()
    cfg = TrainConfig(algo="a2c", num_envs=2, num_steps=2)
    static, hp = cfg.static(), cfg.hparams()
    params = AgentParams(nets.actor, nets.critic, init_stats((1,)))
    state = a2c.init(static, TABLE, params, hp)
    a2c.update(static, TABLE, jax.random.key(0), params, state, b, hp)
    assert len(seen) == 1
    want = (ADV - ADV.mean()) / (ADV.std() + 1e-8)
    np.testing.assert_allclose(seen[0], want, rtol=0, atol=tol(2.0))


def test_minibatch_advantages_are_normalised_with_their_own_statistics():
    """8 samples, 2 epochs x 2 minibatches of 4: each minibatch's advantages are
    (A_mb - mean A_mb) / (std A_mb + 1e-8) of that minibatch, not of the whole batch.
    The minibatch's obs carry the sample indices, so numpy recomputes each one."""
    n, epochs, mbs = 8, 2, 2
    adv = np.array([0.0, 1.0, 3.0, -2.0, 10.0, 20.0, -30.0, 5.0])
    z = jnp.zeros(n)
    batch = Batch(jnp.arange(n, dtype=jnp.float32), z, z, jnp.asarray(adv, jnp.float32), z, z, z)
    steps = epochs * mbs

    def step(carry, mb):
        i, idx, a = carry
        return (i + 1, idx.at[i].set(mb.obs), a.at[i].set(mb.advantage)), {}

    carry0 = (jnp.int32(0), jnp.zeros((steps, n // mbs)), jnp.zeros((steps, n // mbs)))
    (_, idx, got), _ = minibatch_epochs(
        jax.random.key(3), carry0, batch, epochs, mbs, step, normalized_advantages=True
    )
    idx = np.asarray(idx).astype(int)
    for e in range(epochs):  # every epoch's minibatches partition the batch
        assert sorted(idx[e * mbs : (e + 1) * mbs].ravel().tolist()) == list(range(n))
    for s in range(steps):
        a = adv[idx[s]]
        want = (a - a.mean()) / (a.std() + 1e-8)
        np.testing.assert_allclose(got[s], want, rtol=0, atol=tol(2.0))
        whole = (a - adv.mean()) / (adv.std() + 1e-8)
        assert np.max(np.abs(whole - want)) > 0.1  # the whole batch's statistics differ


def linear_critic_agent() -> Agent:
    """V(s) = s[0]; logits (s[0], -s[0])."""

    class Critic(NamedTuple):
        def apply(self, params, obs):
            return obs[..., 0]

    class Actor(NamedTuple):
        def apply(self, params, obs):
            return jnp.stack([obs[..., 0], -obs[..., 0]], axis=-1)

    spec = EnvSpec("line", (1,), True, 2, -1.0, 1.0, 10)
    return Agent(actor=Actor(), critic=Critic(), spec=spec)  # type: ignore[arg-type]


def test_make_batch_bootstraps_truncation_and_not_termination():
    """T = 3 steps of 2 envs, V(s) = s, gamma 0.5, lambda 0.5, reward 2 scaled by 0.5.
    env 0: s = 1, 2, 3; step 1 is truncated (true next state 10; the env then resets to 3),
    step 2 terminates (next state 4 is terminal):
      delta = 1 + 0.5 * 2 - 1 = 1,  1 + 0.5 * 10 - 2 = 4,  1 + 0 - 3 = -2
      A_2 = -2,  A_1 = 4 (the trace stops at the truncation),  A_0 = 1 + 0.25 * 4 = 2.
    env 1: s = 0 throughout, nothing ends: delta = 1 each,
      A_2 = 1,  A_1 = 1 + 0.25 = 1.25,  A_0 = 1 + 0.25 * 1.25 = 1.3125.
    Flattened time-major: index t * B + b."""
    agent = linear_critic_agent()
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    b = lambda x: jnp.asarray(x, bool)  # noqa: E731
    obs = f([[[1.0], [0.0]], [[2.0], [0.0]], [[3.0], [0.0]]])  # [T, B, 1]
    next_obs = f([[[2.0], [0.0]], [[10.0], [0.0]], [[4.0], [0.0]]])
    zeros = jnp.zeros((3, 2))
    traj = Transition(
        obs=obs,
        action=jnp.zeros((3, 2), jnp.int32),
        log_prob=f([[-0.1, -0.2], [-0.3, -0.4], [-0.5, -0.6]]),
        reward=jnp.full((3, 2), 2.0),
        terminated=b([[0, 0], [0, 0], [1, 0]]),
        truncated=b([[0, 0], [1, 0], [0, 0]]),
        next_obs=next_obs,
        finished_return=zeros,
        finished_length=zeros,
        nonfinite=b(zeros),
    )
    params = AgentParams(jnp.zeros(()), jnp.zeros(()), init_stats((1,)))
    hp = hparams(gamma=0.5, gae_lambda=0.5, reward_scale=0.5)
    batch = trainer.make_batch(agent, params, traj, hp, normalize=False)
    adv = np.array([2.0, 1.3125, 4.0, 1.25, -2.0, 1.0])
    value = np.array([1.0, 0.0, 2.0, 0.0, 3.0, 0.0])
    np.testing.assert_allclose(batch.advantage, adv, rtol=0, atol=tol(4.0))
    np.testing.assert_allclose(batch.value, value, rtol=0, atol=0)
    np.testing.assert_allclose(batch.target, adv + value, rtol=0, atol=tol(6.0))
    log_prob = np.array([-0.1, -0.2, -0.3, -0.4, -0.5, -0.6], np.float32)  # moved, not computed
    np.testing.assert_array_equal(batch.log_prob, log_prob)
    np.testing.assert_array_equal(batch.old_dist, np.stack([value, -value], -1))


def test_update_stats_equals_numpy_moments_of_the_concatenated_data():
    rng = np.random.default_rng(0)
    xs = [rng.normal(loc=[3.0, -1.0], scale=[2.0, 0.1], size=(n, 2)) for n in (50, 30, 7)]
    first = xs[0]
    stats = RunningStats(
        jnp.asarray(first.mean(0), jnp.float32),
        jnp.asarray(first.var(0), jnp.float32),
        jnp.float32(len(first)),
    )
    for x in xs[1:]:
        stats = update_stats(stats, jnp.asarray(x, jnp.float32))
    allx = np.concatenate(xs)
    # moments of magnitude <= 4, a few float32 operations per merge
    np.testing.assert_allclose(stats.mean, allx.mean(0), rtol=0, atol=tol(4.0))
    np.testing.assert_allclose(stats.var, allx.var(0), rtol=64 * EPS32, atol=tol(0.01))
    assert float(stats.count) == len(allx)


def pooled(mean0, var0, count0, x):
    """Moments of a population of `count0` samples with (mean0, var0), pooled with the
    rows of x [n, d] (float64)."""
    n = x.shape[0]
    mean = (count0 * mean0 + x.sum(0)) / (count0 + n)
    ss = count0 * (var0 + (mean0 - mean) ** 2) + ((x - mean) ** 2).sum(0)
    return mean, ss / (count0 + n)


def test_rollout_and_batch_use_the_stats_from_before_the_update(monkeypatch):
    """One real train iteration on CartPole from stats unlike its observations: the
    rollout samples and the batch normalises with the stats it started with; the stats it
    ends with pool in exactly this iteration's observations."""
    static = TrainConfig(num_envs=4, num_steps=8, hidden=(8,)).static()
    p = trainer.make_pieces(static)
    hp = TrainConfig().hparams()
    seen: dict[str, Any] = {}
    make_batch = trainer.make_batch

    def spy_batch(agent, params, traj, hp, *, normalize):
        seen["traj"], seen["batch_stats"] = traj, params.obs_stats
        return make_batch(agent, params, traj, hp, normalize=normalize)

    def spy_update(key, params, state, batch, hp):
        seen["batch"] = batch
        return params, state, {}

    monkeypatch.setattr(trainer, "make_batch", spy_batch)
    p = p._replace(updater=Updater(p.updater.init, spy_update))
    state = trainer.init_train_state(p, jax.random.key(0), hp)
    mean0 = np.array([0.5, -0.5, 0.1, 0.2])
    var0 = np.array([4.0, 1.0, 0.25, 2.0])
    count0 = 100.0
    stats0 = RunningStats(jnp.asarray(mean0, jnp.float32), jnp.asarray(var0, jnp.float32),
                          jnp.float32(count0))  # fmt: skip
    params0 = state.params.replace(obs_stats=stats0)
    state = state.replace(params=params0)
    new_state, _ = trainer.train_iteration(p, state, hp, jnp.int32(0))

    raw = np.asarray(seen["traj"].obs, np.float64).reshape(-1, 4)  # [T * B, 4]
    jax.tree.map(np.testing.assert_array_equal, seen["batch_stats"], stats0)

    def norm(m, v):
        return np.clip((raw - m) / np.sqrt(v + 1e-8), -10.0, 10.0)

    before = norm(mean0, var0)
    np.testing.assert_allclose(seen["batch"].obs, before, rtol=0, atol=tol(10.0))
    # the rollout's log pi_old(a|s) is the actor on the same normalised observations
    logits = np.asarray(p.agent.actor.apply(params0.actor, jnp.asarray(before, jnp.float32)))
    logp = scipy.special.log_softmax(logits.astype(np.float64), axis=-1)
    action = np.asarray(seen["traj"].action).reshape(-1)
    want_logp = logp[np.arange(len(action)), action]
    np.testing.assert_allclose(seen["traj"].log_prob.reshape(-1), want_logp, rtol=0, atol=tol(1))

    mean1, var1 = pooled(mean0, var0, count0, raw)
    stats1 = new_state.params.obs_stats
    np.testing.assert_allclose(stats1.mean, mean1, rtol=0, atol=tol(1.0))
    np.testing.assert_allclose(stats1.var, var1, rtol=64 * EPS32, atol=tol(0.1))
    np.testing.assert_allclose(float(stats1.count), count0 + len(raw), rtol=EPS32)
    # not vacuous: normalising with the updated stats would have given other inputs
    assert np.max(np.abs(norm(mean1, var1) - before)) > 0.05
