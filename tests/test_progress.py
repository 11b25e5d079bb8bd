"""Live progress from inside the compiled call: plain lines when not on a terminal, whose
numbers are the run's own metrics at that iteration."""

from __future__ import annotations

import re

import numpy as np
import pytest

import vecpg

TINY = vecpg.TrainConfig(num_envs=4, num_steps=16, total_steps=640, hidden=(16,), log_every=3)
LINE = re.compile(
    r"steps ([\d,]+)/([\d,]+)\s+([\d,]+) steps/s\s+ETA\s+\d+s\s+"
    r"return mean\s+(-?[\d.]+)\s+best\s+(-?[\d.]+)"
)


@pytest.mark.parametrize("checkpoint_every", [0, 4])
def test_plain_progress_lines_report_the_runs_metrics(tmp_path, capsys, checkpoint_every):
    res = vecpg.train(
        TINY,
        seeds=[0, 1, 2],
        progress=True,
        run_dir=tmp_path / "run",
        checkpoint_every=checkpoint_every,
    )
    lines = [m for m in map(LINE.search, capsys.readouterr().out.splitlines()) if m]
    assert lines, "no progress line printed"
    last = lines[-1]
    total = TINY.num_iterations * TINY.batch_size
    assert int(last.group(1).replace(",", "")) == int(last.group(2).replace(",", "")) == total
    final = res.metrics["episode_return"][:, -1]
    assert float(last.group(4)) == pytest.approx(final.mean(), abs=0.006)
    assert float(last.group(5)) == pytest.approx(final.max(), abs=0.006)
    assert int(last.group(3).replace(",", "")) > 0
    assert np.isfinite(final).all()
