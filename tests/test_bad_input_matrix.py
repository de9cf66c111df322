"""docs/bad_input.md, row by row: each bad input gives one clear line and loses no finished trial.

Rows already covered elsewhere point at their test in the table; every other row is a test
here, named after the row. Faults mid-study are real (mini backend hooks, a full tmpfs, SIGINT)
and happen after trial 0 has finished: it must still be COMPLETE with the same value.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from conftest import ROOT, cli
from gg_optuna_helpers import open_storage
from gg_optuna_helpers.chrome import find_chrome
from test_gazegaussian_backend import contract
from test_study import _start, epochs_logged, run_args, status, trials, wait_for

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


def refused(out: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 with exactly one line, on stderr, holding ``words``; returns that line."""
    assert out.returncode == 2, out.stdout + out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in out.stdout + out.stderr
    for word in words:
        assert word in line, line
    return line


@pytest.fixture(scope="module")
def one_finished_trial(tmp_path_factory) -> Path:
    """A storage folder whose study has finished trial 0 (the baseline), run once per module."""
    base = tmp_path_factory.mktemp("template")
    out = cli(*run_args(base / "drive", "--pruner", "none", trials=1, epochs=2),
              env={"GG_OPTUNA_LOCAL_DIR": str(base / "local"), "GG_OPTUNA_THREADS": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    return base / "drive"


@pytest.fixture
def drive(one_finished_trial, tmp_path) -> Path:
    """This test's copy of that folder (its local live database starts empty: restored)."""
    shutil.copytree(one_finished_trial, tmp_path / "drive")
    return tmp_path / "drive"


def fault_in_trial_1(drive: Path, kind: str, epoch: int, *extra: str):
    """Run trial 1 with a real fault in its worker. ``--timeout 1`` ends the run after it (that
    the study goes on is test_study.py::test_faults_are_recorded_and_the_study_goes_on)."""
    before = finished_values(drive)
    assert list(before) == [0]
    faults = json.dumps({"1": {"kind": kind, "epoch": epoch}})
    out = cli(*run_args(drive, "--pruner", "none", "--backend-option", f"faults={faults}",
                        "--timeout", "1", *extra, trials=2, epochs=2))
    assert out.returncode == 0 and "Traceback" not in out.stdout + out.stderr, out.stderr
    assert finished_values(drive) == before  # trial 0: still COMPLETE, same value
    [failed] = [t for t in trials(drive) if t.number == 1]
    assert failed.state.name == "FAIL"
    return one_line(out.stdout, "Trial 1:"), failed.user_attrs["failure"]


# --- refused before any trial ------------------------------------------------------------------

def test_batch_size_beyond_the_backends_limit(tmp_path):
    repo = contract.make_checkout(tmp_path / "repo", "upstream")  # the real repo's limits
    out = cli("run", "--stage", "meshhead", "--backend", "gazegaussian", "--backend-option",
              f"repo={repo}", "--set", "batch_size=1,2", "--storage", str(tmp_path / "drive"))
    refused(out, "Parameter 'batch_size' allows only [1] on the gazegaussian backend, but got 2")
    assert not (tmp_path / "drive").exists()


@pytest.mark.parametrize("option, words", [
    ([], "needs a GazeGaussian checkout: pass --backend-option repo=PATH"),
    (["--backend-option", "repo=/nonexistent/GazeGaussian"],
     "There is no GazeGaussian checkout at /nonexistent/GazeGaussian"),
], ids=["no repo option", "no checkout there"])
def test_missing_repo_path(option, words, tmp_path):
    out = cli("run", "--stage", "meshhead", "--backend", "gazegaussian", *option, "--storage",
              str(tmp_path / "drive"))
    refused(out, words)
    assert not (tmp_path / "drive").exists()


def damage(db: Path, how: str) -> bytes:
    data = db.read_bytes()
    if how == "not optuna":  # a sound SQLite file of another program
        db.unlink()
        with sqlite3.connect(db) as c:
            c.execute("create table notes (text)")
        return db.read_bytes()
    bad = {"truncated": data[:3000], "empty": b"",
           "overwritten": data[:100] + b"\xde\xad" * ((len(data) - 100) // 2)}[how]
    db.write_bytes(bad)
    return bad


def tree(root: Path) -> dict[str, bytes | None]:
    """Every folder (None) and file (its bytes) under ``root``."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


# Issue 15: each refused input, with a finished study in the folder: exit 2, one line on
# stderr, and nothing created or changed anywhere (byte for byte). FILE is a plain file.
REFUSED = {
    # 3: storage URLs that keep nothing, and hints that point the right way
    "sqlite:///": (["--storage", "sqlite:///"], "keeps nothing on disk"),
    "sqlite:///:memory:": (["--storage", "sqlite:///:memory:"], "keeps nothing on disk"),
    "sqlite://relative.db": (["--storage", "sqlite://relative.db"], "sqlite:///relative/path"),
    "mysql:// without a driver": (["--storage", "mysql://u:pw@127.0.0.1/db"], "mysql+pymysql"),
    "sqlite URL of a folder": (["--storage", "sqlite:///DRIVE"], "is a folder, not a database"),
    # 2 and beyond: study names that are not one safe folder name
    "study name with ..": (["--study-name", "../mini_meshhead"], "cannot name a folder"),
    "absolute study name": (["--study-name", "/tmp/x"], "cannot name a folder"),
    "study name with a backslash": (["--study-name", "a\\b"], "cannot name a folder"),
    "unicode study name": (["--study-name", "études"], "cannot name a folder"),
    "300-character study name": (["--study-name", "x" * 300], "cannot name a folder"),
    "reserved study name": (["--study-name", "artifacts"], "cannot name a folder"),
    "MeshHead study name with /": (["--meshhead-study", "a/b"], "MeshHead study name"),
    # 2: a results folder holding another study's trials (a new storage, same results folder)
    "reused results folder": (["--storage", "sqlite:///TMP/b.db", "--results-dir", "DRIVE"],
                              "holds a trial of another study than 'mini_meshhead'"),
    # 4: errors that used to come after the study was created
    "seed beyond int64": (["--seed", str(2**64)], "seed must be a whole number from 0"),
    "negative seed": (["--seed", "-1"], "seed must be a whole number from 0"),
    "infinite range bound": (["--set", "lr=1e-5:inf"], "two finite numbers"),
    "results folder is a file": (["--results-dir", "FILE"], "is a file, not a folder"),
    "results folder inside a file": (["--results-dir", "FILE/sub"], "is a file, not a folder"),
    "storage folder is a file": (["--storage", "FILE"], "is a file, not a folder"),
    # 5: values that passed validation but could not run
    "non-number learning rate": (["--set", "lr=abc"], "takes numbers > 0, but got 'abc'"),
    "zero learning rate": (["--set", "lr=0"], "takes numbers > 0, but got 0"),
    "negative width": (["--set", "shape_mlp_hidden=-5"], "whole numbers > 0, but got -5"),
    "fractional width": (["--set", "shape_mlp_hidden=100.5:300"], "whole numbers > 0"),
    "unknown device": (["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
    "NaN timeout": (["--timeout", "nan"], "timeout must be a positive number of seconds"),
    "infinite min-delta": (["--min-delta", "inf"], "min_delta must be a finite number >= 0"),
    "unknown backend option": (["--backend-option", "depth=3"], "not known to the mini"),
    "missing MeshHead checkpoint": (["--backend-option", "meshhead_checkpoint=/nonexistent.pt"],
                                    "There is no MeshHead checkpoint file"),
    # 6: range syntax
    "range with three fields": (["--set", "lr=1e-5:1e-4:1e-3"], "two finite numbers"),
    "NaN range bound": (["--set", "lr=nan:1e-3"], "two finite numbers"),
    "empty range bound": (["--set", "lr=:1e-3"], "two finite numbers"),
    "non-ASCII digits": (["--set", "lr=\u0661:\u0662"], "two finite numbers"),
    "local folder is a file": (["--local-dir-is-a-file"], "is a file, not a folder"),
    "parameter changes kind on resume": (["--set", "batch_size=1:2"],
                                         "searched 'batch_size' as choices [1, 2]"),
}
OTHER_COMMANDS = {
    # 6 and 7: read-only commands, ports, artifact and report folders, check-repo
    "dashboard --port 0": (["dashboard", "--storage", "DRIVE", "--port", "0"],
                           "--port must be from 1 to 65535, but got 0"),
    "dashboard --port 70000": (["dashboard", "--storage", "DRIVE", "--port", "70000"],
                               "--port must be from 1 to 65535"),
    "dashboard artifacts is a file": (["dashboard", "--storage", "DRIVE", "--artifacts", "FILE"],
                                      "is a file: pass a folder"),
    "report --out is a file": (["report", "--storage", "DRIVE", "--study-name", "mini_meshhead",
                                "--out", "FILE"], "is a file, not a folder"),
    "report of no such study": (["report", "--storage", "DRIVE", "--study-name", "nope"],
                                "No study named 'nope'"),
    "status on a mistyped path": (["status", "--storage", "TMP/typo", "--study-name", "x"],
                                  "There is no storage folder"),
    "status of a sqlite file that is not there": (
        ["status", "--storage", "sqlite:///TMP/typo.db", "--study-name", "x"],
        "There is no database file"),
    "status of a study name with /": (["status", "--storage", "DRIVE", "--study-name", "a/b"],
                                      "cannot name a folder"),
    "check-repo of a file": (["check-repo", "FILE"], "is not a folder"),
    "check-repo of nothing": (["check-repo", "TMP/nothing"], "does not exist"),
}


@pytest.mark.parametrize("case", [*REFUSED, *OTHER_COMMANDS])
def test_refused_before_anything_is_written(case, drive, tmp_path):
    (tmp_path / "file").write_text("a plain file")
    env = {}
    if case in REFUSED:
        extra, words = REFUSED[case]
        if extra == ["--local-dir-is-a-file"]:
            extra, env = [], {"GG_OPTUNA_LOCAL_DIR": str(tmp_path / "file")}
        args = run_args(drive, trials=2, epochs=2)
        args = [a for a in args if a != str(drive)] if "--storage" in extra else args
        if "--storage" in extra:
            args.remove("--storage")
        args += extra
    else:
        args, words = OTHER_COMMANDS[case]
    args = [a.replace("DRIVE", str(drive)).replace("FILE", str(tmp_path / "file"))
            .replace("TMP", str(tmp_path)) for a in args]
    before = tree(tmp_path)
    refused(cli(*args, env=env), words)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("how", ["truncated", "overwritten", "empty"])
def test_corrupt_database_file(how, drive, tmp_path):
    """A damaged snapshot (an interrupted Drive sync) on a machine with no copy of its own is
    refused, and left as it is. (A file that is not SQLite at all: tests/test_storage.py.)"""
    db = drive / "mini_meshhead" / "optuna.db"
    bad = damage(db, how)
    out = cli(*run_args(drive, trials=2))
    refused(out, f"{db} is ", "this machine has no good copy of it", "move it away")
    assert db.read_bytes() == bad and not (tmp_path / "local").exists()


@pytest.mark.parametrize("how", ["empty", "not optuna"])
def test_a_damaged_newer_snapshot_never_replaces_a_good_live_copy(how, drive):
    """Issue 15, fault 1: the good live copy wins, the odd snapshot is kept aside byte for byte,
    one line says so, and the study goes on with trial 0 intact."""
    open_storage(drive, study_name="mini_meshhead").close()  # this machine has a live copy
    db = drive / "mini_meshhead" / "optuna.db"
    before = finished_values(drive)
    damaged = damage(db, how)
    os.utime(db, (time.time() + 60,) * 2)  # newer than the live copy
    out = cli(*run_args(drive, "--pruner", "none", trials=2, epochs=2))
    assert out.returncode == 0 and "Traceback" not in out.stdout + out.stderr, out.stderr
    assert one_line(out.stdout, "Kept ").endswith("is kept.")
    [aside] = db.parent.glob("optuna.db.set-aside-*")
    assert aside.read_bytes() == damaged
    after = finished_values(drive)
    assert after[0] == before[0] and len(after) == 2


def test_existing_study_with_another_direction(tmp_path):
    drive = tmp_path / "drive"
    storage = open_storage(drive, study_name="mini_meshhead")
    study = optuna.create_study(study_name="mini_meshhead", direction="maximize",
                                storage=storage.rdb)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    before = {t.number: t.value for t in study.trials}
    storage.snapshot(force=True)
    storage.close()
    storage.rdb.engine.dispose()
    out = cli(*run_args(drive, trials=3))
    refused(out, "Study 'mini_meshhead' already exists with direction ['maximize'], but these "
                 "studies minimize: choose another study name or storage.")
    after = optuna.load_study(study_name="mini_meshhead", storage=open_storage(drive).rdb)
    assert {t.number: t.value for t in after.trials} == before


def test_kaleido_without_chrome(drive, tmp_path):
    """The report with no Chrome at all (hidden in a mount namespace): HTML plots and one line."""
    chrome = find_chrome()
    hide = f"mount --bind /dev/null {chrome} && " if chrome else ""
    env = {k: v for k, v in os.environ.items() if k not in ("GG_OPTUNA_CHROME", "BROWSER_PATH")}
    before = finished_values(drive)
    report = ["python", "-m", "gg_optuna_helpers", "report", "--storage", str(drive),
              "--study-name", "mini_meshhead", "--out", str(tmp_path / "report")]
    out = subprocess.run(["unshare", "-m", "sh", "-c", hide + 'exec "$@"', "sh", *report],
                         cwd=ROOT, env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0 and "unshare" in out.stderr:
        pytest.skip(f"cannot hide Chrome here ({out.stderr.strip()}); CI runs as root")
    assert out.returncode == 0, out.stdout + out.stderr
    line = one_line(out.stdout, "HTML plots only")
    assert line == ("HTML plots only: no Chrome for PNG export: install one (Debian/Ubuntu: "
                    "`apt-get install chromium`; anywhere: `plotly_get_chrome -y`) or set "
                    "BROWSER_PATH, then export again.")
    plots = tmp_path / "report" / "plots"
    assert list(plots.glob("*.html")) and not list(plots.glob("*.png"))
    assert finished_values(drive) == before


# --- faults in the middle of a study -----------------------------------------------------------

def test_worker_out_of_memory(drive):
    line, failure = fault_in_trial_1(drive, "oom", 2)
    assert failure == "oom" and line.startswith("Trial 1: failed: oom (CUDA out of memory")


def test_nan_loss(drive):
    line, failure = fault_in_trial_1(drive, "nan", 2)
    assert failure == "diverged"
    assert line.startswith("Trial 1: failed: diverged (the loss is not finite at epoch 2 ")
    assert line.endswith("a lower learning rate may help)")


def test_worker_crash(drive):
    line, failure = fault_in_trial_1(drive, "crash", 1)
    assert failure == "crashed" and line == "Trial 1: failed: crashed (worker exited with code 86)"


def test_worker_hang_past_the_trial_timeout(drive):
    line, failure = fault_in_trial_1(drive, "hang", 1, "--trial-timeout", "5")
    assert failure == "timeout" and line == "Trial 1: failed: timeout (trial ran past 5 s)"


def test_ctrl_c_mid_trial(drive):
    """Ctrl-C in a terminal, or the notebook's stop button (both are SIGINT)."""
    before = finished_values(drive)
    proc = _start(run_args(drive, "--pruner", "none", trials=2, epochs=8))
    try:
        wait_for(lambda: epochs_logged(drive / "mini_meshhead" / "trial_0001") >= 1)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in output, output
    assert output.splitlines()[-1] == "interrupted"
    assert one_line(output, "Interrupted:") == (
        "Interrupted: the running trial was stopped and re-queued; run again to resume it from "
        "its last checkpoint.")
    assert finished_values(drive) == before
    states = {t.number: (t.state.name, t.user_attrs.get("failure")) for t in trials(drive)}
    assert states == {0: ("COMPLETE", None), 1: ("FAIL", "interrupted"), 2: ("WAITING", None)}


@pytest.mark.parametrize("damaged", [("last.pt",), ("last.pt", "best.pt")],
                         ids=["last", "last and best"])
def test_a_truncated_checkpoint(damaged, tmp_path):
    """Issue 15, fault 7: the retry resumes from the last good checkpoint (best.pt), or, with
    none left, fails with a line that names the damaged files; no finished trial is lost."""
    drive = tmp_path / "drive"
    args = run_args(drive, "--pruner", "none", *BASELINE_SPACE, trials=1, epochs=6)
    proc = _start(args)
    trial_dir = drive / "mini_meshhead" / "trial_0000"
    try:
        wait_for(lambda: epochs_logged(trial_dir) >= 3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a disconnect
        proc.wait()
    for name in damaged:
        path = trial_dir / name
        path.write_bytes(path.read_bytes()[:1000])  # cut short, as by an interrupted sync
    out = cli(*args)
    assert "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
    retry = next(t for t in trials(drive) if t.system_attrs.get("failed_trial") == 0)
    if len(damaged) == 1:
        assert out.returncode == 0 and retry.state.name == "COMPLETE", out.stdout + out.stderr
        assert 1 < retry.user_attrs["start_epoch"] <= epochs_logged(trial_dir)
        assert "is damaged (" in (trial_dir / "worker.log").read_text()
    else:
        line = one_line(out.stdout, f"Trial {retry.number} (baseline): failed")
        assert line.startswith(f"Trial {retry.number} (baseline): failed: crashed (checkpoint "
                               f"{trial_dir}/last.pt is damaged (")
        assert "best.pt is damaged" in line and line.endswith("from epoch 1)")


def test_a_half_created_study_is_completed_by_a_good_run(tmp_path):
    """Issue 15, fault 4: a study left without stage, backend and baseline (by a run refused
    after creating it, in older versions) gets them on the next good run."""
    drive = tmp_path / "drive"
    storage = open_storage(drive, study_name="mini_meshhead")
    optuna.create_study(study_name="mini_meshhead", storage=storage.rdb)
    storage.snapshot(force=True)
    storage.close()
    out = cli(*run_args(drive, "--pruner", "none", trials=1, epochs=1))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Trial 0 (baseline): value" in out.stdout
    assert status(drive)["stage"] == "meshhead" and status(drive)["backend"] == "mini"


def test_an_immutable_storage_folder_is_refused_and_left_alone(drive, tmp_path):
    """An unwritable folder for real (root writes anywhere, but not into an immutable one)."""
    if subprocess.run(["chattr", "+i", str(drive)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        before = tree(tmp_path)
        refused(cli(*run_args(drive, trials=2)), f"The storage folder {drive} is read-only")
        assert tree(tmp_path) == before
    finally:
        subprocess.run(["chattr", "-i", str(drive)], check=True)
