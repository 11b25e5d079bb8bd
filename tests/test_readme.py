"""The README's two fresh-machine commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_CMD = 'python3 -m venv .venv && .venv/bin/pip install -q -e ".[dev]" && .venv/bin/pytest -q'
DEMO_CMD = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/vecpg train"


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    assert TEST_CMD in readme and DEMO_CMD in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert TEST_CMD in ci
