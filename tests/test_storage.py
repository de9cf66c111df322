"""One SQLite file per study, live on local disk with durable snapshots, held by a lease;
URLs as given; reading writes nothing; bad storage refused in one line."""

import json
import os
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from gg_optuna_helpers import ConfigError, open_storage

# trials are asked and failed by hand here, as killed runs leave them
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")


def _study_count(db):
    with sqlite3.connect(db) as c:
        return c.execute("select count(*) from studies").fetchone()[0]


def _open(tmp_path, study="a", **kw):
    """The study's storage opened to run it, the study created in it."""
    s = open_storage(tmp_path / "drive", study_name=study, **kw)
    optuna.create_study(study_name=study, storage=s.rdb, load_if_exists=True)
    return s


def _close(s):
    s.snapshot(force=True)
    s.close()
    s.rdb.engine.dispose()


def test_live_file_is_local_and_snapshot_lands_in_the_study_folder(tmp_path):
    durable = tmp_path / "drive"
    s = _open(tmp_path)
    assert s.durable == durable / "a" / "optuna.db" and s.live.is_relative_to(tmp_path / "local")
    assert s.snapshot() is False  # throttled: the opening snapshot was just taken
    assert s.snapshot(force=True) is True
    assert _study_count(s.durable) == 1
    assert not list(durable.rglob("*.tmp"))  # the temporary copy was renamed away
    assert json.loads((durable / "a" / "lease.json").read_text())["pid"] == os.getpid()
    s.close()
    assert not (durable / "a" / "lease.json").exists()  # released


def test_new_machine_restores_from_the_snapshot(tmp_path):
    s = _open(tmp_path)
    _close(s)
    s.live.unlink()  # a fresh Colab VM: no local file
    again = open_storage(tmp_path / "drive", study_name="a")
    assert optuna.load_study(study_name="a", storage=again.rdb).study_name == "a"


def _finish(storage, study, n):
    st = optuna.load_study(study_name=study, storage=storage.rdb)
    st.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)


def test_newer_copy_wins_only_when_it_holds_at_least_as_much(tmp_path):
    s = _open(tmp_path)
    _finish(s, "a", 2)
    _close(s)
    _finish(s, "a", 1)  # after the snapshot: local is newer, with 3 trials
    again = _open(tmp_path)
    assert len(optuna.load_study(study_name="a", storage=again.rdb).trials) == 3
    _close(again)
    # a newer snapshot that holds more (another machine went on) replaces the live copy
    past = time.time() - 3600
    os.utime(again.live, (past, past))
    _finish(again, "a", 0)
    with sqlite3.connect(again.durable) as c:  # the snapshot gains a finished trial
        c.execute("insert into trials (number, study_id, state, datetime_start) "
                  "select 3, study_id, 'COMPLETE', datetime('now') from studies")
    os.utime(again.durable, None)
    third = _open(tmp_path)
    assert len(optuna.load_study(study_name="a", storage=third.rdb).trials) == 4
    _close(third)


@pytest.mark.parametrize("odd", ["empty", "not optuna", "fewer trials"])
def test_an_odd_newer_snapshot_is_kept_aside_and_the_live_copy_wins(odd, tmp_path):
    """Issue 15, fault 1: a newer snapshot that is empty, or SQLite but not Optuna, or holds
    less, used to replace the good live copy and then be written back over Drive. (Its one
    line: test_bad_input_matrix.py::test_a_damaged_newer_snapshot_never_replaces_...)"""
    s = _open(tmp_path)
    _finish(s, "a", 2)
    _close(s)
    live_before = s.live.read_bytes()
    if odd == "empty":
        s.durable.write_bytes(b"")
    elif odd == "not optuna":
        s.durable.unlink()
        with sqlite3.connect(s.durable) as c:
            c.execute("create table notes (x)")
    else:
        with sqlite3.connect(s.durable) as c:
            c.execute("delete from trials where number = 1")
    odd_bytes = s.durable.read_bytes()
    os.utime(s.durable, (time.time() + 60,) * 2)  # newer than the live copy
    again = open_storage(tmp_path / "drive", study_name="a")
    assert len(optuna.load_study(study_name="a", storage=again.rdb).trials) == 2
    [aside] = (tmp_path / "drive" / "a").glob("optuna.db.set-aside-*")
    assert aside.read_bytes() == odd_bytes  # kept, byte for byte
    _close(again)
    assert _study_count(again.durable) == 1 and again.live.read_bytes() != b""
    assert len(live_before) > 0


def test_a_snapshot_holding_more_is_not_written_over(tmp_path):
    """Same rule before writing over Drive: a snapshot with trials the live copy lacks is
    kept aside, not overwritten."""
    s = _open(tmp_path)
    _finish(s, "a", 1)
    _close(s)
    again = _open(tmp_path)
    with sqlite3.connect(again.durable) as c:  # someone else's trial lands in the snapshot
        c.execute("insert into trials (number, study_id, state, datetime_start) "
                  "select 5, study_id, 'COMPLETE', datetime('now') from studies")
    theirs = again.durable.read_bytes()
    assert again.snapshot(force=True) is True
    [aside] = (tmp_path / "drive" / "a").glob("optuna.db.set-aside-*")
    assert aside.read_bytes() == theirs
    _close(again)


def test_another_runtime_is_refused_naming_the_holder_and_a_stale_lease_is_taken(tmp_path):
    s = _open(tmp_path)
    with pytest.raises(ConfigError) as e:  # another VM: another local live folder
        open_storage(tmp_path / "drive", study_name="a", local_dir=tmp_path / "vm2")
    line = str(e.value)
    assert f"pid {os.getpid()}" in line and "docs/workers.md" in line and "PostgreSQL" in line
    assert "\n" not in line
    other = open_storage(tmp_path / "drive", study_name="b", local_dir=tmp_path / "vm2")
    other.close()  # another study of the same folder is free
    lease = tmp_path / "drive" / "a" / "lease.json"
    record = json.loads(lease.read_text())
    lease.write_text(json.dumps(dict(record, beat=time.time() - 3600)))  # silent for an hour
    taken = open_storage(tmp_path / "drive", study_name="a", local_dir=tmp_path / "vm2")
    assert s.lease.beat() is False and s.snapshot(force=True) is False  # the old holder stops
    taken.close()
    s.close()


def test_reading_writes_nothing(tmp_path):
    s = _open(tmp_path)
    _finish(s, "a", 2)
    _close(s)
    drive = tmp_path / "drive"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in drive.rglob("*") if p.is_file()}
    for reader in (open_storage(drive), open_storage(drive, study_name="a", read_only=True)):
        assert len(optuna.load_study(study_name="a", storage=reader.rdb).trials) == 2
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in drive.rglob("*") if p.is_file()}
    assert after == before
    with pytest.raises(ConfigError, match="There is no storage folder"):
        open_storage(tmp_path / "typo", study_name="a", read_only=True)
    assert not (tmp_path / "typo").exists()


def test_the_old_shared_file_is_read_and_moved_out_study_by_study(tmp_path):
    drive = tmp_path / "drive"
    drive.mkdir()
    old = optuna.storages.RDBStorage(f"sqlite:///{drive / 'optuna.db'}")
    for name in ("a", "b"):
        optuna.create_study(study_name=name, storage=old).optimize(
            lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    old.engine.dispose()
    legacy = (drive / "optuna.db").read_bytes()
    view = open_storage(drive)  # reading: both studies, nothing moved
    assert {x.study_name for x in optuna.get_all_study_summaries(view.rdb)} == {"a", "b"}
    s = open_storage(drive, study_name="a")  # running a: a gets its own file
    assert [x.study_name for x in optuna.get_all_study_summaries(s.rdb)] == ["a"]
    assert len(optuna.load_study(study_name="a", storage=s.rdb).trials) == 2
    _close(s)
    assert (drive / "optuna.db").read_bytes() == legacy  # the old file is kept as it was
    assert len(optuna.load_study(study_name="b", storage=open_storage(drive).rdb).trials) == 2


def test_a_damaged_old_shared_file_does_not_block_studies_with_their_own_file(tmp_path):
    _close(_open(tmp_path, "a", local_dir=tmp_path / "first"))
    (tmp_path / "drive" / "optuna.db").write_text("this is not a database")
    s = _open(tmp_path, "a", local_dir=tmp_path / "second")  # a new machine: no live copies
    _close(s)
    reader = open_storage(tmp_path / "drive", study_name="a", read_only=True,
                          local_dir=tmp_path / "third")
    assert optuna.load_study(study_name="a", storage=reader.rdb).study_name == "a"
    with pytest.raises(ConfigError, match="is not an SQLite database"):  # it still counts
        open_storage(tmp_path / "drive", study_name="b", local_dir=tmp_path / "third")


HOLDER = """
import os, sys, time, optuna
from gg_optuna_helpers import open_storage
s = open_storage(sys.argv[1], study_name="a", local_dir=sys.argv[2])
study = optuna.create_study(study_name="a", storage=s.rdb)
study.ask()
s.snapshot(force=True)
study.ask()  # in the live copy only
durable = os.path.join(sys.argv[1], "a", "optuna.db")
os.utime(durable, (time.time() + 60, time.time() + 60))  # the snapshot looks newer
print("ready", flush=True)
time.sleep(60)
"""


def test_a_second_worker_here_does_not_restore_over_the_shared_live_copy(tmp_path):
    """Two workers on one machine share the live copy; the second must not copy the (older)
    snapshot over it while the first writes it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "drive"),
                               str(tmp_path / "local")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        second = open_storage(tmp_path / "drive", study_name="a", local_dir=tmp_path / "local")
        assert len(optuna.load_study(study_name="a", storage=second.rdb).trials) == 2
        _close(second)
    finally:
        holder.kill()
        holder.wait()


def test_sqlite_url_is_used_as_given(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    s = open_storage(url)
    assert s.url == url and s.durable is None and s.snapshot(force=True) is False


@pytest.mark.parametrize("where, words", [
    ("sqlite:////nonexistent/folder/x.db", ["does not exist"]),
    ("sqlite:///", ["keeps nothing on disk"]),
    ("sqlite:///:memory:", ["keeps nothing on disk"]),
    ("sqlite://relative.db", ["three", "sqlite:///relative/path.db"]),
    ("sqlite:////tmp", ["is a folder, not a database file"]),
    ("sqlite:////etc/hostname/x.db", ["is not a folder"]),
    ("mysql://u:secret@127.0.0.1:1/db", ["PyMySQL", "mysql+pymysql://"]),
    ("redis://localhost/0", ["not supported", "postgresql://"]),
    ("postgresql://u:secret@127.0.0.1:1/db", ["Could not open", "***"]),
])
def test_bad_urls(where, words):
    with pytest.raises(ConfigError) as e:
        open_storage(where)
    assert all(w in str(e.value) for w in words)
    assert "secret" not in str(e.value)


def test_corrupt_database_file(tmp_path):
    (tmp_path / "optuna.db").write_text("this is not a database")
    with pytest.raises(ConfigError, match="is not an SQLite database"):
        open_storage(tmp_path)


def test_read_only_folder(mount_tmpfs):
    with pytest.raises(ConfigError, match="read-only"):
        open_storage(mount_tmpfs(read_only=True), study_name="a")


def test_drive_not_mounted():
    if os.path.isdir("/content/drive/MyDrive"):
        pytest.skip("Drive is mounted here")
    with pytest.raises(ConfigError, match="Drive is not mounted"):
        open_storage("/content/drive/MyDrive/gg_optuna")


def test_failed_snapshot_does_not_raise(tmp_path, mount_tmpfs):
    tiny = mount_tmpfs("16k")
    s = open_storage(tiny, study_name="a")
    study = optuna.create_study(study_name="a", storage=s.rdb)
    for i in range(30):  # grow the live database past the tiny file system
        study.set_user_attr(f"k{i}", "x" * 2000)
    try:
        assert s.snapshot(force=True) is False  # disk full: logged, not raised
    finally:
        s.close()  # stops the lease's renewal thread before the file system goes away


# -- exact counts after any kill (issue 20): dead trials found at open ----------------------

def _dead_run(tmp_path, *, beat: bool, epochs: int = 2, study="a"):
    """What a run killed mid-trial leaves: a RUNNING trial with ``epochs`` reported, with a
    heartbeat, or without one (killed between the trial's creation and its first beat)."""
    s = _open(tmp_path, study)
    trial = optuna.load_study(study_name=study, storage=s.rdb).ask({"x": _X})
    for epoch in range(1, epochs + 1):
        trial.report(1.0 / epoch, epoch)
    if beat:
        s.rdb.record_heartbeat(trial._trial_id)
    _close(s)  # the kernel drops a killed process's locks the same way
    return trial.number


_X = optuna.distributions.FloatDistribution(0, 1)


def _states(storage, study="a"):
    return [(t.number, t.state.name, t.system_attrs.get("failed_trial"))
            for t in optuna.load_study(study_name=study, storage=storage.rdb).get_trials()]


@pytest.mark.parametrize("beat", [True, False], ids=["beat", "never_beat"])
def test_opened_alone_every_running_trial_is_dead_and_requeued_at_once(beat, tmp_path):
    """The flake of test_torture (9 COMPLETE, 1 RUNNING for ever): a trial killed before its
    first heartbeat is one Optuna's staleness check never sees. Opened alone (the lease, no
    other process of this runtime), no trial can be alive: no grace period to wait either."""
    from gg_optuna_helpers.recovery import recover_dead_trials

    number = _dead_run(tmp_path, beat=beat)
    again = open_storage(tmp_path / "drive", study_name="a", heartbeat_interval=60)
    assert [t.state.name for t in again.trials_alone] == ["RUNNING"]
    study = optuna.load_study(study_name="a", storage=again.rdb)
    began = time.monotonic()
    recover_dead_trials(study, again)
    assert time.monotonic() - began < 5  # the grace period here is 180 s
    assert _states(again) == [(number, "FAIL", None), (number + 1, "WAITING", number)]
    retry = study.get_trials()[-1]
    assert retry.intermediate_values == {1: 1.0, 2: 0.5}  # it resumes after epoch 2
    recover_dead_trials(study, again)  # a second start changes nothing
    assert len(study.get_trials()) == 2
    _close(again)


def test_a_kill_between_failing_a_trial_and_queuing_its_retry_is_repaired(tmp_path):
    from gg_optuna_helpers.recovery import recover_dead_trials

    number = _dead_run(tmp_path, beat=True)
    s = open_storage(tmp_path / "drive", study_name="a")
    s.rdb.set_trial_state_values(s.trials_alone[0]._trial_id, optuna.trial.TrialState.FAIL)
    _close(s)  # killed before the retry was queued
    again = open_storage(tmp_path / "drive", study_name="a")
    study = optuna.load_study(study_name="a", storage=again.rdb)
    recover_dead_trials(study, again)
    recover_dead_trials(study, again)
    assert _states(again) == [(number, "FAIL", None), (number + 1, "WAITING", number)]
    _close(again)


HERE_TOO = """
import sys, time, optuna
from gg_optuna_helpers import open_storage
s = open_storage(sys.argv[1], study_name="a", local_dir=sys.argv[2], heartbeat_interval=1)
study = optuna.load_study(study_name="a", storage=s.rdb)
trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
print(s.trials_alone is None, flush=True)
while True:
    s.rdb.record_heartbeat(trial._trial_id)
    time.sleep(0.5)
"""


def test_another_live_process_here_keeps_its_trial_and_a_killed_one_counts_for_nothing(tmp_path):
    """A second worker of this runtime (same live copy) is not alone: the heartbeat decides, so
    its live trial is left alone. SIGKILLed, it holds nothing: the next opener is alone."""
    from gg_optuna_helpers.recovery import recover_dead_trials

    _close(_open(tmp_path))
    worker = subprocess.Popen([sys.executable, "-c", HERE_TOO, str(tmp_path / "drive"),
                               str(tmp_path / "local")], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "False"  # it was alone: this process left
        second = open_storage(tmp_path / "drive", study_name="a", heartbeat_interval=1)
        assert second.trials_alone is None
        recover_dead_trials(optuna.load_study(study_name="a", storage=second.rdb), second)
        assert _states(second) == [(0, "RUNNING", None)]  # alive: it beats
        _close(second)
        second.durable.unlink()  # the folder lost the study; the live copy is in use here
        with pytest.raises(ConfigError, match=r"^Another process on this machine runs study 'a' "
                           r"from its live copy .*, so fresh=True cannot set it aside: stop "
                           r"that process first\.$"):
            open_storage(tmp_path / "drive", study_name="a", fresh=True)
    finally:
        worker.kill()
        worker.wait()
    third = open_storage(tmp_path / "drive", study_name="a")
    assert [t.state.name for t in third.trials_alone] == ["RUNNING"]
    _close(third)


def test_with_a_url_a_trial_that_never_beat_is_dead_after_one_grace_period(tmp_path):
    """No lease on a database URL (several workers): a RUNNING trial seen with no heartbeat at
    all, and still without one after the grace period, is dead; a beating one is not."""
    from optuna.storages._heartbeat import HeartbeatThread

    from gg_optuna_helpers.recovery import recover_dead_trials

    url = f"sqlite:///{tmp_path / 'x.db'}"
    s = open_storage(url, heartbeat_interval=1)
    study = optuna.create_study(study_name="a", storage=s.rdb)
    silent, alive = study.ask({"x": _X}), study.ask({"x": _X})
    beating = HeartbeatThread(alive._trial_id, s.rdb)
    beating.start()
    try:
        began = time.monotonic()
        recover_dead_trials(study, open_storage(url, heartbeat_interval=1))
        assert 3 <= time.monotonic() - began < 10  # grace 3 s + one interval
        assert _states(s) == [(0, "FAIL", None), (1, "RUNNING", None), (2, "WAITING", 0)]
    finally:
        beating.join()
    del silent


def test_a_dead_trial_is_retried_while_it_progresses_and_given_up_when_it_never_does(tmp_path):
    """Optuna gives a trial up after max_retry (3) deaths, however far each got: the 4th
    disconnect of a long trial lost all of it. Here only retries that add no epoch count."""
    s = open_storage(f"sqlite:///{tmp_path / 'x.db'}", heartbeat_interval=1, max_retry=3)
    study = optuna.create_study(study_name="a", storage=s.rdb)
    retry = s.rdb.get_heartbeat_stale_trial_callback()
    trial = study.ask({"x": _X})
    for epoch in range(1, 7):  # six deaths, each after one more epoch: always retried
        trial.report(0.5, epoch)
        s.rdb.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        retry(study, study.get_trials()[-1])
        trial = study.ask()
        assert study.get_trials()[-1].system_attrs["failed_trial"] == 0
    for _ in range(4):  # then four deaths before any new epoch: the fourth gives it up
        s.rdb.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        retry(study, study.get_trials()[-1])
        if study.get_trials()[-1].state.name == "WAITING":
            trial = study.ask()
    states = [t.state.name for t in study.get_trials()]
    assert states == ["FAIL"] * 10 and study.get_trials()[-1].system_attrs["retry_stalled"] == 3


def test_a_retry_interrupted_again_is_queued_once(tmp_path):
    """Ctrl-C twice in one trial's chain: each interrupted attempt is re-queued exactly once
    (the second one used to be queued again at every later Ctrl-C)."""
    from gg_optuna_helpers.recovery import requeue_interrupted

    s = open_storage(f"sqlite:///{tmp_path / 'x.db'}", heartbeat_interval=1)
    study = optuna.create_study(study_name="a", storage=s.rdb)
    for _ in range(3):
        trial = study.ask({"x": _X})
        trial.set_user_attr("failure", "interrupted")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        requeue_interrupted(study, s)
        requeue_interrupted(study, s)
    assert [(t.state.name, t.system_attrs.get("failed_trial")) for t in study.get_trials()] == [
        ("FAIL", None), ("FAIL", 0), ("FAIL", 0), ("WAITING", 0)]


# -- the cache never surprises (issue 20): a results folder deleted by hand ---------------------

def _run(results, *extra, trials):
    from conftest import cli
    from test_study import run_args

    out = cli(*run_args(results, "--pruner", "none", *extra, trials=trials, epochs=1))
    assert out.returncode == 0, out.stdout + out.stderr
    return [line for line in out.stdout.splitlines() + out.stderr.splitlines()
            if "live copy" in line or "fresh" in line]


def _finished(db):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return c.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]


@pytest.mark.slow
def test_a_deleted_results_folder_is_said_and_fresh_starts_over_keeping_the_live_copy(tmp_path):
    """The live copy restored a deleted study silently. Now: one line saying which copy is
    used; by default the live copy (Drive may not show the folder yet: a night's study is not
    thrown away), and with --fresh the study starts over, the live copy renamed, not deleted."""
    import shutil

    drive = tmp_path / "drive"
    assert _run(drive, trials=2) == []  # nothing to say on an ordinary run
    shutil.rmtree(drive)
    [line] = _run(drive, trials=3)
    live = next((tmp_path / "local").glob("*/optuna.db"))
    assert line == (f"Study 'mini_meshhead' has no copy in {drive / 'mini_meshhead'} (deleted, "
                    f"or Drive does not show it yet): it resumes from this machine's live copy "
                    f"{live} (2 finished trials); to start over instead, run with fresh=True "
                    "(--fresh): the live copy is set aside, not deleted.")
    assert _finished(drive / "mini_meshhead" / "optuna.db") == 3  # 2 kept, 1 more trained
    shutil.rmtree(drive)
    [line] = _run(drive, "--fresh", trials=1)
    [aside] = live.parent.glob("optuna.db.set-aside-*")
    assert line == (f"Kept {live} aside as {aside.name}: fresh=True and the results folder has "
                    "no copy of study 'mini_meshhead', so it starts over.")
    assert _finished(aside) == 3 and _finished(drive / "mini_meshhead" / "optuna.db") == 1
    [line] = _run(drive, "--fresh", trials=2)  # left on: the folder's copy is resumed
    assert line == (f"fresh=True, but {drive / 'mini_meshhead' / 'optuna.db'} holds study "
                    f"'mini_meshhead', so it resumes: to start it over, move the folder "
                    f"{drive / 'mini_meshhead'} away first.")
    assert _finished(drive / "mini_meshhead" / "optuna.db") == 2


HALF_WRITE = """
import os, signal, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("pragma cache_size = 2")  # the write spills into the file before its commit
db.execute("begin")
db.execute("update trial_values set value = -1")
db.execute("insert into study_user_attributes (study_id, key, value_json) "
           "select study_id, 'pad', printf('%.*c', 100000, 'x') from studies")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_write_cut_by_a_kill_is_rolled_back_not_taken_for_a_damaged_copy(tmp_path):
    """A kill mid-commit leaves a hot journal beside the live copy; a read-only look cannot
    roll it back ("attempt to write a readonly database"), so the live copy was set aside as
    damaged and the older snapshot restored over it (test_torture met it)."""
    s = _open(tmp_path)
    _finish(s, "a", 20)
    _close(s)
    subprocess.run([sys.executable, "-c", HALF_WRITE, str(s.live)], check=False)
    journal = s.live.with_name("optuna.db-journal")
    assert journal.exists() and journal.stat().st_size > 0
    os.utime(s.durable, (time.time() - 60,) * 2)  # the snapshot is older than the live copy
    when = s.live.stat().st_mtime_ns
    again = open_storage(tmp_path / "drive", study_name="a")
    assert not list(s.live.parent.glob("optuna.db.set-aside-*")) and not journal.exists()
    study = optuna.load_study(study_name="a", storage=again.rdb)
    assert len(study.trials) == 20 and min(t.value for t in study.trials) >= 0
    assert "pad" not in study.user_attrs
    _close(again)
    assert s.live.stat().st_mtime_ns == when  # it does not look newer than it is


def test_progress_a_new_vms_snapshot_missed_counts_from_the_trial_folder(tmp_path):
    """On a new VM the snapshot may predate the epochs a trial reported (snapshots come at a
    trial's start and every 60 s), but its folder's metrics have them: that is progress."""
    from gg_optuna_helpers.protocol import append_event

    s = open_storage(f"sqlite:///{tmp_path / 'x.db'}", heartbeat_interval=1, max_retry=3)
    study = optuna.create_study(study_name="a", storage=s.rdb)
    retry = s.rdb.get_heartbeat_stale_trial_callback()
    folder = tmp_path / "trial_0000"
    folder.mkdir()
    trial = study.ask({"x": _X})
    trial.set_user_attr("trial_dir", str(folder))
    for epoch in range(1, 7):  # no report reaches the study, each attempt adds an epoch
        append_event(folder, event="epoch", epoch=epoch, value=0.5)
        s.rdb.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        retry(study, study.get_trials()[-1])
        trial = study.ask()
    assert study.get_trials()[-1].system_attrs["retry_epochs"] == 6
    assert study.get_trials()[-1].system_attrs["retry_stalled"] == 0
