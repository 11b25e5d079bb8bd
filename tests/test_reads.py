"""Which hyperparameters a program reads, and the one-line refusal of a sweep or search
that varies one it never reads."""

import dataclasses

import pytest

import vecpg
from vecpg.algos import REGISTRY
from vecpg.cli import main
from vecpg.training.reads import ALWAYS_READ, hparams_read

TINY = dict(num_envs=4, num_steps=16, total_steps=640, hidden=(8,))


def read_by(algo: str, **fields) -> set[str]:
    cfg = vecpg.TrainConfig.for_algo(algo, **TINY, **fields)
    return hparams_read(cfg.static(), cfg.hparams())


def test_each_algorithm_reads_its_own_fields_and_not_the_others():
    read = {algo: read_by(algo) for algo in REGISTRY}
    for algo, fields in read.items():
        assert ALWAYS_READ <= fields, (algo, ALWAYS_READ - fields)
    assert "clip_eps" in read["ppo"] and "clip_eps" not in read["trpo"] | read["npg"]
    assert {"max_kl", "backtrack_coef", "damping"} <= read["trpo"]
    assert "backtrack_coef" not in read["npg"] | read["ppo"]  # only trpo's line search
    assert {"dual_lr", "init_penalty", "max_kl"} <= read["dual"]
    assert "dual_lr" not in read["ppo_kl"] and "init_penalty" in read["ppo_kl"]
    assert not {"ent_coef", "vf_coef"} & read["trpo"]  # its critic regresses on its own
    assert "natural_lr" not in read["npg"]  # the step is KL-normalised ...
    assert "natural_lr" in read_by("npg", npg_fixed_step=True)  # ... unless fixed


def test_a_sweep_over_a_field_the_algorithm_never_reads_is_one_line(tmp_path, capsys, no_compile):
    out = tmp_path / "s"
    code = main(["sweep", "--algo", "trpo", "--grid", "clip_eps=0.1,0.2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err == (
        "vecpg: error: invalid grid: trpo never reads clip_eps, so every value would train "
        "alike; vary a field it uses\n"
    )
    assert not out.exists()
    config = vecpg.TrainConfig(**TINY)
    with pytest.raises(vecpg.ConfigError, match="invalid space: ppo never reads natural_lr"):
        vecpg.search(config, ["natural_lr=log:1e-3:1e-1"], trials=4, out=tmp_path / "q")
    assert not (tmp_path / "q").exists()
    grid = {"learning_rate": [1e-3, 3e-3], "damping": [0.1, 0.2]}
    with pytest.raises(vecpg.ConfigError, match="invalid grid: ppo never reads damping,"):
        vecpg.sweep(dataclasses.replace(config), grid, seeds=1)
