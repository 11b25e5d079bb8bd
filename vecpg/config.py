"""Configuration: one user-facing frozen dataclass, split into static and traced halves.

`TrainConfig` is what users write (and what the CLI exposes, one flag per field).
`make_train` never sees it: it gets a `StaticConfig` (shapes, counts, names; changing
one recompiles) and a traced `HParams` pytree (every float a leaf, so seeds and grids
can be vmapped over it).
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax.numpy as jnp

ALGOS = ("a2c", "ppo", "ppo_kl", "dual", "npg", "trpo")
BACKENDS = ("generalized", "positional", "spring", "mjx")
ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "swish")


class ConfigError(ValueError):
    """A one-line, user-facing message naming the bad field and what is allowed."""


@dataclasses.dataclass(frozen=True)
class ConfigFields:
    """Every training setting. Validation lives in `TrainConfig`."""

    algo: str = "ppo"
    """Algorithm: a2c | ppo | ppo_kl | dual | npg | trpo (README gives each equation)."""
    env: str = "gymnax/CartPole-v1"
    """Environment: brax/<name> or gymnax/<id> (`vecpg envs` lists them)."""
    backend: str = "generalized"
    """Brax physics backend: generalized | positional | spring | mjx (ignored for gymnax)."""
    num_envs: int = 8
    """Parallel environments per seed."""
    num_steps: int = 128
    """Rollout length per iteration; batch = num_envs * num_steps."""
    total_steps: int = 500_000
    """Env steps per seed; iterations = total_steps // batch."""
    update_epochs: int = 4
    """Passes over the batch per iteration (ppo, ppo_kl; critic epochs for npg/trpo/dual)."""
    num_minibatches: int = 4
    """Minibatches per epoch; must divide num_envs * num_steps."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes, shared by actor and critic (separate networks)."""
    activation: str = "tanh"
    """Hidden activation: tanh | relu | elu | gelu | swish."""
    normalize_obs: bool = True
    """Running mean/var observation normalisation, updated in-graph, saved with params."""
    anneal_lr: bool = True
    """Linearly anneal the learning rate to 0 over training."""
    log_every: int = 10
    """Host progress callback every this many iterations (never changes results)."""
    cg_iters: int = 10
    """Conjugate-gradient iterations for the natural direction (npg, trpo)."""
    linesearch_steps: int = 10
    """Backtracking steps tried by trpo."""
    fvp_fraction: float = 1.0
    """Fraction of the batch used for Fisher-vector products (TRPO paper: 0.1)."""
    anneal_kl: bool = False
    """npg/trpo: anneal the KL budget max_kl linearly to 0 over training."""
    npg_fixed_step: bool = False
    """npg: step natural_lr * F^-1 g instead of the KL-normalised sqrt(2 max_kl / gFg)."""
    # Traced hyperparameters: leaves of HParams.
    learning_rate: float = 2.5e-4
    """Adam learning rate (actor and critic)."""
    gamma: float = 0.99
    """Discount, in (0, 1]."""
    gae_lambda: float = 0.95
    """GAE lambda, in [0, 1]."""
    clip_eps: float = 0.2
    """PPO ratio clip."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value-loss coefficient in the joint loss (a2c, ppo, ppo_kl)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    reward_scale: float = 0.1
    """Rewards are multiplied by this before GAE (episode returns are logged unscaled)."""
    max_kl: float = 0.01
    """KL budget: delta for trpo/npg, epsilon for dual, d_targ for ppo_kl."""
    damping: float = 0.1
    """Fisher damping: (F + damping I) v."""
    dual_lr: float = 1.0
    """Dual step size alpha_lambda for the dual algorithm."""
    init_penalty: float = 1.0
    """Initial lambda (dual) or beta (ppo_kl)."""
    backtrack_coef: float = 0.8
    """trpo line-search shrink factor per step, in (0, 1)."""
    natural_lr: float = 0.1
    """npg fixed step size (only with --npg-fixed-step)."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return self.total_steps // self.batch_size


HPARAM_FIELDS = (
    "learning_rate",
    "gamma",
    "gae_lambda",
    "clip_eps",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "reward_scale",
    "max_kl",
    "damping",
    "dual_lr",
    "init_penalty",
    "backtrack_coef",
    "natural_lr",
)


@flax.struct.dataclass
class HParams:
    """Traced hyperparameters: each a float32 scalar (or a [runs] vector under vmap)."""

    learning_rate: jnp.ndarray
    gamma: jnp.ndarray
    gae_lambda: jnp.ndarray
    clip_eps: jnp.ndarray
    ent_coef: jnp.ndarray
    vf_coef: jnp.ndarray
    max_grad_norm: jnp.ndarray
    reward_scale: jnp.ndarray
    max_kl: jnp.ndarray
    damping: jnp.ndarray
    dual_lr: jnp.ndarray
    init_penalty: jnp.ndarray
    backtrack_coef: jnp.ndarray
    natural_lr: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class StaticConfig:
    """What shapes the compiled program: hashable, so compiled functions can be cached."""

    algo: str
    env: str
    backend: str
    num_envs: int
    num_steps: int
    num_iterations: int
    update_epochs: int
    num_minibatches: int
    hidden: tuple[int, ...]
    activation: str
    normalize_obs: bool
    anneal_lr: bool
    log_every: int
    cg_iters: int
    linesearch_steps: int
    fvp_fraction: float
    anneal_kl: bool
    npg_fixed_step: bool


def _fail(field: str, value: object, allowed: str) -> None:
    raise ConfigError(f"invalid {field}={value!r}: {allowed}")


@dataclasses.dataclass(frozen=True)
class TrainConfig(ConfigFields):
    """A validated training configuration. Bad values raise `ConfigError` (one line)."""

    def __post_init__(self) -> None:
        validate(self)

    def static(self) -> StaticConfig:
        return StaticConfig(
            algo=self.algo,
            env=self.env,
            backend=self.backend,
            num_envs=self.num_envs,
            num_steps=self.num_steps,
            num_iterations=self.num_iterations,
            update_epochs=self.update_epochs,
            num_minibatches=self.num_minibatches,
            hidden=tuple(self.hidden),
            activation=self.activation,
            normalize_obs=self.normalize_obs,
            anneal_lr=self.anneal_lr,
            log_every=self.log_every,
            cg_iters=self.cg_iters,
            linesearch_steps=self.linesearch_steps,
            fvp_fraction=float(self.fvp_fraction),
            anneal_kl=self.anneal_kl,
            npg_fixed_step=self.npg_fixed_step,
        )

    def hparams(self) -> HParams:
        return HParams(**{f: jnp.float32(getattr(self, f)) for f in HPARAM_FIELDS})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"invalid config keys {unknown}: allowed keys are {sorted(known)}")
        d = dict(d)
        if "hidden" in d:
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)


def validate(c: ConfigFields) -> None:
    """Raise ConfigError naming the first bad field. Cheap: builds no env, compiles nothing."""
    from vecpg.envs.registry import env_names, split_env_name

    if c.algo not in ALGOS:
        _fail("algo", c.algo, f"allowed: {', '.join(ALGOS)}")
    try:
        split_env_name(c.env)
    except KeyError:
        _fail("env", c.env, f"allowed: {', '.join(env_names())}")
    if c.backend not in BACKENDS:
        _fail("backend", c.backend, f"allowed: {', '.join(BACKENDS)}")
    if c.activation not in ACTIVATIONS:
        _fail("activation", c.activation, f"allowed: {', '.join(ACTIVATIONS)}")
    ints = ("num_envs", "num_steps", "update_epochs", "num_minibatches", "log_every")
    for name in (*ints, "cg_iters", "linesearch_steps"):
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            _fail(name, v, "must be an integer >= 1")
    if not c.hidden or any((not isinstance(h, int)) or h < 1 for h in c.hidden):
        _fail("hidden", c.hidden, "must be a non-empty list of integers >= 1")
    if c.batch_size % c.num_minibatches:
        _fail(
            "num_minibatches",
            c.num_minibatches,
            f"must divide the batch num_envs*num_steps={c.batch_size}",
        )
    if c.total_steps < c.batch_size:
        _fail("total_steps", c.total_steps, f"must be >= num_envs*num_steps={c.batch_size}")
    for name in (
        "learning_rate",
        "max_grad_norm",
        "reward_scale",
        "max_kl",
        "dual_lr",
        "natural_lr",
    ):
        if not float(getattr(c, name)) > 0:
            _fail(name, getattr(c, name), "must be > 0")
    for name in ("ent_coef", "vf_coef", "damping", "init_penalty", "clip_eps"):
        if not float(getattr(c, name)) >= 0:
            _fail(name, getattr(c, name), "must be >= 0")
    if not 0.0 < float(c.gamma) <= 1.0:
        _fail("gamma", c.gamma, "must be in (0, 1]")
    if not 0.0 <= float(c.gae_lambda) <= 1.0:
        _fail("gae_lambda", c.gae_lambda, "must be in [0, 1]")
    if not 0.0 < float(c.backtrack_coef) < 1.0:
        _fail("backtrack_coef", c.backtrack_coef, "must be in (0, 1)")
    if not 0.0 < float(c.fvp_fraction) <= 1.0:
        _fail("fvp_fraction", c.fvp_fraction, "must be in (0, 1]")
