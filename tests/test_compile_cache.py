"""The persistent compilation cache: on by default, where the user's environment says,
and it really holds vecpg's training program (which has no host callback any more, even
with live progress on): a second process loads it instead of compiling."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vecpg.compile_cache import cache_dir

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize(
    ("environ", "want"),
    [
        ({"HOME": "/h"}, "/h/.cache/vecpg/jax"),
        ({"XDG_CACHE_HOME": "/x"}, "/x/vecpg/jax"),
        ({"VECPG_COMPILE_CACHE": "/c"}, "/c"),
        ({"VECPG_COMPILE_CACHE": "off"}, None),  # the opt-out
        ({"VECPG_COMPILE_CACHE": "0"}, None),
        ({"JAX_COMPILATION_CACHE_DIR": "/j"}, None),  # the user's own JAX setting wins
    ],
)
def test_cache_dir(environ, want, monkeypatch):
    monkeypatch.setenv("HOME", environ.get("HOME", "/h"))
    got = cache_dir(environ)
    assert (None if got is None else str(got)) == want


CHILD = r"""
import json, logging, vecpg
hits = []  # names of the programs loaded from the cache


class Hits(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("Persistent compilation cache hit for"):
            hits.append(record.args[0])


log = logging.getLogger("jax._src.compiler")
log.setLevel(logging.DEBUG)
log.addHandler(Hits())
cfg = vecpg.TrainConfig(num_envs=4, num_steps=8, total_steps=4 * 8 * 3, hidden=(8,), log_every=1)
res = vecpg.train(cfg, seeds=2, progress=True)
print(json.dumps({"hits": hits, "compile_s": res.compile_s,
                  "returns": res.metrics["episode_return"].tolist()}))
"""


def test_second_process_loads_the_training_program(tmp_path):
    env = {**os.environ, "VECPG_COMPILE_CACHE": str(tmp_path / "cache")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def child() -> dict:
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = child(), child()
    assert any((tmp_path / "cache").iterdir())
    assert first["hits"] == []
    assert "jit_run_iterations" in second["hits"], second["hits"]  # the training program
    assert second["returns"] == first["returns"]  # the loaded program computes the same
