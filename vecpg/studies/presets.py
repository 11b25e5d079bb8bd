"""Study presets: the PPO settings MuJoCo Playground publishes for its DM Control suite.

`playground-dmc` reads `mujoco_playground.config.dm_control_suite_params.brax_ppo_config
(name)` from the installed package for every `playground/<Name>` DM Control task, and
brax PPO's own defaults (the arguments of `brax.training.agents.ppo.train.train` and
`ppo.networks.make_ppo_networks` that the config leaves unset) from the installed brax.
The mapping, with CartpoleBalance's values (Playground 0.2):

| Playground / brax PPO                       | vecpg TrainConfig  | CartpoleBalance          |
|---------------------------------------------|--------------------|--------------------------|
| num_envs                                    | num_envs           | 2048                     |
| unroll_length x batch_size x num_minibatches | num_steps          | 30 x 1024 x 32 / 2048    |
|   / num_envs (the unrolls per env per update) |                    |   = 480                  |
| num_minibatches                             | num_minibatches    | 32                       |
| num_updates_per_batch                       | update_epochs      | 16                       |
| discounting                                 | gamma              | 0.995                    |
| learning_rate                               | learning_rate      | 1e-3                     |
| entropy_cost                                | ent_coef           | 0.01                     |
| reward_scaling                              | reward_scale       | 10.0                     |
| num_timesteps                               | total_steps        | 60,000,000               |
| normalize_observations                      | normalize_obs      | true                     |
| (brax default) clipping_epsilon             | clip_eps           | 0.3                      |
| (brax default) gae_lambda                   | gae_lambda         | 0.95                     |
| (brax default) vf_loss_coefficient          | vf_coef            | 0.5 (both 0.5 x 0.5 MSE) |
| (brax default) max_grad_norm None           | max_grad_norm      | 1e9 (no clipping)        |
| (brax default) policy_hidden_layer_sizes    | hidden             | (32, 32, 32, 32)         |
| (brax default) activation swish             | activation         | swish                    |
| constant learning rate                      | anneal_lr          | false                    |

Batch semantics. A brax PPO training step runs num_envs envs for batch_size x
num_minibatches / num_envs unrolls of unroll_length steps each, with the policy fixed,
then makes num_updates_per_batch passes over those batch_size x num_minibatches
trajectories in num_minibatches minibatches. That is num_envs x (unrolls x unroll_length)
consecutive steps per update: vecpg's num_envs x num_steps batch with num_steps = 480,
the same 983,040 steps per update and the same 30,720-step minibatches. The one
difference: brax bootstraps GAE at the end of every 30-step unroll, vecpg at the end of
its 480-step rollout. 60M steps are 61 vecpg iterations (brax rounds up to whole
evaluation epochs: 63 training steps).

Not mapped: brax's critic is (256,) x 5 where vecpg's one `hidden` serves actor and
critic (the policy's (32,) x 4 is used for both); brax's tanh-squashed Gaussian (vecpg:
a Gaussian clipped to the bounds); action_repeat (4 for PendulumSwingup; vecpg has none,
so that task runs with 1); num_evals / num_resets_per_eval (vecpg scores the training
episodes' returns); episode_length (vecpg's playground episodes are the env's 1000 steps).

`playground-dmc-cpu` keeps every ratio (num_steps 480, epochs, minibatch count, gamma,
learning rate, entropy, reward scale, network) and divides the env count and the budget
by 64 for a 2-core CPU: num_envs 2048 / 64 = 32 (a 15,360-step batch in 32 minibatches
of 480 steps) and total_steps num_timesteps / 64 (937,500 for the 60M tasks, 1,562,500
for the 100M ones), so a cell makes the same number of updates (61 or 101) as the GPU
preset on 1/64 of the data.

npg and trpo (and a2c) take the rollout settings only (num_envs, num_steps, total_steps,
gamma, gae_lambda, reward_scale, normalize_obs, hidden, activation, anneal_lr) and keep
their own vecpg defaults for everything else; ppo, ppo_kl and dual take all of them.
"""

from __future__ import annotations

import inspect
from typing import Any

from vecpg.errors import ConfigError

PRESETS = ("playground-dmc", "playground-dmc-cpu")
CPU_DIVISOR = 64  # playground-dmc-cpu: env count and budget / 64
NO_GRAD_CLIP = 1e9  # brax PPO's max_grad_norm=None: vecpg's field must be finite
PPO_FAMILY = ("ppo", "ppo_kl", "dual")
ROLLOUT = (
    "num_envs",
    "num_steps",
    "total_steps",
    "gamma",
    "gae_lambda",
    "reward_scale",
    "normalize_obs",
    "hidden",
    "activation",
    "anneal_lr",
)
PREFIX = "playground/"
ACTIVATION_NAMES = {"silu": "swish"}  # jax/flax name -> vecpg's (the same function)


def dm_control_tasks() -> tuple[str, ...]:
    """The DM Control suite task names of the installed MuJoCo Playground."""
    try:
        from mujoco_playground._src import dm_control_suite
    except ImportError:
        raise ConfigError(
            "invalid preset: the playground presets need MuJoCo Playground "
            "(pip install 'vecpg[playground]')"
        ) from None
    return tuple(dm_control_suite.ALL_ENVS)


def check_preset(preset: str, envs: tuple[str, ...]) -> None:
    """One line unless `preset` is known and every env is a DM Control playground task."""
    if preset not in PRESETS:
        raise ConfigError(f"invalid preset={preset!r}: allowed: {', '.join(PRESETS)}")
    tasks = dm_control_tasks()
    for env in envs:
        if not env.startswith(PREFIX) or env[len(PREFIX) :] not in tasks:
            raise ConfigError(
                f"invalid preset={preset!r}: env {env!r} is not a playground DM Control task "
                f"(playground/<Name>, Name one of {', '.join(tasks)})"
            )


def brax_defaults() -> dict[str, Any]:
    """brax PPO's defaults for what Playground's config leaves unset (installed brax)."""
    from brax.training.agents.ppo import networks, train

    run = inspect.signature(train.train).parameters
    nets = inspect.signature(networks.make_ppo_networks).parameters
    name = getattr(nets["activation"].default, "__name__", "swish")
    return {
        "clip_eps": float(run["clipping_epsilon"].default),
        "gae_lambda": float(run["gae_lambda"].default),
        "vf_coef": float(run["vf_loss_coefficient"].default),
        "max_grad_norm": (
            NO_GRAD_CLIP
            if run["max_grad_norm"].default is None
            else float(run["max_grad_norm"].default)
        ),
        "hidden": tuple(nets["policy_hidden_layer_sizes"].default),
        "activation": ACTIVATION_NAMES.get(name, name),
    }


def playground_ppo(task: str, cpu: bool = False) -> dict[str, Any]:
    """vecpg TrainConfig fields for Playground's published PPO config of `task` (a DM
    Control name such as 'CartpoleBalance'); `cpu`: env count and budget / 64."""
    from mujoco_playground.config import dm_control_suite_params

    c = dm_control_suite_params.brax_ppo_config(task)
    unrolls = c.batch_size * c.num_minibatches // c.num_envs
    num_envs, total = int(c.num_envs), int(c.num_timesteps)
    if cpu:
        num_envs, total = num_envs // CPU_DIVISOR, total // CPU_DIVISOR
    return {
        **brax_defaults(),
        "num_envs": num_envs,
        "num_steps": int(c.unroll_length * unrolls),
        "num_minibatches": int(c.num_minibatches),
        "update_epochs": int(c.num_updates_per_batch),
        "gamma": float(c.discounting),
        "learning_rate": float(c.learning_rate),
        "ent_coef": float(c.entropy_cost),
        "reward_scale": float(c.reward_scaling),
        "total_steps": total,
        "normalize_obs": bool(c.normalize_observations),
        "anneal_lr": False,
    }


def preset_settings(preset: str | None, algo: str, env: str) -> dict[str, Any]:
    """The preset layer of one cell ({} without a preset)."""
    if preset is None:
        return {}
    check_preset(preset, (env,))
    settings = playground_ppo(env[len(PREFIX) :], cpu=preset.endswith("-cpu"))
    if algo in PPO_FAMILY:
        return settings
    return {k: v for k, v in settings.items() if k in ROLLOUT}
