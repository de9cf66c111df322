"""End to end through the command line: real child processes, real SQLite files, real kills."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import torch

from conftest import ROOT, cli
from gg_optuna_helpers import StudyConfig, open_storage, run_study

pytestmark = pytest.mark.slow
FAST = ["--heartbeat-interval", "1", "--quiet", "--patience", "0"]


def run_args(results: Path, *extra: str, stage="meshhead", trials=3, epochs=4):
    return ["run", "--stage", stage, "--storage", str(results), "--n-trials", str(trials),
            "--max-epochs", str(epochs), *FAST, *extra]


def status(results: Path, study="mini_meshhead") -> dict:
    out = cli("status", "--storage", str(results), "--study-name", study, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def trials(results: Path, study="mini_meshhead"):
    storage = open_storage(results)
    return optuna.load_study(study_name=study, storage=storage.rdb).get_trials()


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def epochs_logged(trial_dir: Path) -> int:
    path = trial_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum('"event": "epoch"' in line for line in path.read_text().splitlines())


def test_run_then_status_tells_the_truth(tmp_path):
    results = tmp_path / "drive"
    out = cli(*run_args(results, "--pruner", "none"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Trial 0 (baseline): value" in out.stdout
    st = status(results)
    assert st["finished"] == 3 and st["states"]["complete"] == 3 and "running" not in st["states"]
    assert set(st["failures"]) <= {"diverged"}  # a sampled lr near 1e-2 may blow up, for real
    assert st["baseline"]["number"] == 0
    assert st["best"]["value"] == min(t.value for t in trials(results) if t.value is not None)
    assert trials(results)[0].params["lr"] == 1e-3  # the repo's default is trial 0
    rdb = open_storage(results).rdb
    artifacts = [a for t in trials(results)
                 for a in optuna.artifacts.get_all_artifact_meta(t, storage=rdb)]
    assert {a.filename for a in artifacts} == {"preview.png"}  # best.pt stays in its folder
    assert all((results / "artifacts" / a.artifact_id).is_file() for a in artifacts)
    # run again: the total is already reached, nothing new starts
    again = cli(*run_args(results))
    assert again.returncode == 0 and status(results)["trials"] == st["trials"]


def test_faults_are_recorded_and_the_study_goes_on(tmp_path):
    results = tmp_path / "r"
    faults = {"1": {"kind": "oom", "epoch": 2}, "2": {"kind": "nan", "epoch": 2},
              "3": {"kind": "crash", "epoch": 1}, "4": {"kind": "hang", "epoch": 1}}
    out = cli(*run_args(results, "--backend-option", "faults=" + json.dumps(faults),
                        "--epoch-timeout", "20", "--pruner", "none", trials=2))
    assert out.returncode == 0, out.stdout + out.stderr
    by_number = {t.number: t for t in trials(results)}
    assert [by_number[n].user_attrs["failure"] for n in (1, 2, 3, 4)] == [
        "oom", "diverged", "crashed", "timeout"]
    assert "OutOfMemoryError" in by_number[1].user_attrs["failure_log"]
    assert by_number[5].state.name == "COMPLETE"  # the study went on
    st = status(results)
    assert st["finished"] == 2 and st["failures"] == {"oom": 1, "diverged": 1, "crashed": 1,
                                                      "timeout": 1}
    for line in ("failed: oom", "failed: diverged", "failed: crashed", "failed: timeout"):
        assert line in out.stdout


def test_failures_in_a_row_stop_the_study_with_many_trials_left(tmp_path):
    crash = {str(n): {"kind": "crash", "epoch": 1} for n in range(6)}
    study = run_study(StudyConfig(
        stage="meshhead", storage=str(tmp_path / "results"), local_dir=str(tmp_path / "local"),
        n_trials=6, max_epochs=1, pruner="none", patience=None, max_failures_in_a_row=2,
        backend_options={"faults": crash}, show_progress_bar=False))
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


def _start(args, env=None):
    return subprocess.Popen(["python", "-m", "gg_optuna_helpers", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=dict(os.environ, PYTHONPATH=str(ROOT),
                                                             **(env or {})))


def test_sigkill_mid_trial_then_rerun_resumes_that_trial(tmp_path):
    results = tmp_path / "drive"
    args = run_args(results, "--pruner", "none", trials=3, epochs=8)
    proc = _start(args)
    trial_dir = results / "mini_meshhead" / "trial_0001"
    wait_for(lambda: epochs_logged(trial_dir) >= 3)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: parent and worker
    proc.wait()
    killed_at = torch.load(trial_dir / "last.pt", weights_only=False)["epoch"]
    out = cli(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    all_trials = trials(results)
    assert not [t for t in all_trials if t.state.name == "RUNNING"]
    assert status(results)["finished"] == 3
    retry = next(t for t in all_trials if t.system_attrs.get("failed_trial") == 1)
    assert retry.user_attrs["trial_dir"] == str(trial_dir)
    assert retry.user_attrs["start_epoch"] == killed_at + 1
    assert retry.user_attrs["epochs"] == 8 - killed_at  # only what was left was trained
    assert set(retry.intermediate_values) == set(range(1, 9))


def test_new_machine_resumes_from_the_durable_snapshot(tmp_path):
    results = tmp_path / "drive"
    assert cli(*run_args(results, trials=2)).returncode == 0
    before = [(t.number, t.params, t.value, t.datetime_start) for t in trials(results)]
    shutil.rmtree(tmp_path / "local")  # a new Colab VM: the local live database is gone
    out = cli(*run_args(results, trials=3))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Restoring the study database from its snapshot" in out.stdout, out.stdout
    after = [(t.number, t.params, t.value, t.datetime_start) for t in trials(results)]
    assert len(before) == 2 and after[:2] == before  # the same two trials, not trained again
    assert status(results)["finished"] == 3 and status(results)["baseline"]["number"] == 0


def test_interrupt_leaves_nothing_running_and_requeues(tmp_path):
    results = tmp_path / "r"
    args = run_args(results, "--pruner", "none", trials=2, epochs=8)
    proc = _start(args)
    wait_for(lambda: epochs_logged(results / "mini_meshhead" / "trial_0000") >= 2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C / the notebook's stop button
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    states = {t.number: t.state.name for t in trials(results)}
    assert "RUNNING" not in states.values() and states[0] == "FAIL"
    assert "WAITING" in states.values()  # the retry, queued for the next run
    out = cli(*args)
    assert out.returncode == 0 and status(results)["finished"] == 2
    retry = next(t for t in trials(results) if t.system_attrs.get("failed_trial") == 0)
    assert retry.user_attrs["start_epoch"] > 1 and "failure" not in retry.user_attrs


def test_pruning_and_stage_coupling(tmp_path):
    results = tmp_path / "r"
    out = cli(*run_args(results, "--pruner", "median", trials=5, epochs=6))
    assert out.returncode == 0, out.stderr
    assert status(results)["states"].get("pruned", 0) >= 1 and "pruned at epoch" in out.stdout
    out = cli(*run_args(results, stage="gazegaussian", trials=2, epochs=2))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Using the best MeshHead of study 'mini_meshhead'" in out.stdout
    assert status(results, "mini_gazegaussian")["finished"] == 2


def test_early_stopping_after_the_warmup(tmp_path):
    """patience 1 and an unreachable min_delta: stops at the first epoch after the warm-up."""
    results = tmp_path / "r"
    args = ["run", "--stage", "meshhead", "--storage", str(results), "--n-trials", "1",
            "--max-epochs", "6", "--heartbeat-interval", "1", "--quiet", "--patience", "1",
            "--min-delta", "10", "--pruner", "median"]  # median's warm-up: 3 epochs of 6
    out = cli(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    (trial,) = trials(results)
    assert trial.state.name == "COMPLETE" and trial.user_attrs["early_stopped_at"] == 4
    assert trial.value == min(trial.intermediate_values.values())
    assert "early-stopped at epoch 4" in out.stdout


def test_an_edit_that_excludes_the_defaults_runs_without_a_baseline(tmp_path):
    results = tmp_path / "r"
    out = cli(*run_args(results, "--set", "batch_size=2", "--set", "lr=1e-4:1e-3", trials=1,
                        epochs=1))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No baseline trial" in out.stdout and "batch_size=1" in out.stdout
    (trial,) = trials(results)
    assert trial.state.name == "COMPLETE" and trial.params["batch_size"] == 2
