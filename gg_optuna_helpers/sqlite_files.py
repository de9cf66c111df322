"""SQLite files as whole things: what a file holds, atomic copies, setting an odd file aside.

The rule for copies (a snapshot over the live copy, the live copy over a snapshot): a file
replaces another only when it is a readable Optuna database holding at least the other's
studies and finished trials. Otherwise the odd file is renamed aside, never deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path

log = logging.getLogger("gg_optuna_helpers")

SQLITE_MAGIC = b"SQLite format 3\x00"
ENDED = "('COMPLETE', 'PRUNED', 'FAIL')"


def read_only_url(file: Path) -> str:
    """An SQLAlchemy URL that opens ``file`` for reading only (it is never created)."""
    return f"sqlite:///file:{urllib.parse.quote(str(Path(file).resolve()))}?mode=ro&uri=true"


def contents(file: Path) -> tuple[dict[str, int] | None, str]:
    """({study name: finished trials}, "") for a readable Optuna database, else (None, why)."""
    try:
        if file.stat().st_size == 0:
            return None, "an empty file"
        with open(file, "rb") as f:
            if f.read(16) != SQLITE_MAGIC:
                return None, "not an SQLite database"
        with contextlib.closing(sqlite3.connect(f"file:{urllib.parse.quote(str(file))}?mode=ro",
                                                uri=True, timeout=30)) as db:
            problem = db.execute("pragma quick_check").fetchone()[0]
            if problem != "ok":
                return None, f"a damaged SQLite database: {problem.splitlines()[0]}"
            tables = {r[0] for r in db.execute("select name from sqlite_master")}
            if not {"studies", "trials", "version_info"} <= tables:
                return None, "an SQLite database but not an Optuna one"
            rows = db.execute(
                "select s.study_name, count(t.trial_id) from studies s left join trials t on "
                f"t.study_id = s.study_id and t.state in {ENDED} group by s.study_name")
            return dict(rows.fetchall()), ""
    except sqlite3.DatabaseError as e:
        return None, f"a damaged SQLite database: {e}"
    except OSError as e:
        return None, f"unreadable: {e.strerror or e}"


def covers(new: dict[str, int], old: dict[str, int]) -> bool:
    """Whether ``new`` holds every study of ``old`` with at least as many finished trials."""
    return all(name in new and new[name] >= count for name, count in old.items())


def set_aside(file: Path, why: str) -> Path:
    """Rename ``file`` next to itself (never delete it) and say so in one line."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = file.with_name(f"{file.name}.set-aside-{stamp}"), 1
    while aside.exists():
        aside, n = file.with_name(f"{file.name}.set-aside-{stamp}-{n}"), n + 1
    os.replace(file, aside)
    log.warning("Kept %s aside as %s: %s.", file, aside.name, why)
    return aside


def copy_sqlite(src: Path, dst: Path) -> None:
    """Consistent copy with the backup API, then an atomic rename; ``dst`` keeps src's mtime."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        source = sqlite3.connect(f"file:{urllib.parse.quote(str(src))}?mode=ro", uri=True,
                                 timeout=30)
        target = sqlite3.connect(tmp)
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
        stat = src.stat()
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def keep_only(file: Path, study: str) -> None:
    """Delete every study but ``study`` from ``file`` (a private copy of the old shared file)."""
    import optuna

    rdb = optuna.storages.RDBStorage(f"sqlite:///{file}")
    try:
        for summary in optuna.get_all_study_summaries(rdb, include_best_trial=False):
            if summary.study_name != study:
                optuna.delete_study(study_name=summary.study_name, storage=rdb)
    finally:
        rdb.engine.dispose()


__all__ = ["contents", "copy_sqlite", "covers", "keep_only", "read_only_url", "set_aside"]
