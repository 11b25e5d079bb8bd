"""Bad input: a one-line error naming the field and what is allowed; exit non-zero;
nothing compiled; nothing written."""

import subprocess
import sys

import pytest

import vecpg
import vecpg.training.execute
from vecpg.cli import main

CASES = [
    (
        ["--env", "gymnax/CartPol-v1"],
        "invalid env='gymnax/CartPol-v1': no such env; did you mean gymnax/CartPole-v1?",
        "`vecpg envs --source gymnax` lists them",
    ),
    (["--algo", "sac"], "invalid algo='sac': allowed: ", "ppo"),
    (["--num-minibatches", "3"], "invalid num_minibatches=3: must divide", "1024"),
    (["--learning-rate", "0"], "invalid learning_rate=0.0: must be a finite number > 0", ""),
    (["--learning-rate", "-1e-3"], "invalid learning_rate=-0.001: must be a finite number > 0", ""),
    (["--learning-rate", "inf"], "invalid learning_rate=inf: must be a finite number > 0", ""),
    (["--max-kl", "nan"], "invalid max_kl=nan: must be a finite number > 0", ""),
    (["--gamma", "1.5"], "invalid gamma=1.5: must be in (0, 1]", ""),
    (["--gamma", "0"], "invalid gamma=0.0: must be in (0, 1]", ""),
    (["--backend", "physx"], "invalid backend='physx': allowed: ", "spring"),
]


@pytest.mark.parametrize("args,message,allowed", CASES)
def test_bad_config_is_one_line_and_compiles_nothing(
    args, message, allowed, tmp_path, capsys, no_compile
):
    out = tmp_path / "run"
    code = main(["train", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("vecpg: error: " + message)
    assert allowed in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_existing_nonempty_out_needs_overwrite(tmp_path, capsys, no_compile):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code = main(["train", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "invalid out=" in err and "--overwrite" in err and err.count("\n") == 1
    assert (out / "keep.txt").read_text() == "precious"


def test_api_raises_config_error():
    with pytest.raises(vecpg.ConfigError, match=r"invalid gae_lambda=1.5: must be in \[0, 1\]"):
        vecpg.TrainConfig(gae_lambda=1.5)
    with pytest.raises(vecpg.ConfigError, match="invalid seeds=0"):
        vecpg.train(vecpg.TrainConfig(), seeds=0)


def test_cli_process_exits_nonzero_with_one_line(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "vecpg.cli", "train", "--algo", "nope", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("vecpg:")]
    assert lines == [lines[0]] and "invalid algo='nope'" in lines[0]
    assert not out.exists()
