"""Every example in the README and the docs is checked: Python blocks are executed at
tiny sizes (a page's blocks in order, as one script: later blocks use earlier names)
unless marked `<!-- not run: REASON -->`; shell blocks are full-size commands (minutes
to hours, GPUs, several hosts), so each is marked not run with its reason, and every
`vecpg` command line in them is parsed and its config validated exactly as `vecpg` does
before running it; the commands a new user types first run at tiny sizes."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST_COMPILE_CONFIG
from vecpg.cli import COMMANDS, algo_defaults
from vecpg.cli_args import check_args, parse
from vecpg.config import HPARAM_FIELDS, STATIC_FIELDS, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"(?:<!-- not run: (?P<why>[^>]*?) -->\n)?```(?P<lang>python|bash)\n(?P<code>.*?)```", re.S
)
# tiny sizes: (pattern, replacement) applied to every Python block before it runs
TINY = [
    (r"total_steps([\"']?\s*[=:]\s*)[\d_]+", r"total_steps\g<1>2048"),
    (r"\bseeds=\d+", "seeds=2"),
    (
        r"vecpg\.TrainConfig\(",
        "vecpg.TrainConfig(num_envs=4, num_steps=16, hidden=(8,), "
        + "".join(f"{k}={v!r}, " for k, v in FAST_COMPILE_CONFIG.items()),
    ),
]


def blocks(lang: str) -> list[tuple[Path, str, str | None]]:
    """(page, code, reason it is not run or None) of every `lang` block."""
    out = []
    for page in PAGES:
        for m in FENCE.finditer(page.read_text()):
            if m["lang"] == lang:
                out.append((page, m["code"], m["why"]))
    return out


def test_skipped_blocks_say_why():
    for page, _, why in blocks("python") + blocks("bash"):
        assert why is None or len(why.strip()) > 10, f"{page.name}: say why a block is not run"


def page_code(page: Path) -> str:
    return "\n".join(c for p, c, why in blocks("python") if p == page and why is None)


def python_pages() -> list[Path]:
    """Pages with Python to run, one of each distinct script (docs/index.md repeats the
    README's example)."""
    seen: set[str] = set()
    pages = []
    for page in sorted({p for p, _, why in blocks("python") if why is None}):
        if page_code(page) not in seen:
            seen.add(page_code(page))
            pages.append(page)
    return pages


@pytest.mark.parametrize("page", python_pages(), ids=lambda p: p.name)
def test_python_examples_run(page, tmp_path):
    code = page_code(page)
    for pattern, repl in TINY:
        code = re.sub(pattern, repl, code)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, f"{page.name}:\n{code}\n{out.stderr[-3000:]}"


def command_lines(code: str) -> list[list[str]]:
    """The `vecpg ...` commands of a shell block, continuations joined, comments and
    `$VAR`s (set in the block) expanded."""
    text = code.replace("\\\n", " ")
    env: dict[str, str] = {}
    out = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        assign = re.match(r'^(\w+)="(.*)"$', line)
        if assign:
            env[assign[1]] = assign[2]
            continue
        for part in re.split(r"&&|&(?!&)", line):
            words = shlex.split(re.sub(r"\$(\w+)", lambda m: env.get(m[1], "X"), part))
            while words and re.match(r"^\w+=", words[0]):  # VAR=value vecpg ...
                words = words[1:]
            words = words[1:] if words[:1] == ["srun"] else words
            if words[:1] == ["vecpg"] or words[:1] == [".venv/bin/vecpg"]:
                out.append(words[1:])
    return out


def shell_commands() -> list[tuple[str, list[str]]]:
    """Every `vecpg` line of every shell block, marked not run or not."""
    return [(page.name, argv) for page, code, _ in blocks("bash")
            for argv in command_lines(code)]  # fmt: skip


def test_every_shell_block_says_why_it_is_not_run():
    unmarked = [(page.name, code[:60]) for page, code, why in blocks("bash") if why is None]
    assert not unmarked, unmarked


@pytest.mark.parametrize(("page", "argv"), shell_commands(),
                         ids=lambda x: x if isinstance(x, str) else " ".join(x)[:60])  # fmt: skip
def test_shell_commands_parse_and_validate(page, argv):
    """What `vecpg` does with the line before it runs anything: the command, every flag,
    and the config they make (bounds and cross-field checks)."""
    argv = argv or ["train"]
    if argv[0] not in COMMANDS:
        argv = ["train", *argv]
    if {"-h", "--help"} & set(argv):
        return  # --help is run below
    name, flags = argv[0], COMMANDS[argv[0]][0]
    if name == "study" and argv[1:2] == ["report"]:
        return  # a subcommand of its own: run by tests/test_study.py
    check_args(name, flags, argv[1:])
    cmd = parse(flags, argv[1:], f"vecpg {name}", algo_defaults(flags, argv[1:]))
    if all(hasattr(cmd, f) for f in STATIC_FIELDS) and not getattr(cmd, "resume", None):
        TrainConfig(**{f: getattr(cmd, f) for f in (*STATIC_FIELDS, *HPARAM_FIELDS)})


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--num-envs", "4", "--num-steps", "16", "--total-steps", "256", "--hidden",
         "8", "--seeds", "2", "--no-progress", "--out", "runs/demo"],
        ["train", "--help"],
        ["envs", "--source", "gymnax"],
    ],
    ids=["demo-tiny", "help", "envs"],
)  # fmt: skip
def test_first_commands_run(argv, tmp_path):
    out = subprocess.run([sys.executable, "-m", "vecpg.cli", *argv], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip()
