"""Each config field is declared once; everything else is derived from that declaration.
The oracle is a hand-written table of every field and a value for it: these tests fail
if a field were added in one place but not reached in another (static/traced half, the
values they carry, the compile-cache key, the CLI, the saved config)."""

import dataclasses

import jax
import numpy as np
import pytest

import vecpg
from vecpg import algos
from vecpg.cli import SweepCommand, TrainCommand, config_from, parse
from vecpg.config import HPARAM_FIELDS, STATIC_FIELDS, TrainConfig, bound_of

# Every field, with a valid value other than its default, written out by hand in the two
# halves it belongs to: the static ones shape the compiled program, the traced ones are
# float32 leaves a sweep vmaps over. A field added to the config must be added here.
STATIC_VALUES = {
    "algo": "trpo",
    "env": "gymnax/Acrobot-v1",
    "backend": "positional",
    "playground_impl": "warp",
    "num_envs": 4,
    "num_steps": 16,
    "total_steps": 6400,
    "update_epochs": 3,
    "num_minibatches": 2,
    "hidden": (8, 8),
    "activation": "relu",
    "torso": "mlp",
    "memory": "lstm",
    "memory_size": 16,
    "mask_obs": "0,2",
    "normalize_obs": False,
    "anneal_lr": True,
    "cpu_fast_math": False,
    "cpu_opt_level": 3,
    "cpu_fusion_emitters": False,
    "gpu_autotune": True,
    "log_every": 3,
    "cg_iters": 7,
    "linesearch_steps": 5,
    "fvp_fraction": 0.5,
    "anneal_kl": True,
    "npg_fixed_step": True,
}
TRACED_VALUES = {
    "learning_rate": 1e-3,
    "gamma": 0.9,
    "gae_lambda": 0.8,
    "clip_eps": 0.1,
    "ent_coef": 0.02,
    "vf_coef": 0.25,
    "max_grad_norm": 1.0,
    "reward_scale": 0.5,
    "max_kl": 0.02,
    "damping": 0.05,
    "dual_lr": 0.5,
    "init_penalty": 2.0,
    "backtrack_coef": 0.5,
    "natural_lr": 0.2,
}
# the same config as a user types it on the command line
ARGV = (
    "--algo trpo --env gymnax/Acrobot-v1 --backend positional --playground-impl warp "
    "--num-envs 4 --num-steps 16 --total-steps 6400 --update-epochs 3 --num-minibatches 2 "
    "--hidden 8 8 --activation relu --torso mlp --memory lstm --memory-size 16 --mask-obs 0,2 "
    "--no-normalize-obs --anneal-lr "
    "--no-cpu-fast-math --cpu-opt-level 3 --no-cpu-fusion-emitters --gpu-autotune "
    "--log-every 3 --cg-iters 7 "
    "--linesearch-steps 5 --fvp-fraction 0.5 --anneal-kl --npg-fixed-step "
    "--learning-rate 1e-3 --gamma 0.9 --gae-lambda 0.8 --clip-eps 0.1 --ent-coef 0.02 "
    "--vf-coef 0.25 --max-grad-norm 1.0 --reward-scale 0.5 --max-kl 0.02 --damping 0.05 "
    "--dual-lr 0.5 --init-penalty 2.0 --backtrack-coef 0.5 --natural-lr 0.2"
).split()


def test_every_field_is_in_the_half_it_belongs_to_with_its_value():
    assert set(STATIC_FIELDS) == set(STATIC_VALUES)
    assert set(HPARAM_FIELDS) == set(TRACED_VALUES)
    default = TrainConfig()
    for name, value in {**STATIC_VALUES, **TRACED_VALUES}.items():
        assert getattr(default, name) != value, name  # each value below is a change
    cfg = TrainConfig(**STATIC_VALUES, **TRACED_VALUES)
    static, hp = cfg.static(), cfg.hparams()
    for name, value in STATIC_VALUES.items():
        assert getattr(static, name) == value, name
    assert static.batch_size == 64 and static.num_iterations == 100  # 4 x 16; 6400 / 64
    leaves = dict(zip(HPARAM_FIELDS, jax.tree.leaves(hp), strict=True))
    for name, value in TRACED_VALUES.items():
        leaf = leaves[name]
        assert leaf.shape == () and leaf.dtype == np.float32, name
        assert float(leaf) == float(np.float32(value)), name
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_traced_fields_never_recompile_and_static_ones_always_do():
    """The compiled-program caches key on `static()`: changing a traced field leaves it
    equal (same hash), changing any static field does not."""
    base = TrainConfig()
    for name, value in TRACED_VALUES.items():
        changed = dataclasses.replace(base, **{name: value})
        assert changed.static() == base.static(), name
        assert hash(changed.static()) == hash(base.static()), name
    for name, value in STATIC_VALUES.items():
        extra = {"num_minibatches": 2} if name in ("num_envs", "num_steps") else {}
        changed = dataclasses.replace(base, **{name: value, **extra})
        assert changed.static() != base.static(), name
        assert changed.hparams() == base.hparams(), name


def test_the_cli_carries_every_field():
    for command, prog in ((TrainCommand, "vecpg train"), (SweepCommand, "vecpg sweep")):
        cmd = parse(command, ARGV, prog, None)
        assert config_from(cmd) == TrainConfig(**STATIC_VALUES, **TRACED_VALUES), command
    for f in dataclasses.fields(TrainConfig):
        assert bound_of(f) is not None, f.name


def test_algorithm_names_come_from_the_registry():
    for name in algos.REGISTRY:
        assert TrainConfig(algo=name).algo == name
    with pytest.raises(vecpg.ConfigError, match="allowed: " + ", ".join(algos.REGISTRY)):
        TrainConfig(algo="sac")


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("total_steps", 5e4, "invalid total_steps=50000.0: must be an integer >= 1"),
        ("num_envs", True, "invalid num_envs=True: must be an integer >= 1"),
        ("cpu_opt_level", 4, "invalid cpu_opt_level=4: must be an integer from 0 to 3"),
        ("normalize_obs", "no", "invalid normalize_obs='no': must be true or false"),
        ("learning_rate", float("inf"), "invalid learning_rate=inf: must be a finite number > 0"),
        ("damping", -1.0, "invalid damping=-1.0: must be a finite number >= 0"),
        ("backtrack_coef", 1.0, r"invalid backtrack_coef=1.0: must be in \(0, 1\)"),
        ("fvp_fraction", 0.0, r"invalid fvp_fraction=0.0: must be in \(0, 1\]"),
        ("hidden", (), r"invalid hidden=\(\): must be a non-empty list of integers from 1 to"),
        ("hidden", (64, 2**20 + 1), r"invalid hidden=\(64, 1048577\): must be a non-empty list"),
        ("memory_size", 2**31, "invalid memory_size=2147483648: must be an integer from 1 to"),
        ("activation", "sigmoid", "invalid activation='sigmoid': allowed: tanh, relu"),
        ("env", "brax/nope", "invalid env='brax/nope': no such env; did you mean brax/hopper?"),
    ],
)
def test_bounds_reject_with_one_line(field, value, message):
    with pytest.raises(vecpg.ConfigError, match=message) as e:
        TrainConfig(**{field: value})
    assert "\n" not in str(e.value)


def runtime_imports(path) -> set[str]:
    """Modules a file imports at runtime (anywhere but under `if TYPE_CHECKING:`)."""
    import ast

    tree = ast.parse(path.read_text())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_config_import_has_no_cycle():
    """config imports the algorithm and env registries and errors; none of those
    packages imports config back (not even inside a function)."""
    from pathlib import Path

    root = Path(vecpg.__file__).parent
    below = [*root.glob("algos/*.py"), *root.glob("envs/*.py"), *root.glob("models/*.py")]
    assert below and not any(m.startswith("vecpg") for m in runtime_imports(root / "errors.py"))
    offenders = [p.name for p in below if "vecpg.config" in runtime_imports(p)]
    assert offenders == []
