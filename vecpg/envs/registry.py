"""Env names (`brax/<name>`, `gymnax/<id>`, `playground/<Name>`, `tabular/<name>`) and
construction. Adding a source: an adapter module (see protocol.py), its names here, and
a branch in `make_env`."""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Sequence
from typing import Protocol

import jax

from vecpg.envs.protocol import Env
from vecpg.errors import ConfigError

# Known without importing brax/gymnax (fast validation, no compilation).
BRAX_ENVS = (
    "ant",
    "fast",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_double_pendulum",
    "inverted_pendulum",
    "pusher",
    "reacher",
    "swimmer",
    "walker2d",
)
GYMNAX_ENVS = (
    "CartPole-v1",
    "Acrobot-v1",
    "Pendulum-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "SpaceInvaders-MinAtar",
    "Catch-bsuite",
    "DeepSea-bsuite",
    "MemoryChain-bsuite",
    "UmbrellaChain-bsuite",
    "DiscountingChain-bsuite",
    "FourRooms-misc",
    "MetaMaze-misc",
    "PointRobot-misc",
    "Reacher-misc",
    "Swimmer-misc",
)
TABULAR_ENVS = ("gridworld",)  # 4x4 gridworld of vecpg.tabular, gamma 0.9, 100 steps
# MuJoCo Playground 0.2.0: the DM Control suite loads offline ...
PLAYGROUND_DM_CONTROL = (
    "AcrobotSwingup", "AcrobotSwingupSparse", "BallInCup", "CartpoleBalance",
    "CartpoleBalanceSparse", "CartpoleSwingup", "CartpoleSwingupSparse", "CheetahRun",
    "FingerSpin", "FingerTurnEasy", "FingerTurnHard", "FishSwim", "HopperHop", "HopperStand",
    "HumanoidStand", "HumanoidWalk", "HumanoidRun", "PendulumSwingup", "PointMass",
    "ReacherEasy", "ReacherHard", "SwimmerSwimmer6", "WalkerRun", "WalkerStand", "WalkerWalk",
)  # fmt: skip
# ... locomotion and manipulation need the MuJoCo Menagerie assets (cloned with git).
PLAYGROUND_ROBOTS = (
    "ApolloJoystickFlatTerrain", "BarkourJoystick", "BerkeleyHumanoidJoystickFlatTerrain",
    "BerkeleyHumanoidJoystickRoughTerrain", "G1JoystickFlatTerrain", "G1JoystickRoughTerrain",
    "Go1JoystickFlatTerrain", "Go1JoystickRoughTerrain", "Go1Getup", "Go1Handstand",
    "Go1Footstand", "H1InplaceGaitTracking", "H1JoystickGaitTracking", "Op3Joystick",
    "SpotFlatTerrainJoystick", "SpotGetup", "SpotJoystickGaitTracking", "T1JoystickFlatTerrain",
    "T1JoystickRoughTerrain", "AlohaHandOver", "AlohaSinglePegInsertion", "PandaPickCube",
    "PandaPickCubeOrientation", "PandaPickCubeCartesian", "PandaOpenCabinet",
    "PandaRobotiqPushCube", "LeapCubeReorient", "LeapCubeRotateZAxis", "AeroCubeRotateZAxis",
)  # fmt: skip
_SOURCES = {
    "brax": BRAX_ENVS,
    "gymnax": GYMNAX_ENVS,
    "playground": PLAYGROUND_DM_CONTROL + PLAYGROUND_ROBOTS,
    "tabular": TABULAR_ENVS,
}
SOURCES = tuple(_SOURCES)


def env_names() -> list[str]:
    return [f"{src}/{n}" for src, names in _SOURCES.items() for n in names]


def split_env_name(name: str) -> tuple[str, str]:
    """'brax/hopper' -> ('brax', 'hopper'); KeyError if unknown."""
    src, _, env_id = name.partition("/")
    if src not in _SOURCES or env_id not in _SOURCES[src]:
        raise KeyError(name)
    return src, env_id


def unknown_env_message(name: object) -> str:
    """Why `name` is no env, as the part after `invalid env=<name>: `: the closest names
    of its source and the `vecpg envs` command that lists them (never all ~90 names)."""
    if not isinstance(name, str):
        return "must be a string such as 'gymnax/CartPole-v1' (`vecpg envs` lists them)"
    src, sep, env_id = name.partition("/")
    if sep and src in _SOURCES:
        close = [f"{src}/{n}" for n in closest(env_id, _SOURCES[src])]
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return f"no such env{hint} (`vecpg envs --source {src}` lists them)"
    if name in _SOURCES:
        return f"an env is named {name}/<name> (`vecpg envs --source {name}` lists them)"
    # an unknown source, or none: the closest full names, or names with the closest id
    names = env_names()
    by_id = {n.partition("/")[2]: n for n in names}
    close = closest(name, names) or [by_id[i] for i in closest(env_id or src, list(by_id))]
    what = f"no such env source {src!r}" if sep else "an env is named <source>/<name>"
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"{what} (sources: {', '.join(SOURCES)}){hint} (`vecpg envs` lists them)"


def closest(word: str, names: Sequence[str], n: int = 3) -> list[str]:
    """Up to `n` of `names` nearly as close to `word` as the closest one (ignoring case),
    for a did-you-mean; [] when none is close."""
    ratio = lambda m: difflib.SequenceMatcher(None, word.lower(), m.lower()).ratio()  # noqa: E731
    scored = sorted(((ratio(m), m) for m in names), reverse=True)
    if not scored or scored[0][0] < 0.6:
        return []
    return [m for r, m in scored[:n] if r >= scored[0][0] - 0.1]


def parse_indices(text: str) -> tuple[int, ...]:
    """ "1,3" -> (1, 3); "" -> (). ValueError unless distinct integers >= 0."""
    if not text.strip():
        return ()
    out = tuple(int(part) for part in text.split(","))
    if any(i < 0 for i in out) or len(set(out)) != len(out):
        raise ValueError(text)
    return out


def check_mask_obs(env: str, mask_obs: str) -> None:
    """One line unless every index of `mask_obs` is inside `env`'s flattened observation
    (its recorded spec; an env without one is checked when it is built)."""
    from vecpg.envs.catalog import recorded_specs

    spec = recorded_specs().get(env)
    if spec is not None:
        check_mask_fits(env, mask_obs, spec.obs_shape)


def check_mask_fits(env: str, mask_obs: str, obs_shape: tuple[int, ...]) -> tuple[int, ...]:
    """`mask_obs`'s indices, or one line unless each is inside an observation of
    `obs_shape` (flattened)."""
    indices = parse_indices(mask_obs)
    size = math.prod(obs_shape)
    if indices and max(indices) >= size:
        raise ConfigError(
            f"invalid mask_obs={mask_obs!r}: {env}'s observation has {size} entries "
            f"(indices 0-{size - 1})"
        )
    return indices


class EnvSettings(Protocol):
    """The config fields that choose an env (a TrainConfig or StaticConfig has them)."""

    @property
    def env(self) -> str: ...

    @property
    def backend(self) -> str: ...

    @property
    def playground_impl(self) -> str: ...


def make_env_for(c: EnvSettings) -> Env:
    """The env a config names, with its `mask_obs` (configs from before it: none)."""
    return make_env(c.env, c.backend, c.playground_impl, getattr(c, "mask_obs", ""))


@functools.cache
def make_env(
    name: str, backend: str = "generalized", playground_impl: str = "jax", mask_obs: str = ""
) -> Env:
    """Build the adapter for `name`: `backend` picks brax's physics, `playground_impl`
    Playground's (jax | warp), `mask_obs` ("1,3") zeroes observation entries. Cached:
    loading a physics system takes seconds. Known third-party noise is silenced
    (`vecpg.envs.quiet`)."""
    from vecpg.envs.quiet import third_party_quiet
    from vecpg.envs.wrappers import MaskedObs

    check_mask_obs(name, mask_obs)  # before building, from the recorded spec
    with third_party_quiet():
        env = _build_env(name, backend, playground_impl)
    indices = check_mask_fits(name, mask_obs, env.spec.obs_shape)  # an env not recorded
    return TracedOnce(MaskedObs(env, indices) if indices else env)


class TracedOnce:
    """An adapter whose `reset` and `step` are `jax.jit`-wrapped: inside a bigger program
    JAX traces each once per input shape and reuses the jaxpr (vmap batches the jaxpr,
    a second call hits the cache), instead of re-running the physics' Python under
    every transformation. XLA inlines the calls, so the compiled program is unchanged
    (the golden metrics stayed bit-identical); a trpo chunk lowered after ppo's on the
    same Playground CheetahRun env took 4.2 s instead of 28.5 s
    (experiments/results/compile_breakdown.md). Other attributes are the adapter's."""

    def __init__(self, env: Env):
        self.inner = env
        self.spec = env.spec
        self.reset = jax.jit(env.reset)
        self.step = jax.jit(env.step)

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (a copy or unpickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def _build_env(name: str, backend: str, playground_impl: str) -> Env:
    src, env_id = split_env_name(name)
    if src in ("brax", "playground"):  # MuJoCo reads MUJOCO_GL when imported: one line
        from vecpg.envs.playground_env import import_mujoco

        import_mujoco()
    if src == "playground":
        from vecpg.envs.playground_env import PlaygroundEnv

        return PlaygroundEnv(env_id, playground_impl, env_id in PLAYGROUND_DM_CONTROL)
    if src == "tabular":
        from vecpg.envs.tabular_env import TabularEnv
        from vecpg.tabular.exact import gridworld

        return TabularEnv(gridworld(4, gamma=0.9), name)
    if src == "brax":
        from vecpg.envs.brax_env import BraxEnv

        return BraxEnv(env_id, backend)
    from vecpg.envs.gymnax_env import GymnaxEnv

    return GymnaxEnv(env_id)
