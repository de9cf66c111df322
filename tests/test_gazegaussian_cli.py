"""``python -m gg_optuna_helpers run --backend gazegaussian`` against the CONTRACT FIXTURE
(tests/fixtures/gazegaussian_contract: the real repo's API surface only), for what needs no
training. Both stages, stage coupling and a killed study that resumes run on the REAL code in
tests/test_real_repo.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "gazegaussian_contract_build", ROOT / "tests/fixtures/gazegaussian_contract/build.py")
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)


def _run_args(repo, storage, stage, *extra, iters=3, trials=4, epochs=3):
    return [sys.executable, "-m", "gg_optuna_helpers", "run", "--stage", stage,
            "--backend", "gazegaussian", "--backend-option", f"repo={repo}",
            "--backend-option", f"iters_per_epoch={iters}", "--backend-option", "val_samples=2",
            "--storage", str(storage), "--n-trials", str(trials), "--max-epochs", str(epochs),
            "--quiet", *extra]


def test_searching_the_forks_broken_orthogonality_loss_is_refused(tmp_path):
    """The default space is fitted to the fork (weight fixed at 0.0); an explicit range is refused."""
    repo = contract.make_checkout(tmp_path / "repo", "fork")
    done = subprocess.run(_run_args(repo, tmp_path / "results", "gazegaussian",
                                    "--set", "orthogonality_loss_importance=0.001:0.1"),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "orthogonality_loss_importance' allows only [0.0]" in done.stderr
