"""A lease per study: one runtime at a time writes a study's snapshots to its folder.

A runtime is one machine's local live folder (host + local dir): processes that share it share
the live SQLite file, so they share the lease too. The holder rewrites ``<study>/lease.json``
every ``timeout / 4`` seconds from a daemon thread. A lease silent for ``timeout`` seconds, or
whose process is gone (same host), is taken over. A holder that finds its lease taken stops
writing snapshots. Several machines on one study: a PostgreSQL URL (docs/workers.md).

:class:`LiveUsers` tells a process opening a live copy whether it is the only live process of
this runtime using it; then no trial in that copy can be alive, whatever its heartbeat says.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import ConfigError

log = logging.getLogger("gg_optuna_helpers")

LEASE_TIMEOUT = 300.0


@dataclass
class Lease:
    """The lease file of one study, held by this runtime once :meth:`acquire` returns."""

    file: Path
    study: str
    local_dir: Path
    timeout: float = LEASE_TIMEOUT
    lost: bool = False
    host: str = field(default_factory=socket.gethostname)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def runtime(self) -> str:
        return f"{self.host}:{self.local_dir.resolve()}"

    def acquire(self) -> None:
        """Hold the lease, or refuse in one sentence naming the live holder."""
        holder = self.holder()
        if holder and not self._ours(holder) and not self._stale(holder):
            raise ConfigError(self._refusal(holder))
        self._write(since=None)
        if not self._ours(self.holder() or {}):  # another runtime wrote at the same moment
            raise ConfigError(self._refusal(self.holder() or {}))
        threading.Thread(target=self._keep, daemon=True, name=f"lease-{self.study}").start()
        atexit.register(self.release)

    def holder(self) -> dict | None:
        try:
            return json.loads(self.file.read_text())
        except (OSError, ValueError):
            return None  # none yet, or half-written by a sync: treated as free

    def beat(self) -> bool:
        """Renew the lease; False (and :attr:`lost`) once another runtime has taken it."""
        holder = self.holder()
        if holder and not self._ours(holder):
            if not self.lost:
                log.warning("Study %r was taken over by %s (pid %s): this runtime stops "
                            "writing its snapshots.", self.study, holder.get("host"),
                            holder.get("pid"))
            self.lost = True
            return False
        self._write(since=(holder or {}).get("since"))
        return True

    def release(self) -> None:
        """Stop renewing; remove the lease if this process wrote it last."""
        self._stop.set()
        atexit.unregister(self.release)  # re-opened studies do not pile up exit handlers
        holder = self.holder()
        if holder and self._ours(holder) and holder.get("pid") == os.getpid():
            self.file.unlink(missing_ok=True)

    def _keep(self) -> None:
        failing = False
        while not self._stop.wait(self.timeout / 4):
            try:
                self.beat()
                failing = False
            except OSError as e:  # Drive full or gone: try again at the next beat, say it once
                if not failing:
                    log.warning("Could not renew the lease %s (%s).", self.file, e.strerror or e)
                failing = True

    def _write(self, since: float | None) -> None:
        now = time.time()
        record = {"host": self.host, "pid": os.getpid(), "runtime": self.runtime,
                  "since": since or now, "beat": now}
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.file)

    def _ours(self, holder: dict) -> bool:
        return holder.get("runtime") == self.runtime

    def _stale(self, holder: dict) -> bool:
        if time.time() - float(holder.get("beat", 0)) > self.timeout:
            return True
        return holder.get("host") == self.host and not _alive(holder.get("pid"))

    def _refusal(self, holder: dict) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                              time.gmtime(float(holder.get("since", 0))))
        age = time.time() - float(holder.get("beat", 0))
        return (f"Study {self.study!r} is held by another runtime (host {holder.get('host')}, "
                f"pid {holder.get('pid')}, since {since}, last seen {age:.0f} s ago): run it "
                f"there only, or here once that runtime has stopped ({self.timeout:.0f} s after "
                "its last sign of life); to search one study from several runtimes, share a "
                "PostgreSQL database (docs/workers.md).")


class LiveUsers:
    """The processes of this runtime that use one live copy (the folder ``where``).

    Each holds a shared ``flock`` on ``users.lock`` for its life: the kernel drops it when the
    process ends, even by SIGKILL, so a dead process is never counted. A process joins under an
    exclusive ``flock`` on ``gate.lock``, so no other one joins while it decides (and restores
    the copy).
    """

    def __init__(self, where: Path) -> None:
        self.where = where
        self._fd: int | None = None

    @contextlib.contextmanager
    def joining(self) -> Iterator[bool]:
        """Join; yields True when no other live process uses the copy (nobody joins meanwhile)."""
        gate = _lock_file(self.where / "gate.lock")
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)  # held for the open only: a few seconds at most
            self._fd = _lock_file(self.where / "users.lock")
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            try:
                yield alone
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_SH)
        except BaseException:
            self.leave()
            raise
        finally:
            os.close(gate)

    def leave(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _alive(pid: object) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


__all__ = ["LEASE_TIMEOUT", "Lease", "LiveUsers"]
