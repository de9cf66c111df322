"""End to end: ``python -m gg_optuna_helpers run --backend gazegaussian`` against the CONTRACT
FIXTURE (tests/fixtures/gazegaussian_contract: the real repo's API surface only), both stages,
pruning, and a killed study that resumes its trial from the last epoch's checkpoint."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
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


def _trials(storage, name):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{storage}/{name}/optuna.db")
    return study.get_trials(deepcopy=False)


def test_both_stages_run_through_the_cli(tmp_path):
    repo = contract.make_checkout(tmp_path / "repo", "fork")
    storage = tmp_path / "results"
    for stage, extra in (("meshhead", ()), ("gazegaussian", ())):
        done = subprocess.run(_run_args(repo, storage, stage, *extra, "--pruner", "median"),
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        trials = _trials(storage, f"gazegaussian_{stage}")
        assert len(trials) == 4 and all(t.state.is_finished() for t in trials)
        assert not [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert "Using the best MeshHead" in done.stdout + done.stderr
    gaze = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all("gaze_error_deg" in t.user_attrs and "psnr" in t.user_attrs for t in gaze)


def test_searching_the_forks_broken_orthogonality_loss_is_refused(tmp_path):
    """The default space is fitted to the fork (weight fixed at 0.0); an explicit range is refused."""
    repo = contract.make_checkout(tmp_path / "repo", "fork")
    done = subprocess.run(_run_args(repo, tmp_path / "results", "gazegaussian",
                                    "--set", "orthogonality_loss_importance=0.001:0.1"),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "orthogonality_loss_importance' allows only [0.0]" in done.stderr


def test_a_killed_study_resumes_its_trial_from_the_last_checkpoint(tmp_path):
    repo = contract.make_checkout(tmp_path / "repo", "upstream")
    storage = tmp_path / "results"
    args = _run_args(repo, storage, "meshhead", "--heartbeat-interval", "1", "--pruner", "none",
                     "--patience", "0", iters=40, trials=1, epochs=6)
    first = subprocess.Popen(args, cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = storage / "gazegaussian_meshhead" / "trial_0000" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if metrics.exists() and metrics.read_text().count('"event": "epoch"') >= 2:
            break
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(4)  # past the heartbeat's grace period: the trial is stale
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    starts = [e for e in map(json.loads, metrics.read_text().splitlines()) if e["event"] == "start"]
    assert starts[0]["start_epoch"] == 1 and starts[-1]["resumed"]
    assert starts[-1]["start_epoch"] >= 3
    complete = [t for t in _trials(storage, "gazegaussian_meshhead")
                if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 1 and set(complete[0].intermediate_values) == set(range(1, 7))
