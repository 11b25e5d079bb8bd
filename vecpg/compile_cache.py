"""JAX's persistent compilation cache, on by default: a program compiled once is read
back from disk the next time the same config runs (in any process), so a re-run
compiles in about a second instead of tens.

The cache lives in `$VECPG_COMPILE_CACHE`, else `$XDG_CACHE_HOME/vecpg/jax`, else
`~/.cache/vecpg/jax`; `VECPG_COMPILE_CACHE=off` turns it off. A cache dir the user gave
JAX (`JAX_COMPILATION_CACHE_DIR` or `jax.config`) is left alone. JAX keys entries by the
program, jax/XLA versions, flags and devices, so a stale entry is never used; it keeps
the newest `MAX_BYTES` and evicts the rest.

JAX never caches an executable that holds a host callback: vecpg's training program
has one only when live progress or W&B is on (`vecpg.training.execute.train_fns`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import jax
from jax._src import config

ENV_VAR = "VECPG_COMPILE_CACHE"
OFF = ("off", "0", "false", "no")
MAX_BYTES = 4 * 2**30
MIN_COMPILE_S = 0.5  # smaller programs compile faster than they load


def cache_dir(environ: dict[str, str] | os._Environ[str]) -> Path | None:
    """Where vecpg puts the cache, or None when it should not set one."""
    chosen = environ.get(ENV_VAR, "").strip()
    if chosen.lower() in OFF:
        return None
    if "JAX_COMPILATION_CACHE_DIR" in environ:
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vecpg" / "jax"


def enable() -> Path | None:
    """Turn the persistent cache on (unless opted out or already set); its dir or None."""
    path = cache_dir(os.environ)
    if path is None or config.compilation_cache_dir.value:  # the user set one in code
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    if importlib.util.find_spec("filelock") is not None:  # JAX needs it to evict
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
