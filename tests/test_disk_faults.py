"""Disk faults (issue 20) and what a study keeps on disk (issue 19, item 9), on real file systems.

- A full disk: a size-limited tmpfs (``mount_tmpfs``) that the test fills with a file, at a known
  point (after a trial's first epoch line, or between runs).
- Drive vanishing: a dead FUSE mount over the folder. The test opens ``/dev/fuse``, mounts it and
  closes it at once, so the kernel answers every access with ENOTCONN, "Transport endpoint is not
  connected", as when Colab's Drive daemon dies. Unmounting it is Drive coming back, with the view
  it had before.

Each run is the real command line on the mini backend. What must hold: 0 finished trials lost
(each is in at least one readable copy), the running trial recorded with its reason and
re-queued, ONE line that says what happened and what to do, and the exit code (74).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial

from conftest import ROOT, cli
from gg_optuna_helpers import StudyConfig, open_storage, run_study
from gg_optuna_helpers.errors import EXIT_DISK_FAULT, DiskFault
from gg_optuna_helpers.notebook import show_status
from gg_optuna_helpers.objective import tidy_trial
from gg_optuna_helpers.sqlite_files import contents, read_only_url
from gg_optuna_helpers.storage import _live
from gg_optuna_helpers.trial_dirs import format_bytes
from test_study import epochs_logged, run_args, wait_for

pytestmark = pytest.mark.slow
# The baseline's own widths, fixed: every trial's checkpoint then has the same size.
FIXED = ["--set", "lr=1e-3", "--set", "batch_size=1", "--set", "shape_mlp_hidden=256",
         "--set", "pose_mlp_hidden=128", "--set", "eye_mlp_hidden=128", "--pruner", "none"]
STUDY = "mini_meshhead"


# --- the faults ----------------------------------------------------------------------------------

def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file; delete it to free the space again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (2**20, 4096, 1):  # tmpfs hands out pages: the last ones one by one
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError as e:
                assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def disconnect():
    """disconnect(folder): Drive's daemon dies under ``folder`` (every access: ENOTCONN);
    disconnect.back(folder): Drive is mounted again, as it was."""
    libc = ctypes.CDLL(None, use_errno=True)
    dead = []

    def gone(folder: Path) -> None:
        fd = os.open("/dev/fuse", os.O_RDWR)
        opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
        done = libc.mount(b"gg-dead-drive", str(folder).encode(), b"fuse.gg-dead-drive", 0, opts)
        why = os.strerror(ctypes.get_errno())
        os.close(fd)  # the daemon is gone: the kernel aborts the connection
        if done != 0:
            pytest.skip(f"cannot mount a FUSE file system here ({why}); CI runs as root")
        dead.append(folder)

    def back(folder: Path) -> None:
        subprocess.run(["umount", str(folder)], check=True)
        dead.remove(folder)

    gone.back = back
    try:
        os.stat("/dev/fuse")
    except OSError:
        pytest.skip("no /dev/fuse here")
    yield gone
    for folder in dead:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# --- reading what is kept ----------------------------------------------------------------------

def stored_trials(db: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials of one copy of the study database, read without writing anything."""
    assert contents(db)[0] is not None, contents(db)
    rdb = optuna.storages.RDBStorage(read_only_url(db))
    try:
        return optuna.load_study(study_name=STUDY, storage=rdb).get_trials()
    finally:
        rdb.engine.dispose()


def live_db(storage: Path, local: Path) -> Path:
    return _live(storage / STUDY / "optuna.db", local)


def finished(trials) -> dict[int, float]:
    return {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}


def stopped(out: subprocess.CompletedProcess | tuple[int, str, str], *words: str) -> str:
    """Exit 74 with exactly one line on stderr holding ``words``, nothing about it on stdout."""
    code, stdout, stderr = out if isinstance(out, tuple) else (out.returncode, out.stdout,
                                                              out.stderr)
    assert code == EXIT_DISK_FAULT, stdout + stderr
    assert "Traceback" not in stdout + stderr, stdout + stderr
    [line] = stderr.strip().splitlines()
    for word in words:
        assert word in line, line
    assert not [ln for ln in stdout.splitlines() if "space" in ln or "reached" in ln], stdout
    return line


def run_until(args, trial_dir: Path, fault) -> tuple[int, str, str]:
    """Run ``args``; once ``trial_dir`` has logged its first epoch, ``fault()``; wait for the
    end. (Trial 1 has 7 epochs left then, seconds of work: the fault strikes mid-trial.)"""
    proc = subprocess.Popen(["python", "-m", "gg_optuna_helpers", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        wait_for(lambda: epochs_logged(trial_dir) >= 1)
        fault()
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stdout, stderr


def resumed(storage: Path, number: int = 1):
    """The retry of trial ``number``: COMPLETE, resumed after the epoch it had saved."""
    retry = next(t for t in open_study_trials(storage) if t.system_attrs.get("failed_trial")
                 == number and t.state == TrialState.COMPLETE)
    assert retry.user_attrs["start_epoch"] > 1, retry.user_attrs
    return retry


def open_study_trials(storage: Path):
    rdb = open_storage(storage).rdb
    return optuna.load_study(study_name=STUDY, storage=rdb).get_trials()


# --- issue 19 (f): what a finished study keeps ------------------------------------------------

def checkpoints(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".pt" in p.name)


def test_a_finished_study_keeps_best_pt_of_its_complete_trials_only(tmp_path, capsys):
    """Issue 19 (f): after the study, each COMPLETE trial's folder holds best.pt (weights, no
    optimizer state) and no last.pt, a failed one no checkpoint at all; no checkpoint is copied
    as an artifact; status says what the folder uses. (Stage 2 trains from such a best.pt:
    test_study.py::test_gazegaussian_stage_uses_the_best_meshhead, test_real_repo.py.)"""
    drive = tmp_path / "drive"
    crash = json.dumps({"1": {"kind": "crash", "epoch": 2}})  # after epoch 1's checkpoints
    out = cli(*run_args(drive, *FIXED, "--backend-option", f"faults={crash}", trials=2, epochs=3))
    assert out.returncode == 0, out.stdout + out.stderr
    trials = open_study_trials(drive)
    assert [(t.state.name, t.user_attrs.get("failure")) for t in trials] == [
        ("COMPLETE", None), ("FAIL", "crashed"), ("COMPLETE", None)]
    for trial in trials:
        kept = ["best.pt"] if trial.state == TrialState.COMPLETE else []
        assert checkpoints(Path(trial.user_attrs["trial_dir"])) == kept, trial.number
    best = torch.load(drive / STUDY / "trial_0000" / "best.pt", weights_only=False)
    assert set(best["trainer"]) == {"model"} and best["epoch"] >= 1
    rdb = open_storage(drive).rdb
    names = {a.filename for t in trials for a in optuna.artifacts.get_all_artifact_meta(
        t, storage=rdb)}
    assert names == {"preview.png"}

    status = cli("status", "--storage", str(drive), "--study-name", STUDY)
    used = sum(p.stat().st_size for p in (drive / STUDY).rglob("*") if p.is_file())
    free = os.statvfs(drive).f_bavail * os.statvfs(drive).f_frsize
    [line] = [ln for ln in status.stdout.splitlines() if ln.startswith("Disk: ")]
    assert line.startswith(f"Disk: {format_bytes(used)} in {drive / STUDY}, "), line
    assert line.endswith(" free there.") and abs(parse_bytes(line.split(", ")[1]) - free) < 2**30
    show_status(StudyConfig(stage="meshhead", storage=str(drive), study_name=STUDY))  # notebooks
    assert line.split(", ")[0] in capsys.readouterr().out


def parse_bytes(text: str) -> float:
    number = text.split()[0]
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10), ("B", 1)):
        if number.endswith(unit):
            return float(number[:-len(unit)]) * scale
    raise ValueError(text)


BOTH = ["best.pt", "last.pt"]


@pytest.mark.parametrize("state, failure, kept", [
    (TrialState.COMPLETE, None, ["best.pt"]),
    (TrialState.PRUNED, None, []),  # PRUNED is final: nothing resumes it
    *[(TrialState.FAIL, reason, []) for reason in ("crashed", "oom", "diverged", "timeout")],
    *[(TrialState.FAIL, reason, BOTH) for reason in ("interrupted", "disk_full", "disk_gone")],
    (TrialState.FAIL, None, BOTH),  # disconnected: the heartbeat re-queues it
    (TrialState.RUNNING, None, BOTH),
])
def test_which_checkpoints_an_ended_trial_keeps(state, failure, kept, tmp_path):
    folder = tmp_path / "trial_0003"
    folder.mkdir()
    for name in ("best.pt", "last.pt"):
        (folder / name).write_bytes(b"checkpoint")
    (folder / ".last.pt.tmp").write_bytes(b"cut short by a kill")
    attrs = {"trial_dir": str(folder), **({"failure": failure} if failure else {})}
    trial = create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None,
                         user_attrs=attrs)
    tidy_trial(trial)
    assert checkpoints(folder) == (kept if kept != BOTH else [".last.pt.tmp", *BOTH])


# --- issue 20: full disks ----------------------------------------------------------------------

@pytest.mark.parametrize("where", ["drive", "local"])
def test_a_full_disk_stops_the_study_and_the_trial_resumes_once_there_is_room(
        where, tmp_path, mount_tmpfs):
    """A checkpoint write fails for want of space, on Drive (the Colab default: trial folders in
    the storage folder, so the snapshot fails too) or on a local --results-dir (Drive is fine).
    The trial is recorded disk_full and re-queued, the study stops; once space is freed, the
    same command resumes the trial after its last saved epoch."""
    disk = mount_tmpfs("16m")
    storage = disk if where == "drive" else tmp_path / "drive"
    args = run_args(storage, *FIXED, *([] if where == "drive" else ["--results-dir", str(disk)]),
                    trials=2, epochs=8)
    trial_1, fillers = disk / STUDY / "trial_0001", []
    out = run_until(args, trial_1, lambda: fillers.append(fill(disk)))
    live, snapshot = live_db(storage, tmp_path / "local"), storage / STUDY / "optuna.db"
    kept = (f"this machine's live copy {live} (the snapshot {snapshot} cannot be written)"
            if where == "drive" else str(snapshot))
    stopped(out, f"Stopped: no space left on the disk of {trial_1}: free some space there, then "
                 "run again; trial 1 is re-queued to resume from its last checkpoint, and every "
                 f"finished trial is kept in {kept}.")
    trials = stored_trials(live)
    assert [(t.state.name, t.user_attrs.get("failure")) for t in trials] == [
        ("COMPLETE", None), ("FAIL", "disk_full"), ("WAITING", None)]
    assert trials[2].system_attrs["failed_trial"] == 1
    assert finished(stored_trials(snapshot)) == finished(trials)  # readable, trial 0 in it
    saved = torch.load(trial_1 / "last.pt", weights_only=False)["epoch"]

    fillers[0].unlink()  # space freed: run the same command again
    again = cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert resumed(storage).user_attrs["start_epoch"] == saved + 1
    assert len(finished(stored_trials(snapshot))) == 2


def test_a_full_local_disk_under_the_live_database_stops_the_study_in_one_line(
        tmp_path, mount_tmpfs, monkeypatch):
    """The local disk that holds the live database and the trial folders fills up: Optuna itself
    cannot record the trial then. One line; Drive's snapshot holds every finished trial; once
    space is freed, the same command resumes the trial (it was left RUNNING: re-queued)."""
    disk, drive = mount_tmpfs("16m"), tmp_path / "drive"
    monkeypatch.setenv("GG_OPTUNA_LOCAL_DIR", str(disk / "local"))
    args = run_args(drive, *FIXED, "--results-dir", str(disk), trials=2, epochs=8)
    fillers = []
    out = run_until(args, disk / STUDY / "trial_0001", lambda: fillers.append(fill(disk)))
    stopped(out, f"Stopped: no space left for the study database in {disk / 'local'} (database "
                 "or disk is full): free some space there, then run again; the trial that was "
                 "running then resumes from its last checkpoint, and the snapshot holds every "
                 "finished trial.")
    snapshot = drive / STUDY / "optuna.db"
    assert list(finished(stored_trials(snapshot))) == [0]
    assert list(finished(stored_trials(live_db(drive, disk / "local")))) == [0]

    fillers[0].unlink()
    again = cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    resumed(drive)
    assert len(finished(stored_trials(snapshot))) == 2


def test_a_full_drive_stops_the_study_after_the_trial_whose_snapshot_fails(tmp_path, mount_tmpfs):
    """Drive fills up while trial 1 trains on a local --results-dir: the trial goes on (the
    snapshot is retried), then the study stops, with every finished trial in the live copy.
    Run again while Drive is full: one line, nothing starts. Once space is freed, the same
    command on this machine writes them to Drive."""
    drive, results = mount_tmpfs("4m"), tmp_path / "results"
    args = run_args(drive, *FIXED, "--results-dir", str(results), trials=2, epochs=8)
    fillers = []
    code, stdout, stderr = out = run_until(args, results / STUDY / "trial_0001",
                                           lambda: fillers.append(fill(drive)))
    live, snapshot = live_db(drive, tmp_path / "local"), drive / STUDY / "optuna.db"
    stopped(out, f"Stopped after trial 1: no space left on the disk of {snapshot}: free some "
                 f"space there, then run again on this machine: its live copy {live} holds every "
                 "finished trial until the snapshot can be written.")
    assert "Trial 1: value" in stdout
    assert list(finished(stored_trials(live))) == [0, 1]
    assert list(finished(stored_trials(snapshot))) == [0]  # the older copy, still readable

    # run again while Drive is still full (the lease fits in the page its last one freed)
    stopped(cli(*args), f"Not started: no space left on the disk of {snapshot}: free some space "
                        f"there, then run again on this machine: its live copy {live} holds")
    assert list(finished(stored_trials(live))) == [0, 1]

    fillers[0].unlink()
    again = cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert list(finished(stored_trials(snapshot))) == [0, 1]  # written there at last


# --- issue 20: Drive vanishing, and coming back ------------------------------------------------

@pytest.mark.parametrize("where", ["drive", "local"])
def test_drive_vanishing_mid_run_stops_the_study_and_coming_back_resumes_it(
        where, tmp_path, disconnect):
    """Drive's daemon dies while trial 1 trains ('Transport endpoint is not connected'). With
    the trial folders on Drive, the trial is recorded disk_gone and re-queued at once; with them
    on local disk, it finishes and the study stops at its snapshot. Running again while Drive is
    gone says so in one line; once it is back, the same command finishes the study."""
    drive = tmp_path / "drive"  # Drive's mount point
    drive.mkdir()
    results = drive if where == "drive" else tmp_path / "results"
    args = run_args(drive, *FIXED, *([] if where == "drive" else ["--results-dir", str(results)]),
                    trials=2, epochs=8)
    trial_1 = results / STUDY / "trial_0001"
    out = run_until(args, trial_1, lambda: disconnect(drive))
    live, snapshot = live_db(drive, tmp_path / "local"), drive / STUDY / "optuna.db"
    gone = "cannot be reached (Transport endpoint is not connected): mount its disk again"
    if where == "drive":
        stopped(out, f"Stopped: {trial_1} {gone}, then run again; trial 1 is re-queued to resume "
                     "from its last checkpoint, and every finished trial is kept in this "
                     f"machine's live copy {live} (the snapshot {snapshot} cannot be written).")
        expected = [("COMPLETE", None), ("FAIL", "disk_gone"), ("WAITING", None)]
    else:
        stopped(out, f"Stopped after trial 1: {snapshot} {gone}, then run again on this "
                     f"machine: its live copy {live} holds every finished trial until the "
                     "snapshot can be written.")
        expected = [("COMPLETE", None), ("COMPLETE", None)]
    assert [(t.state.name, t.user_attrs.get("failure")) for t in stored_trials(live)] == expected

    stopped(cli(*args), f"{drive} {gone}, then run again.")  # still gone: one line, nothing run
    with pytest.raises(DiskFault) as notebook:  # a notebook's run cell: the same one line
        run_study(StudyConfig(stage="meshhead", storage=str(drive), n_trials=2, max_epochs=8))
    assert f"{drive} {gone}, then run again." in str(notebook.value)
    assert "\n" not in str(notebook.value)
    disconnect.back(drive)  # Drive is back, as it was before it went
    assert list(finished(stored_trials(snapshot))) == [0]
    again = cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(finished(stored_trials(snapshot))) == 2
    if where == "drive":
        resumed(drive)


def test_a_snapshot_fails_while_drive_is_gone_and_works_once_it_is_back(tmp_path, disconnect):
    """Within a trial (the snapshot every 60 s): a failed snapshot is kept as the storage's
    error, not raised; the first one after Drive is back writes the live copy over the stale
    view, and the error is cleared (so the study goes on)."""
    drive = tmp_path / "drive"
    drive.mkdir()
    storage = open_storage(drive, study_name="a")
    try:
        study = optuna.create_study(study_name="a", storage=storage.rdb)
        study.optimize(lambda t: 1.0, n_trials=1)
        assert storage.snapshot(force=True) and storage.snapshot_error is None
        disconnect(drive)
        study.optimize(lambda t: 2.0, n_trials=1)
        assert storage.snapshot(force=True) is False
        assert storage.snapshot_error.errno == errno.ENOTCONN
        disconnect.back(drive)
        assert contents(drive / "a" / "optuna.db")[0] == {"a": 1}  # the view from before
        assert storage.snapshot(force=True) and storage.snapshot_error is None
        assert contents(drive / "a" / "optuna.db")[0] == {"a": 2}
    finally:
        storage.close()


# --- issue 19: the free-space check -------------------------------------------------------------

def test_the_checkpoints_a_study_will_write_are_checked_against_the_free_space(
        tmp_path, mount_tmpfs):
    """A new study has no checkpoint to measure: after its first trial, one line warns that the
    trials left may not fit. A run whose disk cannot hold even one trial's checkpoints is
    refused before any trial, in one sentence."""
    disk = mount_tmpfs("8m")
    args = run_args(tmp_path / "drive", *FIXED, "--results-dir", str(disk), "--timeout", "1",
                    trials=40, epochs=2)  # --timeout: one trial, then the run ends
    first = cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    [warning] = [ln for ln in first.stdout.splitlines() if " free" in ln]
    assert warning.startswith(f"{disk / STUDY} has ") and (
        "free, and the 39 trials left may write about ") in warning, warning
    assert warning.endswith("of checkpoints: free some space there, or the study stops as "
                            "disk_full when it is full (its running trial then resumes once "
                            "there is room).")

    filler = fill(disk)
    os.truncate(filler, filler.stat().st_size - 400 * 2**10)  # 400KB left
    refused = cli(*args)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: {disk / STUDY} has ") and (
        "free, but one trial of this study writes more than ") in line, line
    assert line.endswith("free some space there or choose another results folder "
                         "(--results-dir), then run again.")
    assert len(open_study_trials(tmp_path / "drive")) == 1  # nothing started
