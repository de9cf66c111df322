"""Where studies live: a local live SQLite file with durable snapshots, or a server database.

SQLite on Google Drive's FUSE mount locks badly and loses writes, so for a folder (Drive on
Colab, any directory elsewhere) the live database sits on local disk and is copied atomically
into the folder (SQLite backup API to a temporary file, then ``os.replace``) after each trial
and at most every ``snapshot_every`` seconds during one. On open, the newer copy wins.

A ``sqlite:///...`` or ``postgresql://...`` URL is used as given (no snapshots): the latter is
Optuna's distributed mode for several machines.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from .errors import ConfigError

log = logging.getLogger(__name__)

DB_NAME = "optuna.db"
SQLITE_MAGIC = b"SQLite format 3\x00"
SERVER_SCHEMES = ("postgresql", "mysql")
CREATE_ATTEMPTS = 5


@dataclass
class StudyStorage:
    """An opened storage: ``rdb`` for Optuna, plus the snapshot machinery for a folder."""

    rdb: RDBStorage
    url: str
    live: Path | None = None
    durable: Path | None = None
    snapshot_every: float = 60.0
    _last_snapshot: float = field(default=0.0, repr=False)

    def snapshot(self, *, force: bool = False) -> bool:
        """Copy the live database into the durable folder; throttled unless ``force``.

        Never raises: a failed snapshot (Drive gone, disk full) is logged and retried later.
        """
        if self.durable is None or self.live is None:
            return False
        if not force and time.monotonic() - self._last_snapshot < self.snapshot_every:
            return False
        self._last_snapshot = time.monotonic()
        try:
            _copy_sqlite(self.live, self.durable)
            return True
        except (OSError, sqlite3.Error) as e:
            log.warning("Could not snapshot %s to %s (%s); will retry.", self.live, self.durable, e)
            return False

    def describe(self) -> str:
        if self.durable is None:
            return _redact(self.url)
        return f"{self.live} (live) -> {self.durable} (snapshots)"


def open_storage(
    where: str | os.PathLike | None = None,
    *,
    local_dir: str | os.PathLike | None = None,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    max_retry: int = 3,
    snapshot_every: float = 60.0,
) -> StudyStorage:
    """Open ``where``: a folder (or ``.db`` file) with durable snapshots, or a database URL.

    ``local_dir`` holds the live copy (default: ``$GG_OPTUNA_LOCAL_DIR`` or
    ``~/.cache/gg_optuna_helpers``). Dead trials are detected by heartbeat and re-queued with
    their intermediate values.
    """
    where = os.fspath(where if where is not None else "gg_results")
    live = durable = None
    if "://" in where:
        url = _check_url(where)
    else:
        durable = _durable_file(Path(where).expanduser())
        live = _live_file(durable, local_dir)
        _restore_newer(durable, live)
        url = f"sqlite:///{live}"
    rdb = _rdb(url, heartbeat_interval, grace_period, max_retry)
    storage = StudyStorage(rdb, url, live, durable, snapshot_every)
    storage.snapshot(force=True)
    return storage


def _rdb(url: str, interval: int, grace: int | None, max_retry: int) -> RDBStorage:
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {
        "pool_pre_ping": True}
    attempt = 1
    while True:
        try:
            with warnings.catch_warnings():  # heartbeat options are "experimental" since 2.x
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=kwargs,
                    heartbeat_interval=interval,
                    grace_period=grace if grace is not None else 3 * interval,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=max_retry, inherit_intermediate_values=True
                    ),
                )
        except ImportError as e:
            raise ConfigError(f"The database driver for {_redact(url)} is missing "
                              f"({_first_line(e)}): pip install 'psycopg[binary]' for "
                              "PostgreSQL.") from None
        except Exception as e:  # sqlalchemy / driver errors: map to one sentence
            if attempt < CREATE_ATTEMPTS and _creation_race(e):
                time.sleep(0.2 * attempt)  # the tables exist now: opening again finds them
                attempt += 1
                continue
            raise ConfigError(
                f"Could not open the study database {_redact(url)} ({_first_line(e)}): "
                "check the URL, that the server is running, or that the file is an Optuna "
                "database."
            ) from None


def _creation_race(e: Exception) -> bool:
    """Workers started together on a new database all create its tables; the late ones collide
    (PostgreSQL: a unique violation or a duplicate table; SQLite: "table ... already exists")."""
    return (isinstance(e, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError))
            or "already exists" in str(e))


def _check_url(url: str) -> str:
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            file = Path(path)
            if not file.parent.is_dir():
                raise ConfigError(f"The folder of {url} does not exist: create it or fix the path.")
            _check_sqlite_file(file)
        return url
    if scheme in SERVER_SCHEMES:
        return url
    raise ConfigError(
        f"Storage URL scheme {scheme!r} is not supported: use a folder, sqlite:///PATH or "
        "postgresql://USER:PASSWORD@HOST/DB."
    )


def _durable_file(path: Path) -> Path:
    file = path if path.suffix == ".db" else path / DB_NAME
    folder = file.parent
    if str(folder).startswith("/content/drive") and not Path("/content/drive/MyDrive").is_dir():
        raise ConfigError(
            f"Google Drive is not mounted, so {folder} is unavailable: run the Drive cell "
            "(gg_optuna_helpers.mount_drive()) first, or choose a local folder."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"Cannot create the storage folder {folder} ({e.strerror}): "
                          "choose a folder you can write to.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"The storage folder {folder} is read-only: choose a writable folder.")
    _check_sqlite_file(file)
    return file


def _live_file(durable: Path, local_dir: str | os.PathLike | None) -> Path:
    base = Path(local_dir or os.environ.get("GG_OPTUNA_LOCAL_DIR")
                or Path.home() / ".cache" / "gg_optuna_helpers")
    key = hashlib.sha1(str(durable.resolve()).encode()).hexdigest()[:12]
    live = base / key / DB_NAME
    if live.resolve() == durable.resolve():
        raise ConfigError(f"The local live database and the snapshot are the same file {live}: "
                          "choose another local_dir.")
    live.parent.mkdir(parents=True, exist_ok=True)
    return live


def _check_sqlite_file(file: Path) -> None:
    if file.exists() and file.stat().st_size > 0:
        with open(file, "rb") as f:
            if f.read(16) != SQLITE_MAGIC:
                raise ConfigError(
                    f"{file} is not an SQLite database (corrupt or another kind of file): "
                    "move it away, or point the storage at another folder."
                )


def _restore_newer(durable: Path, live: Path) -> None:
    """Make the live file the newer of the two copies (a new machine has only the snapshot)."""
    if durable.exists() and (not live.exists() or durable.stat().st_mtime > live.stat().st_mtime):
        _check_sqlite_file(durable)
        _check_intact(durable)  # a damaged snapshot must not replace a good live copy
        log.info("Restoring the study database from its snapshot %s.", durable)
        _copy_sqlite(durable, live)
    _check_sqlite_file(live)


def _check_intact(file: Path) -> None:
    """Refuse an SQLite file whose pages are damaged (truncated, overwritten) in one sentence."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True)) as db:
            problem = db.execute("pragma quick_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        problem = str(e)
    if problem != "ok":
        raise ConfigError(f"{file} is a damaged SQLite database ({problem.splitlines()[0]}): "
                          "move it away, or point the storage at another folder.")


def _copy_sqlite(src: Path, dst: Path) -> None:
    """Consistent copy with the backup API, then an atomic rename; ``dst`` keeps src's mtime."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
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


def _redact(url: str) -> str:
    """A URL with its password hidden, for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


__all__ = ["StudyStorage", "open_storage"]
