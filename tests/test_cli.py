"""CLI commands other than train's errors: envs listing and the bench smoke test."""

import json
import subprocess
import sys

import numpy as np

from tests.conftest import FAST_COMPILE
from vecpg.cli import main


def test_envs_lists_spaces(capsys):
    assert main(["envs", "--source", "gymnax"]) == 0
    out = capsys.readouterr().out
    assert "gymnax/CartPole-v1" in out and "Discrete(2)" in out
    assert "gymnax/Pendulum-v1" in out and "Box(-2, 2, (1,))" in out
    assert "brax/" not in out


def test_envs_refuses_an_unknown_backend_or_physics(capsys):
    assert main(["envs", "--backend", "bogus"]) == 2
    assert capsys.readouterr().err == (
        "vecpg: error: invalid backend='bogus': allowed: generalized, positional, spring, mjx\n"
    )
    assert main(["envs", "--playground-impl", "mujoco"]) == 2
    assert "invalid playground_impl='mujoco': allowed: jax, warp" in capsys.readouterr().err


def test_a_closed_pipe_ends_the_help_quietly():
    """`vecpg train --help | head`: the reader leaves before vecpg writes; no traceback,
    exit 1 (as rich's tables, `vecpg envs | head`, already did)."""
    cmd = [sys.executable, "-m", "vecpg.cli", "train", "--help"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the first line: importing vecpg takes a second
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == "", err


def test_bench_quick_writes_positive_finite_numbers(tmp_path, capsys):
    assert main(["bench", "--quick", *FAST_COMPILE, "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "bench.json").read_text())
    assert r["machine"].startswith(("CPU", "GPU"))
    assert set(r["ceiling"]) == {"compile_s", "env_steps_per_s"}
    assert set(r["trust_region_cost"]) == {"pg_s", "fvp_s", "cg_s", "fvp_over_pg", "cg_over_pg"}
    assert set(r["iteration"]) == set(r["over_ceiling"]) == {"ppo", "trpo"}
    for algo in ("ppo", "trpo"):
        assert set(r["iteration"][algo]) == {"compile_s", "iteration_s", "env_steps_per_s"}
    assert [row["seeds"] for row in r["seeds_scaling"]] == [1, 4]
    for algo in ("ppo", "trpo"):
        assert set(r["phases"][algo]) == {"rollout_s", "batch_gae_s", "update_s"}
        assert all(v > 0 for v in r["phases"][algo].values())
    for row in r["seeds_scaling"]:
        assert {"compile_s", "env_steps_per_s", "xla_memory_bytes", "over_one_seed"} <= set(row)
    assert [o["log_every"] for o in r["logging_overhead"]] == [10, 1]
    nums = [*r["trust_region_cost"].values(), r["trpo_over_ppo_iteration"]]
    nums += [v for d in r["iteration"].values() for v in d.values()]
    nums += [*r["ceiling"].values(), *r["over_ceiling"].values()]
    nums += [row[k] for row in r["seeds_scaling"] for k in ("compile_s", "env_steps_per_s")]
    nums += [row["xla_memory_bytes"] for row in r["seeds_scaling"]]
    nums += [o[k] for o in r["logging_overhead"] for k in o if k.endswith("_s")]
    assert all(np.isfinite(x) and x > 0 for x in nums)
    md = (tmp_path / "bench.md").read_text()
    assert "one TRPO iteration" in md and "raw env ceiling" in md and "Seeds scaling" in md


def test_bench_gpu_preset_and_a_report_cut_short():
    """`--preset gpu` sets the issue's GPU table; a run killed after its first section
    still renders (bench.json is written after every section)."""
    from vecpg.bench import report
    from vecpg.bench.plan import BenchPlan

    plan = BenchPlan(preset="gpu", out="x").resolved()
    assert (plan.env, plan.backend, plan.num_envs, plan.num_steps) == (
        "brax/hopper",
        "positional",
        2048,
        32,
    )
    assert (plan.update_epochs, plan.num_minibatches, plan.many_seeds) == (4, 4, 1024)
    assert plan.scaling_seeds == (1, 16, 64, 256) and plan.out == "x" and not plan.detail
    settings = {"env": "brax/hopper", "backend": "positional", "num_envs": 2048,
                "num_steps": 32, "batch": 65536, "update_epochs": 4, "num_minibatches": 4,
                "hidden": [64, 64], "cg_iters": 10, "repeats": 3, "iterations": 10}  # fmt: skip
    first = {"compile_s": 1.0, "env_steps_per_s": 100.0, "iteration_s": 2.0}
    cut = {"machine": "GPU: X", "jax": "0", "settings": settings,
           "ceiling": {"compile_s": 1.0, "env_steps_per_s": 200.0},
           "iteration": {"ppo": first, "trpo": first}, "over_ceiling": {"ppo": 0.5, "trpo": 0.5},
           "trpo_over_ppo_iteration": 1.0}  # fmt: skip
    md = report.to_markdown(cut)
    assert "update-to-data ratio 16 gradient steps per batch" in md
    assert "| vecpg ppo (rollout + GAE + update) | 1.0 | 100 | 0.50x |" in md


def test_brax_device_put_replicated_shim_is_scoped():
    import jax
    import jax.numpy as jnp

    from vecpg.bench.peers import device_put_replicated_shim

    had = hasattr(jax, "device_put_replicated")
    with device_put_replicated_shim():
        out = jax.device_put_replicated({"w": jnp.arange(3.0)}, jax.devices())
        assert out["w"].shape == (jax.device_count(), 3)
        np.testing.assert_array_equal(out["w"][-1], [0.0, 1.0, 2.0])
        assert len(out["w"].sharding.device_set) == jax.device_count()
    assert hasattr(jax, "device_put_replicated") == had  # bench-only: gone afterwards
