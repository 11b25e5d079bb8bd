"""Every training setting, declared once.

Each field is declared exactly once, with its type, default, bound and help (the
docstring under it, which is also its CLI help), in one of two classes:

- `StaticFields`: shapes, counts and names. Changing one changes the compiled program.
- `TracedFields`: floats that become traced leaves, so seeds x grid points can be vmapped.

Everything else is derived from those two declarations:

- `StaticConfig(StaticFields)`: hashable, the key of every compiled-function cache.
- `HParams(TracedFields)`: the traced pytree (float32 scalars, or [R] under vmap).
- `TrainConfig(TracedFields, StaticFields)`: what users write; validated on creation,
  and the CLI's `train`/`sweep` flags.
- `HPARAM_FIELDS`: the sweepable names.
- `validate`: each field's bound, then the checks across fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import flax.struct
import jax.numpy as jnp

from vecpg.algos import REGISTRY as ALGORITHMS
from vecpg.envs.registry import check_mask_obs, parse_indices, split_env_name, unknown_env_message
from vecpg.errors import ConfigError
from vecpg.models.recurrent import MEMORIES

if TYPE_CHECKING:
    import jax

    from vecpg.training.pbt import PBTSpec

    # A traced field is a float where users write it and a jax array inside the program.
    Scalar = float | jax.Array
else:
    Scalar = float  # what the CLI (tyro) parses

BACKENDS = ("generalized", "positional", "spring", "mjx")
PLAYGROUND_IMPLS = ("jax", "warp")
ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "swish")
TORSOS = ("auto", "mlp", "cnn")


def fail(field: str, value: object, allowed: str) -> None:
    """Raise the one-line error for `field`; `allowed` says what it may be."""
    raise ConfigError(f"invalid {field}={value!r}: {allowed}")


# --- bounds: each checks one value and fails with a one-line message -------------------
# The widest layer or recurrent core: a million units already needs terabytes of
# parameters, and JAX indexes an array's sides in int32 (wider ones overflowed)
MAX_WIDTH = 2**20


@dataclasses.dataclass(frozen=True)
class Integer:
    """An int (never a bool or a float) >= `low` (and <= `high` when given)."""

    low: int = 1
    high: int | None = None

    def check(self, name: str, value: Any) -> None:
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < self.low
            or (self.high is not None and value > self.high)
        ):
            fail(name, value, self.allowed())

    def allowed(self) -> str:
        if self.high is None:
            return f"must be an integer >= {self.low}"
        return f"must be an integer from {self.low} to {self.high}"


@dataclasses.dataclass(frozen=True)
class Real:
    """A finite number in the interval from `low` to `high` (open ends where marked)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if self.high == math.inf:
            return f"must be a finite number {'>' if self.low_open else '>='} {self.low:g}"
        lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"must be in {lo}{self.low:g}, {self.high:g}{hi}"

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            fail(name, value, self.describe())
        v = float(value)
        ok = math.isfinite(v) and (v > self.low if self.low_open else v >= self.low)
        ok = ok and (v < self.high if self.high_open else v <= self.high)
        if not ok:
            fail(name, value, self.describe())


@dataclasses.dataclass(frozen=True)
class Flag:
    """True or False."""

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, bool):
            fail(name, value, "must be true or false")


@dataclasses.dataclass(frozen=True)
class OneOf:
    """One of the names `choices()` gives (a function, so registries stay the source)."""

    choices: Callable[[], Sequence[str]]

    def check(self, name: str, value: Any) -> None:
        if value not in self.choices():
            fail(name, value, f"allowed: {', '.join(self.choices())}")


@dataclasses.dataclass(frozen=True)
class EnvName:
    """`brax/<name>`, `gymnax/<id>`, `playground/<Name>` or `tabular/<name>` from the env
    registry."""

    def check(self, name: str, value: Any) -> None:
        try:
            split_env_name(value)
        except (KeyError, AttributeError):
            fail(name, value, unknown_env_message(value))


@dataclasses.dataclass(frozen=True)
class LayerSizes:
    """A non-empty sequence of integers from 1 to MAX_WIDTH."""

    def check(self, name: str, value: Any) -> None:
        if (
            isinstance(value, (str, bytes))
            or not isinstance(value, Sequence)
            or not value
            or any(
                not isinstance(h, int) or isinstance(h, bool) or not 1 <= h <= MAX_WIDTH
                for h in value
            )
        ):
            fail(name, value, f"must be a non-empty list of integers from 1 to {MAX_WIDTH}")


@dataclasses.dataclass(frozen=True)
class ObsIndices:
    """Comma-separated distinct integers >= 0 ("1,3"), or empty; `check_mask_obs` checks
    them against the env's observation size."""

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, str):
            fail(name, value, "must be comma-separated observation indices such as '1,3'")
        try:
            parse_indices(value)
        except ValueError:
            fail(name, value, "must be comma-separated distinct integers >= 0 such as '1,3'")


Bound = Integer | Real | Flag | OneOf | EnvName | LayerSizes | ObsIndices


def setting(default: Any, bound: Bound) -> Any:
    """A dataclass field with its bound in the metadata (the help is its docstring)."""
    return dataclasses.field(default=default, metadata={"bound": bound})


def bound_of(field: dataclasses.Field) -> Bound:
    return field.metadata["bound"]


# --- the declarations --------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StaticFields:
    """Settings that shape the compiled program (changing one recompiles)."""

    algo: str = setting("ppo", OneOf(lambda: tuple(ALGORITHMS)))
    """Algorithm: a2c | ppo | ppo_kl | dual | npg | trpo (README gives each equation)."""
    env: str = setting("gymnax/CartPole-v1", EnvName())
    """Environment: brax/<name>, gymnax/<id> or playground/<Name> (`vecpg envs` lists them)."""
    backend: str = setting("generalized", OneOf(lambda: BACKENDS))
    """Brax physics backend: generalized | positional | spring | mjx (brax envs only)."""
    playground_impl: str = setting("jax", OneOf(lambda: PLAYGROUND_IMPLS))
    """MuJoCo Playground physics: jax (pure MJX) | warp (MuJoCo Warp). jax measured 4-22x
    faster on CPU (README); playground envs only."""
    num_envs: int = setting(8, Integer(1))
    """Parallel environments per seed."""
    num_steps: int = setting(128, Integer(1))
    """Rollout length per iteration; batch = num_envs * num_steps."""
    total_steps: int = setting(500_000, Integer(1))
    """Env steps per seed; iterations = total_steps // batch."""
    update_epochs: int = setting(4, Integer(1))
    """Passes over the batch per iteration (ppo, ppo_kl, dual; critic epochs for npg/trpo)."""
    num_minibatches: int = setting(4, Integer(1))
    """Minibatches per epoch; must divide num_envs * num_steps."""
    hidden: tuple[int, ...] = setting((64, 64), LayerSizes())
    """Hidden layer sizes, shared by actor and critic (separate networks)."""
    activation: str = setting("tanh", OneOf(lambda: ACTIVATIONS))
    """Hidden activation: tanh | relu | elu | gelu | swish."""
    torso: str = setting("auto", OneOf(lambda: TORSOS))
    """What reads the observation before the hidden layers: cnn (the MinAtar paper's 3x3
    conv with 16 channels and a 128-unit dense layer, ReLU; needs [H, W, C] observations),
    mlp (observations of any rank flattened) or auto (cnn for [H, W, C], else mlp)."""
    memory: str = setting("none", OneOf(lambda: MEMORIES))
    """A recurrent core after the torso of actor and critic (separate cores): gru | lstm
    (flax's cells), or none. Its state is carried through the rollout, reset where an
    episode starts, and whole env sequences are replayed in the update."""
    memory_size: int = setting(128, Integer(1, MAX_WIDTH))
    """Units of the recurrent core (with --memory gru or lstm)."""
    mask_obs: str = setting("", ObsIndices())
    """Observation entries to zero, as comma-separated indices into the flattened
    observation ("1,3": CartPole without its velocities), for training, eval, render and
    load_policy: a partially observed version of any env. Empty: none."""
    normalize_obs: bool = setting(True, Flag())
    """Running mean/var observation normalisation, updated in-graph, saved with params."""
    anneal_lr: bool = setting(False, Flag())
    """Linearly anneal the learning rate to 0 over training (off by default since 0.3:
    at short budgets it cost ppo most of its learning; experiments/results/parity_brax*)."""
    cpu_fast_math: bool = setting(True, Flag())
    """XLA CPU may reassociate float ops and fuse them into FMAs (NaN/inf, division and
    exp/log/tanh keep IEEE semantics): brax hopper (positional) steps 1.3x faster,
    inverted_pendulum (generalized) no faster (BENCHMARKS.md); results change in the
    last bits. No effect on GPU."""
    cpu_opt_level: int = setting(1, Integer(0, 3))
    """LLVM optimisation level of XLA CPU's code generation, 0-3 (XLA's default is 2):
    at 1, brax hopper's env step program compiled in 10.0 s against 16.2 s, its whole
    training program 4-20% faster in two measurements and CartPole's 12%, with the same
    env steps/s (BENCHMARKS.md); 0 compiles faster still but ran hopper 8x slower.
    Results change in the last bits. No effect on GPU."""
    cpu_fusion_emitters: bool = setting(True, Flag())
    """XLA CPU's MLIR fusion emitters (XLA's default); off (--no-cpu-fusion-emitters),
    its LLVM IR emitters, which compile vecpg's programs 30-40% faster and run them
    slower (elementwise code 4-8x slower per element): brax hopper (positional) compiled
    in 19.8 s against 27.7 s and ran 4% slower, inverted_pendulum (generalized) 10.9 s
    against 17.3 s and 7-50% slower in two measurements, the CartPole demo 7.2-8.6 s
    against 10.9-12.0 s but 1.6x slower (BENCHMARKS.md). For short runs and many cells.
    Results change in the last bits. No effect on GPU."""
    gpu_autotune: bool = setting(False, Flag())
    """XLA's GEMM/fusion autotuning on GPU: off by default (H100: compiles 10-19% shorter,
    env steps/s unchanged; kernels no longer chosen by timing). No effect on CPU."""
    log_every: int = setting(10, Integer(1))
    """Progress and W&B get metrics every this many iterations (never changes results)."""
    cg_iters: int = setting(10, Integer(1))
    """Conjugate-gradient iterations for the natural direction (npg, trpo)."""
    linesearch_steps: int = setting(10, Integer(1))
    """Backtracking steps tried by trpo."""
    fvp_fraction: float = setting(1.0, Real(0.0, 1.0, low_open=True))
    """Fraction of the batch used for Fisher-vector products (TRPO paper: 0.1)."""
    anneal_kl: bool = setting(False, Flag())
    """npg/trpo: anneal the KL budget max_kl linearly to 0 over training."""
    npg_fixed_step: bool = setting(False, Flag())
    """npg: step natural_lr * F^-1 g instead of the KL-normalised sqrt(2 max_kl / gFg)."""

    @property
    def batch_size(self) -> int:
        """Env steps per iteration and seed: num_envs * num_steps."""
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return self.total_steps // self.batch_size


POSITIVE = Real(0.0, low_open=True)
NON_NEGATIVE = Real(0.0)


@dataclasses.dataclass(frozen=True)
class TracedFields:
    """Hyperparameters that are traced leaves: a sweep vmaps over them in one program."""

    learning_rate: Scalar = setting(2.5e-4, POSITIVE)
    """Adam learning rate (actor and critic)."""
    gamma: Scalar = setting(0.99, Real(0.0, 1.0, low_open=True))
    """Discount, in (0, 1]."""
    gae_lambda: Scalar = setting(0.95, Real(0.0, 1.0))
    """GAE lambda, in [0, 1]."""
    clip_eps: Scalar = setting(0.2, NON_NEGATIVE)
    """PPO ratio clip."""
    ent_coef: Scalar = setting(0.01, NON_NEGATIVE)
    """Entropy bonus coefficient."""
    vf_coef: Scalar = setting(0.5, NON_NEGATIVE)
    """Value-loss coefficient in the joint loss (a2c, ppo, ppo_kl, dual)."""
    max_grad_norm: Scalar = setting(0.5, POSITIVE)
    """Global gradient-norm clip."""
    reward_scale: Scalar = setting(0.1, POSITIVE)
    """Rewards are multiplied by this before GAE (episode returns are logged unscaled)."""
    max_kl: Scalar = setting(0.01, POSITIVE)
    """The KL budget, one field for three roles: the trust-region radius delta for trpo and
    npg, the constraint epsilon for dual, the target d_targ for ppo_kl."""
    damping: Scalar = setting(0.1, NON_NEGATIVE)
    """Fisher damping: (F + damping I) v."""
    dual_lr: Scalar = setting(1.0, POSITIVE)
    """Dual step size alpha_lambda for the dual algorithm."""
    init_penalty: Scalar = setting(1.0, NON_NEGATIVE)
    """Initial lambda (dual) or beta (ppo_kl)."""
    backtrack_coef: Scalar = setting(0.8, Real(0.0, 1.0, low_open=True, high_open=True))
    """trpo line-search shrink factor per step, in (0, 1)."""
    natural_lr: Scalar = setting(0.1, POSITIVE)
    """npg fixed step size (only with --npg-fixed-step)."""


STATIC_FIELDS = tuple(f.name for f in dataclasses.fields(StaticFields))
HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(TracedFields))  # the sweepable ones


@dataclasses.dataclass(frozen=True)
class StaticConfig(StaticFields):
    """The static half of a `TrainConfig`: hashable, so compiled functions are cached on it.

    `pbt`: population-based training's static half (`vecpg.training.pbt.PBTSpec`), set by
    `vecpg search --pbt` (not a training setting of its own: None everywhere else)."""

    pbt: PBTSpec | None = None


@flax.struct.dataclass  # frozen too; mypy does not see it through flax's decorator
class HParams(TracedFields):  # type: ignore[misc]
    """The traced half of a `TrainConfig`: float32 scalars (or [R] vectors under vmap)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig(TracedFields, StaticFields):
    """A validated training configuration. Bad values raise `ConfigError` (one line)."""

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def for_algo(cls, algo: str, **overrides: Any) -> TrainConfig:
        """`algo`'s own defaults (`vecpg.algos.DEFAULTS`; today only a2c differs from the
        shared, PPO-derived ones), then `overrides`. `TrainConfig(algo=...)` itself takes
        the shared defaults as written."""
        from vecpg.algos import DEFAULTS

        return cls(**{"algo": algo, **DEFAULTS.get(algo, {}), **overrides})

    def static(self) -> StaticConfig:
        fields = {name: getattr(self, name) for name in STATIC_FIELDS}
        return StaticConfig(**{**fields, "hidden": tuple(self.hidden)})

    def hparams(self) -> HParams:
        return HParams(**{name: jnp.float32(getattr(self, name)) for name in HPARAM_FIELDS})

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
        if isinstance(d.get("hidden"), list):
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)


def validate(c: TrainConfig) -> None:
    """Raise ConfigError naming the first bad field. Cheap: builds no env, compiles nothing."""
    for f in dataclasses.fields(c):
        bound_of(f).check(f.name, getattr(c, f.name))
    if c.batch_size % c.num_minibatches:
        fail(
            "num_minibatches",
            c.num_minibatches,
            f"must divide the batch num_envs*num_steps={c.batch_size}",
        )
    if c.total_steps < c.batch_size:
        fail("total_steps", c.total_steps, f"must be >= num_envs*num_steps={c.batch_size}")
    from vecpg.algos import FULL_BATCH_STEP  # a2c: one step on the whole batch

    if c.memory != "none" and c.algo not in FULL_BATCH_STEP and c.num_envs % c.num_minibatches:
        fail(
            "num_minibatches",
            c.num_minibatches,
            f"with --memory {c.memory}, minibatches split whole env sequences, so it must "
            f"divide num_envs={c.num_envs}",
        )
    check_mask_obs(c.env, c.mask_obs)
