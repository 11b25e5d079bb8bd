"""One line instead of a traceback, a box or a 4,000-character list: each mistake a user
can make on the command line, driven through the CLI (exit code 2, the one line, what it
names, and the user's files untouched). README: "What vecpg promises when things go
wrong"; tests/test_faults.py holds the rest."""

from __future__ import annotations

import ctypes.util
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vecpg
from tests.conftest import FAST_COMPILE_CONFIG
from tests.test_faults import TINY, one_error_line, small_filesystem, snapshot, vecpg_cli
from vecpg.cli import COMMANDS, main
from vecpg.errors import ConfigError

COMMAND_LIST = "commands: " + ", ".join(COMMANDS)  # train, sweep, ..., eval, render


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("messages") / "run"
    vecpg.train(vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=640, hidden=(8,),
                                  **FAST_COMPILE_CONFIG),
                seeds=2, run_dir=run)  # fmt: skip
    return run


def vecpg_cli_env(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`vecpg_cli` with environment variables set."""
    return subprocess.run([sys.executable, "-m", "vecpg.cli", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def main_error_line(capsys, *args: str) -> str:
    """The one `vecpg: error:` line of `vecpg.cli.main(args)` run in this process (for
    mistakes found before anything is built; the subprocess tests show the real CLI)."""
    from vecpg.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    assert "╭" not in out.out + out.err  # no tyro box
    return one_error_line(subprocess.CompletedProcess(list(args), code, out.out, out.err))


def edited_copy(run: Path, dest: Path, **config) -> Path:
    """A copy of `run` whose config.json has `config` written over it."""
    shutil.copytree(run, dest)
    d = json.loads((dest / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps({**d, **config}))
    return dest


def diverged_copy(run: Path, dest: Path, at: dict[int, int]) -> Path:
    """A copy of `run` whose metrics say seed index i diverged at iteration at[i]."""
    shutil.copytree(run, dest)
    with np.load(dest / "metrics.npz") as z:
        metrics = dict(z)
    flag = np.zeros_like(metrics["episode_return"])
    for i, it in at.items():
        flag[i, it:] = 1
    np.savez(dest / "metrics.npz", **{**metrics, "diverged": flag})
    return dest


# --- 1. seed counts ----------------------------------------------------------------------
def test_seed_counts_that_cannot_be_keys_or_fit_are_one_line(tmp_path, capsys, monkeypatch):
    line = one_error_line(vecpg_cli("train", "--seeds", "1000000000000", "--out", "r",
                                    cwd=tmp_path))  # fmt: skip
    assert line.startswith("vecpg: error: invalid seeds=1000000000000: must be at most 2**32")
    monkeypatch.chdir(tmp_path)
    line = main_error_line(capsys, "train", "--seeds", "1000000000", "--out", "r")
    assert line.startswith("vecpg: error: invalid seeds=1000000000: the results of 1000000000 ")
    assert "GiB of host memory, over the" in line and "usable" in line
    line = main_error_line(capsys, "sweep", "--seeds", "100000000", "--grid", "lr=1e-3,3e-4",
                           "--out", "s")  # fmt: skip
    assert "invalid seeds=100000000: the results of 200000000 runs need about" in line
    assert list(tmp_path.iterdir()) == []


# --- 2. a run dir whose config.json was edited -------------------------------------------
def test_eval_and_render_with_an_edited_network_say_one_line(tmp_path, finished_run):
    edited_copy(finished_run, tmp_path / "wider", hidden=[16])  # same tree, other shapes
    edited_copy(finished_run, tmp_path / "deeper", hidden=[8, 8])  # another tree
    mismatch = "config.json no longer matches params.msgpack (hidden/env edited?)"
    line = one_error_line(vecpg_cli("eval", "wider", cwd=tmp_path))
    assert line == f"vecpg: error: invalid run_dir='wider': {mismatch}"
    line = one_error_line(vecpg_cli("render", "deeper", "--out", "x.gif", cwd=tmp_path))
    assert line == f"vecpg: error: invalid run_dir='deeper': {mismatch}"
    edited_copy(finished_run, tmp_path / "unknown", env="gymnax/CartPol-v1")
    for command in (["eval", "unknown"], ["render", "unknown", "--out", "x.gif"]):
        line = one_error_line(vecpg_cli(*command, cwd=tmp_path))
        assert "invalid run_dir='unknown': config.json is invalid" in line
        assert "invalid env='gymnax/CartPol-v1'" in line
    assert not (tmp_path / "x.gif").exists()


# --- 3. render --out ---------------------------------------------------------------------
def test_render_out_is_checked_before_any_work(tmp_path, finished_run):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "movie.gif").write_bytes(b"my own gif")
    (tmp_path / "adir").mkdir()
    run = str(finished_run)
    line = one_error_line(vecpg_cli("render", run, "--out", "afile/x.gif", cwd=tmp_path))
    assert line.startswith("vecpg: error: invalid out='afile/x.gif': ")
    assert "afile' is a file, not a directory" in line
    line = one_error_line(vecpg_cli("render", run, "--out", "movie.gif", cwd=tmp_path))
    assert line == (
        "vecpg: error: invalid out='movie.gif': the file exists; pass --overwrite to replace it"
    )
    line = one_error_line(vecpg_cli("render", run, "--out", "adir", cwd=tmp_path))
    assert line == "vecpg: error: invalid out='adir': is a directory; give a file name"
    assert (tmp_path / "afile").read_text() == "mine"
    assert (tmp_path / "movie.gif").read_bytes() == b"my own gif"
    # --overwrite lets the render go on: a GIF, or (without pygame) a line about the env
    proc = vecpg_cli("render", run, "--out", "movie.gif", "--overwrite", cwd=tmp_path)
    if proc.returncode == 0:
        assert (tmp_path / "movie.gif").read_bytes()[:3] == b"GIF"
    else:
        line = one_error_line(proc)
        assert "invalid env='gymnax/CartPole-v1'" in line and "invalid out" not in line


def error_line(capsys, code: int) -> str:
    """The single `vecpg: error:` line an in-process `main` call printed (exit 2)."""
    out, err = capsys.readouterr()
    assert code == 2, out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vecpg: error: "), err
    return lines[0]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", ["render", "compare", "bench", "study"])
def test_an_out_where_nothing_can_be_made_is_one_line(
    command, capsys, no_compile, finished_run, monkeypatch
):
    """/proc lets root pass a permission check, then refuses the mkdir: render, compare,
    bench and study said so in a traceback (train, sweep and search already checked)."""
    from vecpg.envs.gymnax_env import GymnaxEnv

    monkeypatch.setattr(GymnaxEnv, "check_render", lambda self: None)  # pygame or not
    out = "/proc/vecpg-nowhere/x.gif" if command == "render" else "/proc/vecpg-nowhere"
    args = {
        "render": [str(finished_run)],
        "compare": [str(finished_run)],
        "bench": ["--quick"],
        "study": ["--algos", "ppo", "--envs", "gymnax/CartPole-v1"],
    }[command]
    line = error_line(capsys, main([command, *args, "--out", out]))
    assert line.startswith(f"vecpg: error: invalid out='{out}': ") and "cannot" in line


def test_a_refused_bench_or_compare_leaves_no_output_dir(capsys, no_compile, tmp_path):
    """The output dir is made only once the rest of the input has passed its checks."""
    bench = ["bench", "--num-envs", "4", "--num-steps", "16", "--num-minibatches", "3"]
    line = error_line(capsys, main([*bench, "--out", str(tmp_path / "b" / "bench")]))
    assert line.startswith("vecpg: error: invalid num_minibatches=3: must divide")
    compare = ["compare", str(tmp_path / "no-such-run"), "--out", str(tmp_path / "c" / "cmp")]
    assert "no such directory" in error_line(capsys, main(compare))
    assert list(tmp_path.iterdir()) == []


def test_empty_paths_are_refused_not_read_as_absent(capsys, no_compile, tmp_path, monkeypatch):
    """`--resume ''` trained a new default run and `--out ''` wrote under runs/."""
    monkeypatch.chdir(tmp_path)
    for command in (["train", "--resume", ""], ["train", "--out", ""], ["search", "--resume", ""],
                    ["render", "somewhere", "--out", ""]):  # fmt: skip
        field = command[-2].lstrip("-")
        assert error_line(capsys, main(command)) == f"vecpg: error: invalid {field}='': give a path"
    assert list(tmp_path.iterdir()) == []


def test_render_names_its_file_by_the_env(capsys, tmp_path, monkeypatch, finished_run):
    """A gymnax run renders to a GIF: the wrong suffix is one line before the episode
    compiles, and without --out the default is rollout.gif (it was rollout.html, refused
    for every gymnax run)."""
    monkeypatch.chdir(tmp_path)
    line = error_line(capsys, main(["render", str(finished_run), "--out", "x.html"]))
    assert line == "vecpg: error: invalid out='x.html': gymnax envs render to a .gif file"
    code = main(["render", str(finished_run)])
    out, err = capsys.readouterr()
    if code == 0:
        assert (tmp_path / "rollout.gif").read_bytes()[:3] == b"GIF"
    else:  # without pygame: a line about the env, not about the file name
        assert "invalid env='gymnax/CartPole-v1'" in err and "invalid out" not in err


def test_render_to_a_read_only_dir_names_out(tmp_path, finished_run):
    with small_filesystem(tmp_path / "ro", "1m", read_only=True):
        proc = vecpg_cli("render", str(finished_run), "--out", "ro/x.gif", cwd=tmp_path)
        line = one_error_line(proc)
        assert (
            line
            == "vecpg: error: invalid out='ro/x.gif': cannot write there (Read-only file system)"
        )


# --- 4. eval --episodes and the seeds of eval and render ---------------------------------
def test_eval_episodes_beyond_memory_are_refused_before_compiling(tmp_path, finished_run):
    proc = vecpg_cli("eval", str(finished_run), "--episodes", "100000000", cwd=tmp_path)
    line = one_error_line(proc)
    assert line.startswith("vecpg: error: invalid episodes=100000000: 2 seeds x 100000000 "
                           "episodes of up to 500 steps need about ")  # fmt: skip
    assert "over the" in line and "usable; use at most" in line
    fit = int(line.rsplit("use at most ", 1)[1].split()[0])
    assert 10 < fit < 100000000


def test_eval_and_render_seeds_must_be_uint32(tmp_path, finished_run):
    run = str(finished_run)
    huge = "99999999999999999999"
    for command in (["eval", run, "--seed", huge],
                    ["render", run, "--seed", huge, "--out", "x.gif"]):  # fmt: skip
        line = one_error_line(vecpg_cli(*command, cwd=tmp_path))
        assert (
            line
            == "vecpg: error: invalid seed=99999999999999999999: must be an integer in [0, 2**32)"
        )
    line = one_error_line(vecpg_cli("eval", run, "--seed", "-1", cwd=tmp_path))
    assert line == "vecpg: error: invalid seed=-1: must be an integer in [0, 2**32)"
    line = one_error_line(vecpg_cli("render", run, "--seed", "7", "--out", "x.gif", cwd=tmp_path))
    assert "invalid seed=7: this run has seeds [0, 1]" in line
    assert not (tmp_path / "x.gif").exists()


# --- 5. what tyro answered with boxes ----------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--num-steps", "abc"], "invalid num_steps='abc': must be an integer"),
        (["train", "--seeds", "2.5"], "invalid seeds='2.5': must be an integer"),
        (["train", "--gama", "0.9"],
         "unknown flag --gama for `vecpg train` (did you mean --gamma?); "
         "`vecpg train --help` lists its flags"),
        (["sweep", "--lr", "1e-3"],
         "unknown flag --lr for `vecpg sweep` (did you mean --learning-rate?); "
         "`vecpg sweep --help` lists its flags"),
        (["trian"], f"unknown command 'trian' (did you mean `vecpg train`?); {COMMAND_LIST}"),
        (["train", "--progress", "False"],
         "invalid progress='False': --progress takes no value; give --progress or --no-progress"),
        (["train", "stray"],
         "unexpected argument 'stray' for `vecpg train`; `vecpg train --help` lists its flags"),
        (["eval"], "invalid run_dir: missing; give it: vecpg eval RUN_DIR"),
        (["eval", "r", "--episodes"],
         "invalid episodes: --episodes needs a value (must be an integer)"),
        (["bench", "--preset", "cpu"], "invalid preset='cpu': allowed: none, gpu"),
    ],
)  # fmt: skip
def test_parse_errors_are_one_line(capsys, args, expected):
    assert main_error_line(capsys, *args) == f"vecpg: error: {expected}"


def test_parse_errors_through_the_real_cli(tmp_path):
    for args in (["train", "--seeds", "2.5"], ["train", "--gama", "0.9"], ["trian"]):
        proc = vecpg_cli(*args, cwd=tmp_path)
        assert one_error_line(proc) in (
            "vecpg: error: invalid seeds='2.5': must be an integer",
            "vecpg: error: unknown flag --gama for `vecpg train` (did you mean --gamma?); "
            "`vecpg train --help` lists its flags",
            f"vecpg: error: unknown command 'trian' (did you mean `vecpg train`?); {COMMAND_LIST}",
        )
        assert "╭" not in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_still_prints_full_help(tmp_path):
    proc = vecpg_cli("train", "--seeds", "3", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    flags = {ln.split()[1].rstrip(",") for ln in proc.stdout.splitlines() if ln.startswith("│ --")}
    assert {"--gamma", "--seeds", "--hidden", "--progress", "--wandb"} <= flags
    assert "--no-progress" in proc.stdout
    proc = vecpg_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0 and "{" + ",".join(COMMANDS) + "}" in proc.stdout


def test_tyro_boxes_left_are_condensed():
    """What check_args does not answer first still comes back as one line."""
    from vecpg.cli import TrainCommand
    from vecpg.cli_args import condense, parse

    with pytest.raises(ConfigError) as e:
        parse(TrainCommand, ["--num-steps", "abc"], "vecpg train", None)
    assert str(e.value) == (
        "Error parsing --num-steps: invalid literal for int() with base 10: 'abc'; "
        "`vecpg train --help` lists its flags"
    )
    box = "╭─ Unrecognized options ─╮\n│ Unrecognized options: x │\n│ ──── │\n│ more │\n╰──╯\n"
    assert condense(box, "vecpg eval") == (
        "Unrecognized options: x; `vecpg eval --help` lists its flags"
    )


# --- 6. --grid over a static field -------------------------------------------------------
def test_grid_over_a_static_field_says_it_cannot_be_swept(tmp_path, capsys, monkeypatch):
    line = one_error_line(vecpg_cli("sweep", "--grid", "algo=ppo,trpo", cwd=tmp_path))
    assert line == (
        "vecpg: error: invalid grid 'algo=ppo,trpo': algo changes the compiled program, so it "
        "cannot be swept in one call (only traced hyperparameters can); run `vecpg study "
        "--algos ppo,trpo` (one call per algo), or a separate sweep per value, each with "
        "--algo VALUE"
    )
    monkeypatch.chdir(tmp_path)
    line = main_error_line(capsys, "sweep", "--grid", "num-envs=4,8")
    assert "invalid grid 'num-envs=4,8': num_envs changes the compiled program" in line
    assert line.endswith("run a separate sweep per value, each with --num-envs VALUE")
    line = main_error_line(capsys, "sweep", "--grid", "gama=0.9,0.99")
    assert "invalid grid 'gama=0.9,0.99': gama is not a hyperparameter; did you mean gamma?" in line
    assert list(tmp_path.iterdir()) == []


# --- 7. an unknown env -------------------------------------------------------------------
def test_unknown_env_message_names_close_matches():
    from vecpg.envs.registry import unknown_env_message

    assert unknown_env_message("gymnax/CartPol-v1") == (
        "no such env; did you mean gymnax/CartPole-v1? (`vecpg envs --source gymnax` lists them)"
    )
    assert unknown_env_message("brax/Hopper") == (
        "no such env; did you mean brax/hopper? (`vecpg envs --source brax` lists them)"
    )
    assert unknown_env_message("gymnax/zzzz") == (
        "no such env (`vecpg envs --source gymnax` lists them)"
    )
    assert "did you mean gymnax/CartPole-v1?" in unknown_env_message("gymnx/CartPole-v1")
    assert "no such env source 'gymnx'" in unknown_env_message("gymnx/CartPole-v1")
    assert "did you mean gymnax/CartPole-v1?" in unknown_env_message("CartPole-v1")
    assert "`vecpg envs --source gymnax`" in unknown_env_message("gymnax")
    assert "must be a string" in unknown_env_message(3)
    for name in ("gymnax/CartPol-v1", "foo/bar", "CartPole-v1", "x" * 50):
        assert len(unknown_env_message(name)) < 200  # never the list of every env
    with pytest.raises(vecpg.ConfigError) as e:  # what TrainConfig (and so the CLI) says
        vecpg.TrainConfig(env="gymnax/CartPol-v1")
    assert str(e.value) == (
        "invalid env='gymnax/CartPol-v1': no such env; did you mean gymnax/CartPole-v1? "
        "(`vecpg envs --source gymnax` lists them)"
    )


# --- 8. VECPG_MENAGERIE_PATH -------------------------------------------------------------
needs_playground = pytest.mark.skipif(
    importlib.util.find_spec("mujoco_playground") is None, reason="playground not installed"
)


@needs_playground
def test_menagerie_path_that_is_no_clone_says_so(tmp_path):
    from mujoco_playground._src import mjx_env

    if Path(str(mjx_env.MENAGERIE_PATH)).exists():
        pytest.skip("the Menagerie assets are installed here")
    missing = tmp_path / "no-such-dir"
    proc = vecpg_cli_env("train", "--env", "playground/Go1Getup", *TINY, cwd=tmp_path,
                         env={"VECPG_MENAGERIE_PATH": str(missing)})  # fmt: skip
    line = one_error_line(proc)
    assert line.startswith(f"vecpg: error: invalid VECPG_MENAGERIE_PATH='{missing}': "
                           "no such directory; set it to a clone of ")  # fmt: skip
    from vecpg.envs.playground_env import link_menagerie

    os.environ["VECPG_MENAGERIE_PATH"] = str(tmp_path)
    try:
        with pytest.raises(ConfigError, match="not a MuJoCo Menagerie clone"):
            link_menagerie("playground/Go1Getup")
    finally:
        del os.environ["VECPG_MENAGERIE_PATH"]


# --- 9. MUJOCO_GL ------------------------------------------------------------------------
@needs_playground
def test_unusable_mujoco_gl_is_one_line_naming_it(tmp_path):
    cases = [("nonsense", "playground/CartpoleBalance"), ("nonsense", "brax/inverted_pendulum")]
    if not ctypes.util.find_library("OSMesa"):
        cases.append(("osmesa", "playground/CartpoleBalance"))
    for gl, env in cases:
        proc = vecpg_cli_env("train", "--env", env, *TINY, "--out", "r", cwd=tmp_path,
                             env={"MUJOCO_GL": gl})  # fmt: skip
        line = one_error_line(proc)
        assert line.startswith(f"vecpg: error: invalid MUJOCO_GL='{gl}': "), line
        assert "unset it to train and eval" in line
        if gl == "osmesa":
            assert "libOSMesa is not installed" in line
        else:
            assert "MuJoCo takes glfw, egl, osmesa, glx or disabled" in line
        assert "compiling" not in proc.stdout and not (tmp_path / "r").exists()


# --- 10. bench and compare --out ---------------------------------------------------------
def test_bench_out_is_checked_before_any_work(tmp_path):
    from vecpg.bench.plan import BenchPlan

    (tmp_path / "afile").write_text("mine")
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    line = one_error_line(vecpg_cli("bench", "--quick", "--out", "afile", cwd=tmp_path))
    assert line == "vecpg: error: invalid out='afile': exists and is not a directory"
    line = one_error_line(vecpg_cli("bench", "--quick", "--out", "afile/b", cwd=tmp_path))
    assert "invalid out='afile/b'" in line and "afile' is a file, not a directory" in line
    line = one_error_line(vecpg_cli("bench", "--quick", "--out", "thesis", cwd=tmp_path))
    assert line == (
        "vecpg: error: invalid out='thesis': the directory holds files `vecpg bench` did not "
        "write (notes.txt); give a new or empty directory"
    )
    assert snapshot(tmp_path) == before
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "bench.json").write_text("{}")
    (earlier / "bench.md").write_text("")
    BenchPlan(quick=True, out=str(earlier)).resolved()  # an earlier bench's dir is fine
    BenchPlan(quick=True, out=str(tmp_path / "new")).resolved()
    with small_filesystem(tmp_path / "ro", "1m", read_only=True):
        line = one_error_line(vecpg_cli("bench", "--quick", "--out", "ro/b", cwd=tmp_path))
        assert (
            line == "vecpg: error: invalid out='ro/b': cannot write there (Read-only file system)"
        )


def test_compare_out_is_checked_before_loading(tmp_path, finished_run):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter.tex").write_text("mine")
    (thesis / "figure.png").write_bytes(b"my figure")
    before = snapshot(thesis)
    line = one_error_line(vecpg_cli("compare", "no-such-run", "--out", "thesis", cwd=tmp_path))
    assert line == (  # the out dir is refused before the (missing) run is even looked at
        "vecpg: error: invalid out='thesis': the directory holds files `vecpg compare` did not "
        "write (chapter.tex); give a new or empty directory"
    )
    assert snapshot(thesis) == before
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("an earlier report")
    (report / "old.png").write_bytes(b"png")
    proc = vecpg_cli("compare", str(finished_run), "--out", "report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (report / "report.md").read_text() != "an earlier report"


# --- 11. eval marks diverged seeds -------------------------------------------------------
def test_eval_marks_diverged_seeds_and_leaves_them_out_of_the_mean(tmp_path, finished_run):
    diverged_copy(finished_run, tmp_path / "half", {0: 3})
    diverged_copy(finished_run, tmp_path / "all", {0: 3, 1: 5})
    proc = vecpg_cli("eval", "half", "--episodes", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {ln.split("│")[1].strip(): ln for ln in proc.stdout.splitlines() if ln.count("│") > 2}
    assert "0 (diverged at it 3)" in rows and "1" in rows
    assert "mean over 1 non-diverged seed" in rows
    seed1 = rows["1"].split("│")[2].split()[0]
    assert rows["mean over 1 non-diverged seed"].split("│")[2].split()[0] == seed1
    proc = vecpg_cli("eval", "all", "--episodes", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    mean_row = next(ln for ln in proc.stdout.splitlines() if "mean over seeds" in ln)
    assert mean_row.count("all seeds diverged") == 2
    assert "(diverged at it 5)" in proc.stdout


def test_eval_table_cis_stay_inside_the_returns():
    from vecpg.analysis.evaluate import EvalResult

    det = np.array([[500.0, 500.0], [500.0, 500.0], [500.0, 500.0], [20.0, 30.0]])
    res = EvalResult([0, 1, 2, 3], det, det.copy(), np.full(det.shape, 500))
    mean = res.table()[-1]
    assert mean["seed"] == "mean over seeds" and mean["deterministic"] == pytest.approx(381.25)
    lo, hi = mean["deterministic_ci95"]
    assert 25.0 <= lo < 381.25 < hi <= 500.0  # Student-t's upper end was above 500
    res = EvalResult([0, 1, 2, 3], det, det.copy(), np.full(det.shape, 500), {3: 7})
    rows = res.table()
    assert rows[3]["diverged_at"] == 7 and rows[0]["diverged_at"] is None
    assert rows[-1]["seed"] == "mean over 3 non-diverged seeds"
    assert rows[-1]["deterministic"] == 500.0 and rows[-1]["deterministic_ci95"] == [500.0, 500.0]
    rows = EvalResult([0, 1], det[:2], det[:2], det[:2], {0: 1, 1: 2}).table()
    assert rows[-1]["all_diverged"] and np.isnan(rows[-1]["deterministic"])


def test_a_policy_called_on_a_wrong_observation_says_one_line(finished_run):
    """Before: a raw TypeError from inside jax (shapes) or numpy (strings)."""
    policy = vecpg.load_policy(finished_run, seed=0)
    assert policy(np.zeros(4)).shape == () and policy(np.zeros((3, 4))).shape == (3,)
    with pytest.raises(
        vecpg.ConfigError,
        match=r"invalid obs of shape \(5,\): this policy "
        r"takes \(4,\) or \[N, \*\(4,\)\] observations \(gymnax/CartPole-v1\)",
    ):
        policy(np.zeros(5))
    with pytest.raises(vecpg.ConfigError, match="must be an array of numbers"):
        policy("left")
