"""Where studies live: a folder with one SQLite file per study, or a database URL.

A folder (Drive on Colab, any directory elsewhere) holds one database file per study
(layout.py), so no runtime ever overwrites another study. Opened to run a study, its live copy
sits on local disk (SQLite on Drive's FUSE mount locks badly and loses writes), the study is
held by a lease (lease.py), and the live copy is copied atomically into the folder after each
trial and at most every ``snapshot_every`` seconds during one. A copy replaces another only
when it holds at least the other's studies and finished trials (sqlite_files.py).

Opened to read (status, report, the dashboard, notebook 03) nothing is written anywhere: the
newer readable copy is opened read-only, or, for all studies of a folder, copied into memory.

A ``sqlite:///PATH`` or ``postgresql://...`` URL is used as given (no snapshots, no lease):
the latter is Optuna's distributed mode for several machines.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import sqlalchemy.exc
import sqlalchemy.pool
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from .errors import ConfigError, StudyNotFound
from .layout import (DB_NAME, DEFAULT_FOLDER, LEASE_NAME, check_study_name, is_place, is_url,
                     legacy_db, study_db, study_names)
from .lease import LEASE_TIMEOUT, Lease, LiveUsers
from .protocol import METRICS
from .records import TrialAttr
from .sqlite_files import contents, copy_sqlite, covers, keep_only, read_only_url, set_aside

log = logging.getLogger("gg_optuna_helpers")

SERVER_DRIVERS = {"postgresql": "pip install 'psycopg[binary]' (PostgreSQL)",
                  "mysql": "pip install PyMySQL and write the URL as mysql+pymysql://..."}
CREATE_ATTEMPTS = 5
RETRY_EPOCHS, RETRY_STALLED = "retry_epochs", "retry_stalled"  # system attrs of a retried trial


@dataclass
class StudyStorage:
    """An opened storage: ``rdb`` for Optuna, plus the snapshot machinery for a folder.

    ``read_only``: opened to read (nothing is written, no lease). ``study_name``: the study this
    folder storage was opened for (None: all studies, read-only). ``trials_alone``: the study's
    trials as this process found them when it opened the study holding its lease, the only
    live process of this runtime on its live copy: none of them was running anywhere then
    (None: not known so; another process here, or a database URL).
    """

    rdb: BaseStorage
    url: str
    live: Path | None = None
    durable: Path | None = None
    snapshot_every: float = 60.0
    folder: Path | None = None
    study_name: str | None = None
    read_only: bool = False
    local_dir: Path | None = None
    lease: Lease | None = None
    users: LiveUsers | None = None
    trials_alone: list[FrozenTrial] | None = None
    _last_snapshot: float = field(default=0.0, repr=False)
    _written: tuple | None = field(default=None, repr=False)
    snapshot_error: OSError | sqlite3.Error | None = field(default=None, repr=False)

    def snapshot(self, *, force: bool = False) -> bool:
        """Copy the live database into the folder; throttled unless ``force``.

        Never raises: the error of a failed snapshot (Drive full or gone) is kept in
        :attr:`snapshot_error` until one succeeds again, and the next call tries again; the
        study decides what a failure means (objective.py: it stops after the running trial).
        """
        if self.durable is None or self.live is None or self.read_only:
            return False
        if not force and time.monotonic() - self._last_snapshot < self.snapshot_every:
            return False
        if self.lease is not None and self.lease.lost:
            return False
        self._last_snapshot = time.monotonic()
        try:
            self._guard_durable()
            copy_sqlite(self.live, self.durable)
            self._written = _stamp(self.durable)
        except (OSError, sqlite3.Error) as e:
            log.debug("Could not snapshot %s to %s (%s); will retry.", self.live, self.durable, e)
            self.snapshot_error = e
            return False
        self.snapshot_error = None
        return True

    def _guard_durable(self) -> None:
        """A snapshot this runtime did not write is kept aside unless the live copy covers it."""
        if not self.durable.exists() or _stamp(self.durable) == self._written:
            return
        found, why = contents(self.durable)
        if found is None:
            set_aside(self.durable, f"it is {why}")
        elif not covers(contents(self.live)[0] or {}, found):
            set_aside(self.durable, "it holds studies or finished trials the live copy lacks")

    def storage_for(self, study_name: str) -> BaseStorage:
        """The Optuna storage that holds ``study_name``: this one, or that study's own file."""
        if self.folder is None or self.study_name in (None, study_name):
            return self.rdb
        return open_storage(self.folder, study_name=study_name, read_only=True,
                            local_dir=self.local_dir).rdb

    def all_studies(self) -> BaseStorage:
        """A storage that lists every study: this one, or (a folder) a read-only view."""
        if self.folder is None or self.study_name is None:
            return self.rdb
        return open_storage(self.folder, local_dir=self.local_dir).rdb

    def close(self) -> None:
        """Release the study's lease (the last snapshot is the caller's)."""
        if self.users is not None:
            self.users.leave()
        if self.lease is not None:
            self.lease.release()

    def describe(self) -> str:
        if self.durable is None:
            return _redact(self.url)
        return f"{self.live} (live) -> {self.durable} (snapshots)"


def open_storage(
    where: str | os.PathLike | None = None,
    *,
    study_name: str | None = None,
    read_only: bool = False,
    local_dir: str | os.PathLike | None = None,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    max_retry: int = 3,
    snapshot_every: float = 60.0,
    lease_timeout: float = LEASE_TIMEOUT,
    fresh: bool = False,
) -> StudyStorage:
    """Open ``where``: a folder (one database per study) or a database URL.

    A folder with ``study_name`` opens that study to run it (live copy on local disk, lease,
    snapshots); a folder without one, or ``read_only=True``, opens to read and writes nothing.
    ``local_dir`` holds live copies (default: ``$GG_OPTUNA_LOCAL_DIR`` or
    ``~/.cache/gg_optuna_helpers``). Dead trials are detected by heartbeat and re-queued with
    their intermediate values. ``fresh``: a live copy of a study that the folder has no copy of
    is set aside (renamed, kept) and the study starts over; without it that copy is used, said
    in one line.
    """
    where = _folder_or_url(DEFAULT_FOLDER if where is None else where)
    beat = (heartbeat_interval, grace_period, max_retry)
    if is_url(where):
        url = check_url(where, read_only=read_only)
        file = _sqlite_file(url)
        rdb = _rdb(read_only_url(file) if read_only and file else url, None if read_only else beat)
        return StudyStorage(rdb, url, read_only=read_only, study_name=study_name)
    if study_name is not None:
        check_study_name(study_name)
    read_only = read_only or study_name is None
    folder = check_folder(where, write=not read_only)
    base = local_base(local_dir, write=not read_only)
    if read_only:
        return _open_to_read(folder, study_name, base)
    return _open_to_write(folder, study_name, base, beat, snapshot_every, lease_timeout, fresh)


def optuna_storage(storage: StudyStorage | BaseStorage | str | os.PathLike,
                   study_name: str | None = None, *, writable: bool = False) -> BaseStorage:
    """The Optuna storage behind any storage argument the package's public functions take.

    ``storage``: a folder (opened to read; with ``study_name``, that study's file), a database
    URL, an opened :class:`StudyStorage`, or an Optuna storage (used as it is). Anything else is
    a one-sentence ConfigError. ``writable``: a URL is opened so Optuna may write to it (a
    missing SQLite file is created); a folder is read here all the same, since writing one
    needs :func:`open_storage`'s lease and snapshots.
    """
    if isinstance(storage, StudyStorage):
        return storage.storage_for(study_name) if study_name else storage.all_studies()
    if isinstance(storage, BaseStorage):
        return storage
    if is_place(storage):
        read_only = not (writable and is_url(storage))
        return open_storage(storage, study_name=study_name, read_only=read_only).rdb
    raise ConfigError(f"A storage must be a results folder, a database URL or an opened storage, "
                      f"but got {_shown(storage)}: pass e.g. {DEFAULT_FOLDER!r} or "
                      "'postgresql://user@host/db'.")


def _folder_or_url(where: object) -> str:
    """``where`` as a path or URL string, or a one-sentence ConfigError."""
    if isinstance(where, (StudyStorage, BaseStorage)):
        raise ConfigError(f"open_storage opens a results folder or a database URL, but got an "
                          f"already opened {type(where).__name__}: use it as it is.")
    if not is_place(where):
        raise ConfigError(f"A storage must be a results folder or a database URL, but got "
                          f"{_shown(where)}: pass e.g. {DEFAULT_FOLDER!r} or "
                          "'postgresql://user@host/db'.")
    return os.fspath(where)


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, (str, int, float, type(None))) else type(value).__name__


def open_study(storage: StudyStorage | BaseStorage | str | os.PathLike,
               study_name: str) -> optuna.Study:
    """An existing study, opened to read from any storage form; or say which studies exist."""
    rdb = optuna_storage(storage, study_name)
    try:
        return optuna.load_study(study_name=study_name, storage=rdb)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(rdb)]
        raise StudyNotFound(f"No study named {study_name!r} in this storage; it holds "
                            f"{', '.join(map(repr, names)) or 'no studies'}.") from None


def check_url(url: str, *, read_only: bool = False) -> str:
    """``url`` if Optuna can keep a study there, else a one-sentence ConfigError."""
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        if not url.startswith("sqlite:///"):
            raise ConfigError(f"{url} has two slashes after sqlite:, so its file name would be "
                              "read as a host: write sqlite:///relative/path.db (three "
                              "slashes) or sqlite:////absolute/path.db (four).")
        file = _sqlite_file(url)
        if file is None:
            raise ConfigError(f"{url} keeps nothing on disk, so every trial would be lost: name a "
                              "file, sqlite:///PATH.db, or pass a folder.")
        _check_file(file, read_only)
        return url
    if scheme in SERVER_DRIVERS:
        return url
    raise ConfigError(
        f"Storage URL scheme {scheme!r} is not supported: use a folder, sqlite:///PATH or "
        "postgresql://USER:PASSWORD@HOST/DB."
    )


def _sqlite_file(url: str) -> Path | None:
    """The file of an ``sqlite:///`` URL; None for another URL or one with no file."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") or path.startswith("file:") else Path(path)


def _check_file(file: Path, read_only: bool) -> None:
    if file.is_dir():
        raise ConfigError(f"{file} is a folder, not a database file: pass the folder itself "
                          "as the storage, or name a file inside it.")
    if not file.parent.exists():
        raise ConfigError(f"The folder {file.parent} of {file} does not exist: create it or fix "
                          "the path.")
    if not file.parent.is_dir():
        raise ConfigError(f"{file.parent} is not a folder, so {file} cannot be there: fix the "
                          "path.")
    if not file.exists():
        if read_only:
            raise StudyNotFound(f"There is no database file {file}: check the path.")
        return
    if file.stat().st_size:
        found, why = contents(file)
        if found is None:
            raise ConfigError(f"{file} is {why}: move it away, or name another file.")


def check_folder(where: str | os.PathLike, *, write: bool) -> Path:
    """The storage folder, checked (to be written when ``write``); creates nothing."""
    folder = Path(where).expanduser()
    if folder.suffix == ".db":
        raise ConfigError(f"The storage {folder} is a file name: pass its folder (each study "
                          f"gets its own database file there), or sqlite:///{folder} for "
                          "one database file.")
    if str(folder).startswith("/content/drive") and not Path("/content/drive/MyDrive").is_dir():
        raise ConfigError(
            f"Google Drive is not mounted, so {folder} is unavailable: run the Drive cell "
            "(gg_optuna_helpers.colab.mount_drive()) first, or choose a local folder."
        )
    if write:
        check_writable_dir(folder, "storage folder")
    return folder


def check_writable_dir(folder: Path, what: str, create: bool = False) -> None:
    """Refuse, in one sentence, a folder that cannot be written (or made); ``create`` makes it."""
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise ConfigError(f"The {what} {folder} cannot be made: {existing} is a file, not a "
                          "folder: choose another path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"The {what} {existing} is read-only: choose a writable folder.")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"Cannot create the {what} {folder} ({e.strerror}): choose a "
                              "folder you can write to.") from None


def local_base(local_dir: str | os.PathLike | None, *, write: bool = True) -> Path:
    """The local folder for live copies (checked when ``write``, never created here)."""
    base = Path(local_dir or os.environ.get("GG_OPTUNA_LOCAL_DIR")
                or Path.home() / ".cache" / "gg_optuna_helpers").expanduser()
    if write:
        check_writable_dir(base, "local folder for live databases")
    return base


def _live(durable: Path, base: Path) -> Path:
    return base / hashlib.sha1(str(durable.resolve()).encode()).hexdigest()[:12] / DB_NAME


def live_only(where: str | os.PathLike, study_name: str,
              local_dir: str | os.PathLike | None = None) -> Path | None:
    """This machine's live copy of ``study_name`` when the folder ``where`` has no copy of it
    (deleted, or not shown yet by Drive); None otherwise, and for a database URL."""
    if is_url(os.fspath(where)):
        return None
    durable = study_db(Path(where).expanduser(), study_name)
    live = _live(durable, local_base(local_dir, write=False))
    return live if live.exists() and not durable.exists() else None


def _open_to_write(folder: Path, study: str, base: Path, beat: tuple, snapshot_every: float,
                   lease_timeout: float, fresh: bool) -> StudyStorage:
    durable = study_db(folder, study)
    live = _live(durable, base)
    if live.resolve() == durable.resolve():
        raise ConfigError(f"The local live database and the snapshot are the same file {live}: "
                          "choose another local_dir.")
    check_writable_dir(folder, "storage folder", create=True)
    check_writable_dir(base, "local folder for live databases", create=True)
    durable.parent.mkdir(exist_ok=True)
    lease = Lease(durable.parent / LEASE_NAME, study, base, lease_timeout)
    lease.acquire()
    users = LiveUsers(live.parent)
    try:
        live.parent.mkdir(parents=True, exist_ok=True)
        with users.joining() as alone:  # not alone: another worker here writes the live copy
            if not alone and fresh and not durable.exists():
                raise ConfigError(f"Another process on this machine runs study {study!r} from "
                                  f"its live copy {live}, so fresh=True cannot set it aside: "
                                  "stop that process first.")
            written = _restore(durable, live, study, fresh) if alone else None  # it is newest
            rdb = _rdb(f"sqlite:///{live}", beat)
            found = _trials_of(rdb, study) if alone else None
    except BaseException:
        lease.release()
        raise
    storage = StudyStorage(rdb, f"sqlite:///{live}", live, durable, snapshot_every, folder, study,
                           local_dir=base, lease=lease, users=users, trials_alone=found,
                           _written=written)
    storage.snapshot(force=True)
    return storage


def _trials_of(rdb: RDBStorage, study: str) -> list[FrozenTrial]:
    try:
        return rdb.get_all_trials(rdb.get_study_id_from_name(study), deepcopy=False)
    except KeyError:
        return []  # a new study


def _move_out(source: Path, study: str, live: Path) -> None:
    """A study of the old shared file gets its own file (the old file is left as it is)."""
    copy_sqlite(source, live)
    keep_only(live, study)
    log.info("Study %r moves from the shared %s into its own database file.", study, source)


def _restore(durable: Path, live: Path, study: str, fresh: bool) -> tuple | None:
    """Make the live copy the better of the two; returns the snapshot's stamp if it is sound."""
    _roll_back(live)
    if not durable.exists():
        _without_snapshot(durable, live, study, fresh)
        return None
    if fresh:
        _fresh_ignored(durable, study)
    found, why = contents(durable)
    have, live_why = contents(live) if live.exists() else (None, "missing")
    if found is None:
        if have is None:
            raise _no_good_copy(durable, why)
        set_aside(durable, f"it is {why}; the live copy {live} is kept")
        return None
    if have is not None and durable.stat().st_mtime_ns <= live.stat().st_mtime_ns:
        return _stamp(durable)  # the live copy is the newer one
    if have is not None and not covers(found, have):
        set_aside(durable, f"it is newer than the live copy {live} but lacks some of its "
                           "studies or finished trials")
        return None
    if live.exists() and have is None:
        set_aside(live, f"it is {live_why}")
    log.info("Restoring the study database from its snapshot %s.", durable)
    copy_sqlite(durable, live)
    return _stamp(durable)


def _roll_back(live: Path) -> None:
    """Undo the write a killed process left half-done in the live copy (a hot journal), which
    a read-only look cannot do: the copy would be taken for damaged and set aside. Its time
    stays that of its last write, so that it does not look newer than it is."""
    if not live.exists() or not live.with_name(f"{live.name}-journal").exists():
        return
    stat = live.stat()
    try:
        with contextlib.closing(sqlite3.connect(live, timeout=30)) as db:
            db.execute("select count(*) from sqlite_master").fetchone()  # rolls it back
    except sqlite3.Error:
        return  # damaged indeed: contents() says how
    os.utime(live, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _without_snapshot(durable: Path, live: Path, study: str, fresh: bool) -> None:
    """The results folder has no copy of the study: this machine's live copy is used, and said
    so in one line (Drive may not show the folder yet), or with ``fresh`` set aside (kept)."""
    if not live.exists():
        legacy = _readable(legacy_db(durable.parent.parent), live.parent.parent, study)
        if legacy:  # a folder of an older version: its shared file is the durable copy
            _move_out(legacy[0], study, live)
        return
    found, _ = contents(live)
    finished = (found or {}).get(study)
    if fresh:
        set_aside(live, f"fresh=True and the results folder has no copy of study {study!r}, "
                        "so it starts over")
    elif finished is not None:
        log.warning("Study %r has no copy in %s (deleted, or Drive does not show it yet): it "
                    "resumes from this machine's live copy %s (%d finished trials); to start "
                    "over instead, run with fresh=True (--fresh): the live copy is set aside, "
                    "not deleted.", study, durable.parent, live, finished)


def _fresh_ignored(durable: Path, study: str) -> None:
    log.warning("fresh=True, but %s holds study %r, so it resumes: to start it over, move the "
                "folder %s away first.", durable, study, durable.parent)


def _readable(durable: Path, base: Path, study: str | None) -> tuple[Path, dict] | None:
    """The newer readable copy of ``durable`` (it or this machine's live copy) that holds
    ``study`` (any study if None), with its contents; None if neither has it."""
    copies = []
    for file in (durable, _live(durable, base)):
        if file.exists():
            found, why = contents(file)
            if found is None and file == durable and not _live(durable, base).exists():
                raise _no_good_copy(file, why)
            if found is not None and (study is None or study in found):
                copies.append((file.stat().st_mtime_ns, file, found))
    return max(copies)[1:] if copies else None


def _no_good_copy(file: Path, why: str) -> ConfigError:
    return ConfigError(f"{file} is {why}, and this machine has no good copy of it: "
                       "move it away, or point the storage at another folder.")


def _open_to_read(folder: Path, study: str | None, base: Path) -> StudyStorage:
    if study is None and not folder.exists():
        log.warning("There is no storage folder %s yet: no study to show until one runs there.",
                    folder)
        return StudyStorage(optuna.storages.InMemoryStorage(), f"memory view of {folder}",
                            folder=folder, read_only=True, local_dir=base)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"The storage {folder} is a file, not a results folder or a database "
                          "URL: pass the folder, or sqlite:///PATH for a database file.")
    if not folder.is_dir():
        raise StudyNotFound(f"There is no storage folder {folder}: check the path (--storage).")
    if study is None:
        return _all_in_memory(folder, base, _readable(legacy_db(folder), base, None))
    own = _readable(study_db(folder, study), base, study) if (folder / study).is_dir() else None
    legacy = None if own else _readable(legacy_db(folder), base, study)  # only when needed
    file = (own or legacy or (None,))[0]
    if file is None:
        names = sorted(set(study_names(folder)) | set(legacy[1] if legacy else ()))
        raise StudyNotFound(f"No study named {study!r} in {folder}; it holds "
                          f"{', '.join(map(repr, names)) or 'no studies'}.")
    return StudyStorage(_rdb(read_only_url(file), None), f"sqlite:///{file}", folder=folder,
                        study_name=study, read_only=True, local_dir=base)


def _all_in_memory(folder: Path, base: Path, legacy: tuple | None) -> StudyStorage:
    """Every study of the folder copied into memory: a read-only view that writes nothing."""
    memory = optuna.storages.InMemoryStorage()
    names = study_names(folder)
    sources = [(n, _open_to_read(folder, n, base).rdb) for n in names]
    if legacy:
        old = _rdb(read_only_url(legacy[0]), None)
        sources += [(n, old) for n in legacy[1] if n not in names]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        for name, rdb in sources:
            optuna.copy_study(from_study_name=name, from_storage=rdb, to_storage=memory)
    finally:
        optuna.logging.set_verbosity(verbosity)
        for _, rdb in sources:
            rdb.engine.dispose()
    return StudyStorage(memory, f"memory copy of {folder}", folder=folder, read_only=True,
                        local_dir=base)


def _rdb(url: str, beat: tuple | None) -> RDBStorage:
    """Optuna's RDBStorage; ``beat`` = (interval, grace, max_retry) turns on the heartbeat."""
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {
        "pool_pre_ping": True}
    attempt = 1
    while True:
        try:
            with warnings.catch_warnings():  # heartbeat options are "experimental" since 2.x
                warnings.simplefilter("ignore", ExperimentalWarning)
                options = {} if beat is None else dict(
                    heartbeat_interval=beat[0],
                    grace_period=beat[1] if beat[1] is not None else 3 * beat[0],
                    heartbeat_stale_trial_callback=ResumeRetry(beat[2]))
                return RDBStorage(url, engine_kwargs=kwargs, **options)
        except ImportError as e:
            driver = SERVER_DRIVERS.get(url.split(":", 1)[0].split("+")[0], "install its driver")
            raise ConfigError(f"The database driver for {_redact(url)} is missing "
                              f"({_first_line(e)}): {driver}.") from None
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


class ResumeRetry(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a dead trial (a WAITING copy: same parameters, its reported epochs, its
    original number), given up only after ``max_retry`` retries in a row that reported no new
    epoch (a trial that takes its runtime down): deaths between epochs never lose a trial."""

    def __init__(self, max_retry: int) -> None:
        super().__init__(max_retry=None, inherit_intermediate_values=True)
        self.max_retry_stalled = max_retry

    def gives_up(self, trial: FrozenTrial) -> bool:
        return self._stalled(trial)[1] > self.max_retry_stalled

    def _stalled(self, trial: FrozenTrial) -> tuple[int, int]:
        """(epochs done, retries in a row without a new epoch if ``trial`` is retried)."""
        epochs, attrs = _epochs_done(trial), trial.system_attrs
        return epochs, (0 if epochs > attrs.get(RETRY_EPOCHS, 0)
                        else attrs.get(RETRY_STALLED, 0) + 1)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        attrs = dict(trial.system_attrs)
        epochs, stalled = self._stalled(trial)
        if stalled > self.max_retry_stalled:
            log.warning("Trial %d stopped %d times in a row before finishing an epoch, so it is "
                        "not re-queued again (does it take its runtime down?): its parameters "
                        "are %s.", trial.number, stalled, trial.params)
            return
        trial = copy.deepcopy(trial)
        trial.system_attrs = {**attrs, RETRY_EPOCHS: epochs, RETRY_STALLED: stalled}
        super().__call__(study, trial)


def _epochs_done(trial: FrozenTrial) -> int:
    """The last epoch a trial's chain finished: reported, or recorded in its folder's metrics
    (a new VM's snapshot may predate the epochs its checkpoint holds)."""
    done = max(trial.intermediate_values, default=0)
    folder = trial.user_attrs.get(TrialAttr.TRIAL_DIR.value)
    try:
        lines = (Path(folder) / METRICS).read_text().splitlines() if folder else []
    except OSError:
        lines = []
    for line in lines:
        if '"event": "epoch"' in line:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                done = max(done, int(json.loads(line)["epoch"]))
    return done


def _creation_race(e: Exception) -> bool:
    """Workers started together on a new database all create its tables; the late ones collide
    (PostgreSQL: a unique violation or a duplicate table; SQLite: "table ... already exists")."""
    return (isinstance(e, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError))
            or "already exists" in str(e))


def _stamp(file: Path) -> tuple:
    stat = file.stat()
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _redact(url: str) -> str:
    """A URL with its password hidden, for messages and logs."""
    if "@" in url and is_url(url):
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def open_view(where: str | os.PathLike, study_name: str | None = None, *,
              local_dir: str | os.PathLike | None = None, missing_ok: bool = False) -> StudyStorage:
    """A live read-only view (what the dashboard serves): no lease, no file made, nothing written.

    A folder's study, or a ``sqlite:///`` file, is read from its newest readable copy (this
    machine's live copy or the folder's snapshot), chosen again whenever one of them changes: a
    snapshot another runtime replaces is seen as well. ``missing_ok``: a study with no copy yet
    is an empty view until a run writes one (else StudyNotFound). A folder without
    ``study_name``, or a server URL, is :func:`open_storage`'s ``read_only=True`` view.
    """
    where = _folder_or_url(where)
    file = _sqlite_file(where) if is_url(where) else None
    followed = file is not None if is_url(where) else study_name is not None
    if not followed:
        return open_storage(where, study_name=study_name, read_only=True, local_dir=local_dir)
    try:
        open_storage(where, study_name=study_name, read_only=True,
                     local_dir=local_dir).rdb.engine.dispose()  # the checks, one sentence each
    except StudyNotFound:
        if not missing_ok:
            raise
    base = local_base(local_dir, write=False)
    if file is not None:
        copies = _NewestCopy([file], lambda: file if contents(file)[0] is not None else None)
    else:
        folder = Path(where).expanduser()
        files = [f for durable in (study_db(folder, study_name), legacy_db(folder))
                 for f in (durable, _live(durable, base))]
        copies = _NewestCopy(files, lambda: _newest_copy(folder, study_name, base))
    rdb = RDBStorage("sqlite://", engine_kwargs={"creator": copies.connect,
                                                 "poolclass": sqlalchemy.pool.NullPool},
                     skip_table_creation=True)
    return StudyStorage(rdb, f"live view of {where}", study_name=study_name, read_only=True,
                        folder=None if file else Path(where).expanduser(), local_dir=base)


def _newest_copy(folder: Path, study: str, base: Path) -> Path | None:
    """The newest readable copy that holds ``study``: its own file's, else the old shared one's."""
    for durable in (study_db(folder, study), legacy_db(folder)):
        try:
            found = _readable(durable, base, study)
        except ConfigError:  # a damaged snapshot and no live copy here: nothing to show yet
            found = None
        if found:
            return found[0]
    return None


class _NewestCopy:
    """SQLite connections, read-only, to the copy ``find()`` names (looked for again only when
    one of ``files`` changed), or to an empty Optuna database in memory while there is none."""

    def __init__(self, files: list[Path], find) -> None:
        self._files, self._find = files, find
        self._seen: tuple | None = None
        self._file: Path | None = None
        self._lock = threading.Lock()

    def connect(self) -> sqlite3.Connection:
        seen = tuple(_stamp(f) if f.exists() else None for f in self._files)
        with self._lock:
            if seen != self._seen:
                self._seen, self._file = seen, self._find()
            file = self._file
        if file is None:
            return _empty_optuna_db()
        return sqlite3.connect(f"file:{urllib.parse.quote(str(file))}?mode=ro", uri=True,
                               timeout=30, check_same_thread=False)


_EMPTY: list[sqlite3.Connection] = []  # an empty Optuna database in memory, made once
_EMPTY_LOCK = threading.Lock()


def _empty_optuna_db() -> sqlite3.Connection:
    """A fresh in-memory copy of an empty Optuna database (the view of a study not there yet)."""
    with _EMPTY_LOCK:
        if not _EMPTY:
            made = sqlite3.connect(":memory:", check_same_thread=False)
            rdb = RDBStorage("sqlite://", engine_kwargs={
                "creator": lambda: made, "poolclass": sqlalchemy.pool.StaticPool})
            _EMPTY.append(sqlite3.connect(":memory:", check_same_thread=False))
            made.backup(_EMPTY[0])
            rdb.engine.dispose()
        db = sqlite3.connect(":memory:", check_same_thread=False)
        _EMPTY[0].backup(db)
    return db


__all__ = ["ResumeRetry", "StudyStorage", "check_folder", "check_url", "check_writable_dir",
           "live_only", "local_base", "open_storage", "open_study", "open_view", "optuna_storage"]
