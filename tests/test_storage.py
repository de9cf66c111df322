"""Local live SQLite with durable snapshots; URLs as given; bad storage refused in one line."""

import os
import sqlite3
import time

import optuna
import pytest

from gg_optuna_helpers import ConfigError, open_storage


def _study_count(db):
    with sqlite3.connect(db) as c:
        return c.execute("select count(*) from studies").fetchone()[0]


def test_live_file_is_local_and_snapshot_lands_in_the_folder(tmp_path):
    durable = tmp_path / "drive"
    s = open_storage(durable)
    assert s.durable == durable / "optuna.db" and s.live.is_relative_to(tmp_path / "local")
    optuna.create_study(study_name="a", storage=s.rdb)
    assert s.snapshot() is False  # throttled: the opening snapshot was just taken
    assert s.snapshot(force=True) is True
    assert _study_count(s.durable) == 1
    assert not list(durable.glob("*.tmp"))  # the temporary copy was renamed away


def test_new_machine_restores_from_the_snapshot(tmp_path):
    s = open_storage(tmp_path / "drive")
    optuna.create_study(study_name="a", storage=s.rdb)
    s.snapshot(force=True)
    s.rdb.engine.dispose()
    s.live.unlink()  # a fresh Colab VM: no local file
    again = open_storage(tmp_path / "drive")
    assert optuna.load_study(study_name="a", storage=again.rdb).study_name == "a"


def test_newer_copy_wins(tmp_path):
    s = open_storage(tmp_path / "drive")
    optuna.create_study(study_name="a", storage=s.rdb)
    s.snapshot(force=True)
    optuna.create_study(study_name="b", storage=s.rdb)  # after the snapshot: local is newer
    time.sleep(0.01)
    again = open_storage(tmp_path / "drive")
    assert {x.study_name for x in optuna.get_all_study_summaries(again.rdb)} == {"a", "b"}
    # and an older local copy loses to a newer snapshot (another machine went on)
    optuna.create_study(study_name="c", storage=again.rdb)  # only in the live copy
    past = time.time() - 3600
    os.utime(again.live, (past, past))
    again = open_storage(tmp_path / "drive")
    assert _study_count(again.live) == 2  # the snapshot (a, b) replaced the older live copy


def test_sqlite_url_is_used_as_given(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    s = open_storage(url)
    assert s.url == url and s.durable is None and s.snapshot(force=True) is False


@pytest.mark.parametrize("where, words", [
    ("sqlite:////nonexistent/folder/x.db", ["does not exist"]),
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
        open_storage(mount_tmpfs(read_only=True))


def test_drive_not_mounted():
    if os.path.isdir("/content/drive/MyDrive"):
        pytest.skip("Drive is mounted here")
    with pytest.raises(ConfigError, match="Drive is not mounted"):
        open_storage("/content/drive/MyDrive/gg_optuna")


def test_failed_snapshot_does_not_raise(tmp_path, mount_tmpfs):
    tiny = mount_tmpfs("16k")
    s = open_storage(tiny)
    study = optuna.create_study(study_name="a", storage=s.rdb)
    for i in range(30):  # grow the live database past the tiny file system
        study.set_user_attr(f"k{i}", "x" * 2000)
    assert s.snapshot(force=True) is False  # disk full: logged, not raised
