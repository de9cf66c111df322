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
