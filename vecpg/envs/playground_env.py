"""Adapter for MuJoCo Playground (`pip install 'vecpg[playground]'`).

The 25 DM Control suite tasks load offline (their XML ships in the package). Locomotion
and manipulation tasks need the MuJoCo Menagerie robot assets, which Playground clones
with git on first use; offline, vecpg says so in one line and reads them from
$VECPG_MENAGERIE_PATH when set. Playground's raw env is used, without its training
wrappers: vecpg applies the time limit (`episode_length`, kept apart from termination),
auto-reset and episode statistics itself. `done` of a DM Control task is true only for a
non-finite physics state, so episodes end by the time limit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vecpg.envs.protocol import EnvSpec, EnvStep
from vecpg.errors import ConfigError

MENAGERIE_ENV = "VECPG_MENAGERIE_PATH"
IMPLS = ("jax", "warp")  # pure MJX, or MuJoCo Warp (LLVM kernels on CPU)
WARP_UNSUPPORTED = (
    "invalid playground_impl='warp': MJX-Warp (playground 0.2, mujoco-mjx 3.17) keeps its "
    "state objects in a global cache, so vecpg's in-jit auto-reset (a select between states "
    "under vmap) leaks a tracer; use --playground-impl jax (also the faster one on CPU)"
)


def require_playground(name: str) -> None:
    if importlib.util.find_spec("mujoco_playground") is None:
        raise ConfigError(
            f"invalid env={name!r}: MuJoCo Playground is not installed "
            "(pip install 'vecpg[playground]')"
        )


def link_menagerie(name: str) -> None:
    """Make Playground find the Menagerie assets offline, or fail in one line."""
    from mujoco_playground._src import mjx_env

    target = Path(str(mjx_env.MENAGERIE_PATH))
    if target.exists():
        return
    given = os.environ.get(MENAGERIE_ENV)
    if given and not Path(given).is_dir():
        what = "is a file, not a directory" if Path(given).exists() else "no such directory"
        raise ConfigError(
            f"invalid {MENAGERIE_ENV}={given!r}: {what}; set it to a clone of "
            f"https://github.com/google-deepmind/mujoco_menagerie (at commit "
            f"{mjx_env.MENAGERIE_COMMIT_SHA[:12]}), needed by env={name!r}"
        )
    if given and not (Path(given) / "unitree_go1").exists():
        raise ConfigError(
            f"invalid {MENAGERIE_ENV}={given!r}: not a MuJoCo Menagerie clone (it has no "
            f"unitree_go1/); clone https://github.com/google-deepmind/mujoco_menagerie at "
            f"commit {mjx_env.MENAGERIE_COMMIT_SHA[:12]} there, needed by env={name!r}"
        )
    if given:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(Path(given).resolve(), target_is_directory=True)
        return
    raise ConfigError(
        f"invalid env={name!r}: it needs the MuJoCo Menagerie robot assets, which Playground "
        "clones with git on first use (no network here); clone "
        f"https://github.com/google-deepmind/mujoco_menagerie at commit "
        f"{mjx_env.MENAGERIE_COMMIT_SHA[:12]} and set {MENAGERIE_ENV} to its path"
    )


GL_LIBRARY = {"osmesa": "OSMesa", "egl": "EGL", "glx": "GL", "glfw": "glfw"}


def import_mujoco() -> None:
    """Import MuJoCo, which picks its OpenGL backend from MUJOCO_GL when imported (by
    brax and Playground alike): a value unusable here fails deep inside PyOpenGL, so say
    it in one line naming MUJOCO_GL. Training and eval draw nothing and need no GL."""
    try:
        import mujoco  # noqa: F401
    except Exception as e:
        gl = os.environ.get("MUJOCO_GL")
        if gl is None or isinstance(e, ModuleNotFoundError) and e.name == "mujoco":
            raise
        raise ConfigError(mujoco_gl_message(gl, e)) from None


def mujoco_gl_message(gl: str, error: BaseException) -> str:
    """`invalid MUJOCO_GL=...`: why MuJoCo refused it and what works on this machine."""
    import ctypes.util
    import platform

    known = {"Darwin": ("glfw", "cgl"), "Windows": ("glfw", "wgl")}
    valid = known.get(platform.system(), ("glfw", "egl", "osmesa", "glx"))

    def has(backend: str) -> bool:
        return bool(ctypes.util.find_library(GL_LIBRARY.get(backend, backend)))

    value = gl.lower().strip()
    if value not in valid:
        why = f"MuJoCo takes {', '.join(valid)} or disabled"
    else:
        missing = "" if has(value) else f"; lib{GL_LIBRARY.get(value, value)} is not installed"
        why = f"MuJoCo cannot load this OpenGL backend ({type(error).__name__}{missing})"
    found = [b for b in ("egl", "osmesa") if has(b)]
    render = (
        f"to render, MUJOCO_GL={' or '.join(found)} has its library here"
        if found
        else "rendering needs egl (libEGL with a GPU driver) or osmesa (libOSMesa)"
    )
    return (
        f"invalid MUJOCO_GL={gl!r}: {why}; unset it to train and eval (they draw nothing); {render}"
    )


class PlaygroundEnv:
    """Wraps `mujoco_playground.registry.load(name, config_overrides={"impl": impl})`."""

    render_suffix = ".gif"  # what `render` writes

    def __init__(self, name: str, impl: str, dm_control: bool):
        full = f"playground/{name}"
        require_playground(full)
        if impl == "warp":
            raise ConfigError(WARP_UNSUPPORTED)
        with contextlib.redirect_stdout(io.StringIO()):  # its import prints notices
            from mujoco_playground import registry
        if not dm_control:
            link_menagerie(full)
        self._env = registry.load(name, config_overrides={"impl": impl})
        obs_size = self._env.observation_size
        if not isinstance(obs_size, int):
            raise ConfigError(
                f"invalid env={full!r}: its observation is a dict {dict(obs_size)}; vecpg's "
                "networks take one array (DM Control tasks have one)"
            )
        self.spec = EnvSpec(
            name=full,
            obs_shape=(obs_size,),
            discrete=False,
            num_actions=int(self._env.action_size),
            action_low=-1.0,
            action_high=1.0,
            max_episode_steps=int(self._env._config.episode_length),
        )
        self.impl = impl

    def reset(self, key: jax.Array) -> EnvStep:
        s = self._env.reset(key)
        obs = jnp.asarray(s.obs, jnp.float32)
        return EnvStep(state=s, obs=obs, reward=jnp.float32(0.0), terminated=jnp.bool_(False))

    def step(self, state: Any, action: jax.Array) -> EnvStep:
        s = self._env.step(state, action)
        return EnvStep(
            state=s,
            obs=jnp.asarray(s.obs, jnp.float32),
            reward=jnp.asarray(s.reward, jnp.float32),
            terminated=s.done > 0.5,
        )

    def render(self, states: list, out: Path) -> None:
        """A GIF of `states` (one per step) drawn by MuJoCo's renderer; needs an OpenGL
        backend (MUJOCO_GL=egl on a GPU machine, osmesa for software rendering)."""
        from PIL import Image

        try:
            with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # GLFW warns before it fails without a display
                frames = self._env.render(states, height=240, width=320)
        except Exception as e:  # no GL context: mujoco raises from its C layer
            gl = os.environ.get("MUJOCO_GL", "unset")
            raise ConfigError(
                f"invalid env={self.spec.name!r}: MuJoCo could not open an OpenGL context "
                f"(MUJOCO_GL={gl}: {type(e).__name__}); set MUJOCO_GL=egl (GPU) or osmesa"
            ) from None
        images = [Image.fromarray(np.asarray(f)) for f in frames]
        ms = max(int(1000 * float(self._env.dt)), 20)
        images[0].save(out, save_all=True, append_images=images[1:], duration=ms, loop=0)
