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


def test_host_ring_lays_out_iterations_like_the_callback_buffer():
    """Chunks of 2 iterations into a ring of 4 (log_every): a flush every 4 iterations
    and at the last one, row i % 4 holding iteration i, and copies handed out."""
    from vecpg.training.execute import HostRing

    ring = HostRing(4, np.array([0, 1, -1]))
    flushes = []
    for start in range(0, 10, 2):  # iterations 0..9, total 10
        m = {"r": np.stack([np.arange(start, start + 2) + 100 * lane for lane in range(3)])}
        if ring.add(start, {k: v[:, : 10 - start] for k, v in m.items()}, total=10):
            flushes.append(ring.flush())
    assert [last for _, last, _ in flushes] == [3, 7, 9]
    lanes, _, buf = flushes[1]
    np.testing.assert_array_equal(lanes, [0, 1, -1])
    np.testing.assert_array_equal(buf["r"][:, 1], [104, 105, 106, 107])  # lane 1, its 4..7
    np.testing.assert_array_equal(flushes[2][2]["r"][:, 0], [8, 9, 6, 7])  # rows 0, 1 new
    assert flushes[1][2]["r"] is not flushes[2][2]["r"]
