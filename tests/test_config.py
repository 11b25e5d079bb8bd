"""Each config field is declared once; everything else is derived from that declaration.
These tests would fail if a field were added in one place but not reached in another."""

import dataclasses

import pytest

import vecpg
from vecpg import algos
from vecpg.cli import SweepCommand, TrainCommand, config_from
from vecpg.config import (
    HPARAM_FIELDS,
    STATIC_FIELDS,
    HParams,
    StaticConfig,
    StaticFields,
    TracedFields,
    TrainConfig,
    bound_of,
)


def names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_halves_partition_the_config():
    assert names(StaticConfig) == names(StaticFields) == list(STATIC_FIELDS)
    assert names(HParams) == names(TracedFields) == list(HPARAM_FIELDS)
    assert set(STATIC_FIELDS).isdisjoint(HPARAM_FIELDS)
    assert names(TrainConfig) == [*STATIC_FIELDS, *HPARAM_FIELDS]


def test_every_field_has_a_bound_and_the_cli_carries_it():
    for f in dataclasses.fields(TrainConfig):
        assert bound_of(f) is not None, f.name
    for command in (TrainCommand, SweepCommand):
        flags = names(command)
        assert flags[: len(names(TrainConfig))] == names(TrainConfig)  # config flags first
    cfg = config_from(TrainCommand(algo="trpo", max_kl=0.02, hidden=(8,)))
    assert cfg == TrainConfig(algo="trpo", max_kl=0.02, hidden=(8,))


def test_static_and_traced_halves_round_trip():
    cfg = TrainConfig(algo="npg", num_envs=4, num_steps=16, learning_rate=1e-3, gamma=0.9)
    static, hp = cfg.static(), cfg.hparams()
    assert static.batch_size == 64 and static.num_iterations == cfg.total_steps // 64
    assert hash(static) == hash(TrainConfig(algo="npg", num_envs=4, num_steps=16).static())
    assert float(hp.learning_rate) == pytest.approx(1e-3) and float(hp.gamma) == pytest.approx(0.9)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


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
        ("normalize_obs", "no", "invalid normalize_obs='no': must be true or false"),
        ("learning_rate", float("inf"), "invalid learning_rate=inf: must be a finite number > 0"),
        ("damping", -1.0, "invalid damping=-1.0: must be a finite number >= 0"),
        ("backtrack_coef", 1.0, r"invalid backtrack_coef=1.0: must be in \(0, 1\)"),
        ("fvp_fraction", 0.0, r"invalid fvp_fraction=0.0: must be in \(0, 1\]"),
        ("hidden", (), r"invalid hidden=\(\): must be a non-empty list of integers >= 1"),
        ("activation", "sigmoid", "invalid activation='sigmoid': allowed: tanh, relu"),
        ("env", "brax/nope", "invalid env='brax/nope': allowed: "),
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
