"""docs/bad_input.md, row by row: each bad input gives one clear line and loses no finished trial.

Rows already covered elsewhere point at their test in the table; every other row is a test
here, named after the row. Faults mid-study are real (mini backend hooks, a full tmpfs, SIGINT).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest

from conftest import cli
from test_study import run_args, trials

# The baseline's own widths, fixed: every trial's checkpoint then has the same size.
BASELINE_SPACE = ["--set", "lr=1e-3", "--set", "batch_size=1", "--set", "shape_mlp_hidden=256",
                  "--set", "pose_mlp_hidden=128", "--set", "eye_mlp_hidden=128"]


def finished_values(storage: Path) -> dict[int, float]:
    """{trial number: value} of the COMPLETE trials."""
    return {t.number: t.value for t in trials(storage) if t.state.name == "COMPLETE"}


def one_line(text: str, start: str) -> str:
    """The only line of ``text`` that starts with ``start``."""
    [line] = [ln for ln in text.splitlines() if ln.startswith(start)]
    return line


def test_disk_full_while_writing_a_checkpoint(tmp_path, mount_tmpfs):
    """The results disk fills up in trial 1: trial 0 stays COMPLETE, the study stops cleanly."""
    disk = mount_tmpfs("2100k")  # trial 0's files (~1.8 MB) fit; trial 1's first checkpoint not
    storage = tmp_path / "drive"  # the database and its snapshots live elsewhere
    args = run_args(storage, "--results-dir", str(disk), "--pruner", "none", *BASELINE_SPACE,
                    trials=1, epochs=2)
    first = cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    before = finished_values(storage)
    assert list(before) == [0]
    out = cli(*run_args(storage, "--results-dir", str(disk), "--pruner", "none",
                        *BASELINE_SPACE, trials=2, epochs=2))
    assert out.returncode == 0 and "Traceback" not in out.stdout + out.stderr, out.stderr
    line = one_line(out.stdout, "Trial 1:")
    assert line == (f"Trial 1: failed: disk_full (no space left on the disk of {disk}/mini_meshhead/"
                    "trial_0001 for checkpoints and metrics: free some space or choose another "
                    "--results-dir, then run again)")
    assert "Stopping: 5 trials failed in a row" in out.stdout  # stopped cleanly, not crashed
    assert finished_values(storage) == before  # trial 0: still COMPLETE, same value
    failed = [t for t in trials(storage) if t.state.name == "FAIL"]
    assert {t.user_attrs["failure"] for t in failed} == {"disk_full"} and len(failed) == 5
    assert not list(disk.rglob(".*.tmp"))  # no partial checkpoint keeps the disk full
