"""Episode wrappers on a toy env, and the brax/gymnax adapters' protocol."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vecpg
import vecpg.envs
from tests.conftest import FAST_COMPILE_CONFIG
from vecpg.envs import EnvSpec, EnvStep, make_env, reset_episode, step_episode
from vecpg.errors import ConfigError
from vecpg.models.obs_norm import init_stats, normalize_obs, update_stats


class CountingEnv:
    """obs = [steps since reset]; reward 1; terminates at `term_at`; NaN obs at `nan_at`."""

    def __init__(self, term_at=100, nan_at=-1, max_steps=5):
        self.term_at, self.nan_at = term_at, nan_at
        self.spec = EnvSpec("test/counting", (1,), True, 2, 0.0, 0.0, max_steps)

    def reset(self, key):
        return EnvStep(jnp.int32(0), jnp.zeros(1), jnp.float32(0.0), jnp.bool_(False))

    def step(self, state, action):
        s = state + 1
        obs = jnp.where(s == self.nan_at, jnp.nan, s.astype(jnp.float32))[None]
        return EnvStep(s, obs, jnp.float32(1.0), s == self.term_at)


def run(env, n):
    state = reset_episode(env, jax.random.key(0))
    outs = []
    for _ in range(n):
        out = step_episode(env, state, jnp.int32(0))
        outs.append(out)
        state = out.state
    return outs


def test_time_limit_truncates_without_terminating_and_resets():
    outs = run(CountingEnv(max_steps=5), 7)
    assert [bool(o.truncated) for o in outs] == [False] * 4 + [True] + [False] * 2
    assert not any(bool(o.terminated) for o in outs)
    assert float(outs[4].next_obs[0]) == 5.0  # true s_{t+1}, kept for bootstrapping
    assert float(outs[4].state.obs[0]) == 0.0  # the env was reset
    assert float(outs[4].finished_return) == 5.0 and int(outs[4].finished_length) == 5
    assert float(outs[5].finished_return) == 0.0


def test_a_deferred_reset_leaves_the_env_pending_until_its_next_step_begins_it():
    """The rollout's path: an ended episode leaves t = -1 (pending) and its state as it
    ended; `begin_pending` then starts it at the given fresh start, and only it."""
    from vecpg.envs.wrappers import begin_pending, unstarted_episodes

    env = CountingEnv(term_at=2, max_steps=50)
    fresh = EnvStep(jnp.int32(7), jnp.full((1,), 7.0), jnp.float32(0.0), jnp.bool_(False))
    state = unstarted_episodes(env, jax.random.key(0), 1)
    state = jax.tree.map(lambda x: x[0], state)
    assert int(state.t) == -1
    counts, ts = [], []
    for _ in range(4):
        state = begin_pending(state, fresh)
        counts.append(int(state.env_state))
        out = step_episode(env, state, jnp.int32(0), defer_reset=True)
        ts.append(int(out.state.t))
        state = out.state
    # starts at 7: steps to 8, 9, 10 (never 2: no termination) ...
    assert counts == [7, 8, 9, 10] and ts == [1, 2, 3, 4]
    env = CountingEnv(term_at=9, max_steps=50)
    state = jax.tree.map(lambda x: x[0], unstarted_episodes(env, jax.random.key(0), 1))
    outs = []
    for _ in range(3):
        state = begin_pending(state, fresh)
        outs.append(step_episode(env, state, jnp.int32(0), defer_reset=True))
        state = outs[-1].state
    # ... and with termination at 9: 7 -> 8, 8 -> 9 ends (pending, state kept), then 7 again
    assert [bool(o.terminated) for o in outs] == [False, True, False]
    assert int(outs[1].state.t) == -1 and int(outs[1].state.env_state) == 9
    assert float(outs[1].finished_return) == 2.0 and float(outs[1].state.ep_return) == 0.0
    assert int(outs[2].state.env_state) == 8 and int(outs[2].state.t) == 1


def test_termination_is_not_truncation():
    outs = run(CountingEnv(term_at=3, max_steps=5), 4)
    assert [bool(o.terminated) for o in outs] == [False, False, True, False]
    assert not any(bool(o.truncated) for o in outs)
    assert float(outs[2].finished_return) == 3.0


def test_nonfinite_obs_is_counted_zeroed_and_reset():
    outs = run(CountingEnv(nan_at=2, max_steps=50), 4)
    # the toy env restarts its counter on reset, so it turns NaN again two steps later
    assert [bool(o.nonfinite) for o in outs] == [False, True, False, True]
    assert bool(outs[1].terminated)  # never bootstrap from a poisoned state
    assert np.all(np.isfinite(np.asarray(outs[1].next_obs)))
    assert float(outs[1].reward) == 0.0
    assert float(outs[2].next_obs[0]) == 1.0  # fresh episode after the reset


def test_running_stats_match_numpy():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 2)) for n in (50, 7, 200)]
    stats = init_stats((2,))
    for c in chunks:
        stats = update_stats(stats, jnp.asarray(c))
    allx = np.concatenate(chunks)
    np.testing.assert_allclose(stats.mean, allx.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats.var, allx.var(0), rtol=1e-3)
    z = normalize_obs(stats, jnp.asarray(allx))
    np.testing.assert_allclose(np.asarray(z).mean(0), 0.0, atol=1e-3)


@pytest.mark.parametrize(
    "name,obs_shape,discrete,n",
    [
        ("gymnax/CartPole-v1", (4,), True, 2),
        ("gymnax/Acrobot-v1", (6,), True, 3),
        ("gymnax/Pendulum-v1", (3,), False, 1),
        ("brax/inverted_pendulum", (4,), False, 1),
    ],
)
def test_adapters_follow_the_protocol(name, obs_shape, discrete, n):
    env = make_env(name, "generalized")
    assert env.spec.obs_shape == obs_shape
    assert env.spec.discrete == discrete and env.spec.num_actions == n
    keys = jax.random.split(jax.random.key(0), 3)
    # jitted: run op by op, brax's step compiled hundreds of tiny programs (about 30 s)
    state = jax.jit(jax.vmap(lambda k: reset_episode(env, k)))(keys)
    action = jnp.zeros((3,), jnp.int32) if discrete else jnp.zeros((3, n))
    out = jax.jit(jax.vmap(lambda s, a: step_episode(env, s, a)))(state, action)
    assert out.next_obs.shape == (3, *obs_shape)
    assert out.reward.shape == (3,) and out.terminated.dtype == jnp.bool_
    assert np.all(np.isfinite(np.asarray(out.next_obs)))


def test_known_third_party_noise_is_silenced_and_real_warnings_pass(capsys):
    import warnings

    from vecpg.envs.quiet import third_party_quiet

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with third_party_quiet():
            warnings.warn(
                "Brax System, piplines and environments are not actively being maintained. "
                "Please see MJX",
                UserWarning,
                stacklevel=1,
            )
            deprecated = "Accessing `ncon` directly from `Data` is deprecated."
            warnings.warn(deprecated, DeprecationWarning, stacklevel=1)
            warnings.warn("a real problem", UserWarning, stacklevel=1)
            print("Failed to import warp: No module named 'warp'")
            print("a line of the user's")
        warnings.warn(
            "Brax System, piplines and environments are not actively being maintained",
            UserWarning,
            stacklevel=1,
        )  # fmt: skip  (outside: not filtered)
    assert [str(w.message) for w in seen] == [
        "a real problem",
        "Brax System, piplines and environments are not actively being maintained",
    ]
    assert capsys.readouterr().out == "a line of the user's\n"


def test_gymnax_time_limit_is_a_truncation_through_the_wrappers():
    """Pendulum never terminates: its 200-step limit must reach the trainer as
    truncated (bootstrapped), never as terminated, then restart the episode."""
    env = make_env("gymnax/Pendulum-v1")
    assert env.spec.max_episode_steps == 200

    def body(state, _):
        out = step_episode(env, state, jnp.zeros(env.spec.num_actions))
        return out.state, (out.terminated, out.truncated, out.finished_length, out.state.t)

    _, (term, trunc, length, t) = jax.lax.scan(
        body, reset_episode(env, jax.random.key(0)), None, length=450
    )
    assert not bool(term.any())
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(trunc)), [199, 399])
    np.testing.assert_array_equal(np.asarray(length)[[199, 399]], [200, 200])
    assert int(t[199]) == 0 and int(t[200]) == 1  # a fresh episode after the limit


def test_a_gymnax_step_splits_its_key_only_when_it_draws():
    """CartPole's step draws nothing: it gets its key unsplit (a split nobody reads is
    still compiled), and its result does not depend on it; Acrobot's step adds noise
    and splits it as gymnax's own step does."""
    cartpole, acrobot = make_env("gymnax/CartPole-v1"), make_env("gymnax/Acrobot-v1")
    assert (cartpole._step_draws, acrobot._step_draws) == (False, True)
    ts = cartpole.reset(jax.random.key(3))
    out = cartpole.step(ts.state, jnp.int32(1))
    assert bool(jnp.all(jax.random.key_data(out.state.key) == jax.random.key_data(ts.state.key)))
    other = cartpole.step(ts.state.replace(key=jax.random.key(4)), jnp.int32(1))
    np.testing.assert_array_equal(np.asarray(out.obs), np.asarray(other.obs))  # key unread
    ts = acrobot.reset(jax.random.key(3))
    out = acrobot.step(ts.state, jnp.int32(1))
    want = jax.random.split(ts.state.key)[0]
    assert bool(jnp.all(jax.random.key_data(out.state.key) == jax.random.key_data(want)))


@pytest.mark.parametrize("env", [n for n in vecpg.envs.env_names() if n.startswith("gymnax/")])
def test_every_gymnax_env_trains(env):
    """Observations of every rank (MinAtar's [10, 10, C] images get the conv torso,
    bsuite's [10, 5] and [8, 8] grids are flattened): one tiny a2c iteration, finite."""
    cfg = vecpg.TrainConfig(env=env, algo="a2c", num_envs=2, num_steps=4, total_steps=8,
                            hidden=(8,), **FAST_COMPILE_CONFIG)  # fmt: skip
    res = vecpg.train(cfg, seeds=1)
    assert res.metrics["env_steps"].shape == (1, 1)
    assert np.isfinite(res.metrics["value_loss"]).all()
    assert not res.metrics["diverged"].any()


def test_image_observations_get_the_minatar_conv_torso():
    from vecpg.models.networks import init_agent_params, make_agent

    env = make_env("gymnax/Breakout-MinAtar")
    agent = make_agent(env.spec, (8,), "tanh")  # torso auto -> cnn
    params = init_agent_params(agent, jax.random.key(0))
    torso = params.actor["params"]["Torso_0"]
    assert torso["Conv_0"]["kernel"].shape == (3, 3, 4, 16)  # 3x3, 16 channels
    assert torso["Dense_0"]["kernel"].shape == (8 * 8 * 16, 128)  # VALID conv, 128 units
    obs = jnp.zeros((5, 7, 10, 10, 4))  # any leading batch axes
    assert agent.actor.apply(params.actor, obs).shape == (5, 7, env.spec.num_actions)
    assert agent.critic.apply(params.critic, obs).shape == (5, 7)
    flat = make_agent(env.spec, (8,), "tanh", "mlp")
    assert "Torso_0" not in init_agent_params(flat, jax.random.key(0)).actor["params"]
    with pytest.raises(ConfigError, match=r"invalid torso='cnn': needs image observations"):
        make_agent(make_env("gymnax/Catch-bsuite").spec, (8,), "tanh", "cnn")


@pytest.mark.slow
def test_ppo_learns_catch_from_its_2d_observations():
    """bsuite Catch ([10, 5] grid, flattened): mean final return >= 0.8 of 1 over 4 seeds
    within 200k steps (measured: 1.00 on every seed)."""
    cfg = vecpg.TrainConfig(env="gymnax/Catch-bsuite", total_steps=200_000)
    res = vecpg.train(cfg, seeds=4)
    assert res.final_returns().mean() >= 0.8, res.final_returns()


def test_recorded_specs_match_built_envs_and_envs_lists_without_building(monkeypatch, capsys):
    from vecpg.cli import main
    from vecpg.envs import catalog, registry

    recorded = catalog.recorded_specs()
    cheap = [n for n in recorded if n.startswith(("gymnax/", "tabular/"))]
    assert len(cheap) >= 20
    for name in [*cheap, "brax/inverted_pendulum"]:
        assert make_env(name).spec == recorded[name], name
    # `vecpg envs` reads the record: building any recorded env would fail here
    monkeypatch.setattr(registry, "make_env", lambda *a, **k: 1 / 0)
    monkeypatch.setattr(vecpg.envs, "make_env", lambda *a, **k: 1 / 0)
    assert main(["envs", "--source", "all"]) == 0
    out = capsys.readouterr().out
    assert "Box(10, 10, 4)" in out and "brax/hopper" in out and "ZeroDivision" not in out


def test_gymnax_imports_its_renderers_modules_only_when_they_are_used():
    """gymnax imports seaborn and pyplot for its renderers: vecpg defers both to first use
    (in a fresh process: nothing of them, or of scipy.stats, loads with the env)."""
    import subprocess
    import sys

    code = """
import sys
from vecpg.envs import make_env
make_env("gymnax/CartPole-v1")
print(sorted(m for m in ("pandas", "scipy.stats", "matplotlib.figure") if m in sys.modules))
import seaborn.palettes
print(len(seaborn.palettes.color_palette("cubehelix", 3)), sys.modules["seaborn"] is seaborn)
import matplotlib.pyplot as plt
print(type(plt.figure()).__name__, "scipy.stats" in sys.modules)
from gymnax.environments.misc import pong
print(pong.sns.color_palette is seaborn.color_palette, pong.plt.figure is plt.figure)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    want = ["[]", "3 True", "Figure True", "True True"]
    assert out.stdout.split("\n")[:4] == want, out.stdout
