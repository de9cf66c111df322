"""Run one trial's worker as a child process and relay its epochs to Optuna.

The child runs in its own process group (so a hang or a stuck CUDA context can be killed as a
whole) and dies with us. Each epoch line is reported; ``should_prune`` writes ``STOP``, waits a
grace period, then kills. Any failure becomes :class:`TrialFailed` with a reason and the last
lines of the worker log; the study goes on. A full or unreachable trial folder is the disk
fault :data:`~.records.Failure.DISK_FULL` or ``DISK_GONE`` (:func:`disk_faults`).

A :class:`WarmWorker` keeps the NEXT trial's process started and warmed (torch imported) while
the current one trains (from its first epoch on, so the two starts do not compete): still a
fresh process per trial, only started earlier.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna

from .errors import TrialFailed
from .protocol import (EARLY_STOP, EXIT_DISK_FULL, EXIT_DIVERGED, EXIT_OK, EXIT_OOM, LOG, STOP,
                       WITH_VALUE, EventReader, TrialSpec)
from .records import Failure, TrialAttr, put, put_metrics

# How a worker's exit code reads as a failure reason; any other code is Failure.CRASHED.
EXIT_REASONS = {EXIT_OOM: Failure.OOM, EXIT_DIVERGED: Failure.DIVERGED,
                EXIT_DISK_FULL: Failure.DISK_FULL}


@dataclass
class TimeLimits:
    """Time limits for one trial, in seconds (None: no limit)."""

    trial_timeout: float | None = None
    epoch_timeout: float | None = None  # no new epoch for this long -> hung
    stop_grace: float = 10.0
    poll: float = 0.2


@dataclass
class Outcome:
    """What a finished worker left: its best value and how it ended."""

    best_value: float
    reason: str  # one of protocol.WITH_VALUE
    epochs: int
    best_epoch: int


def run_trial(trial: optuna.Trial, spec: TrialSpec, *, limits: TimeLimits,
              reported: Iterable[int] = (), on_tick: Callable[[], None] = lambda: None,
              warm: WarmWorker | None = None) -> Outcome:
    """Train ``spec`` in a child process (``warm``'s if it has one ready); raise TrialPruned or
    TrialFailed, or return. ``reported``: epochs the trial already holds (a retry inherits
    them), not reported again."""
    with disk_faults(spec.trial_dir):
        return _run(trial, spec, limits, _Relay(trial, reported), on_tick, warm)


def _run(trial: optuna.Trial, spec: TrialSpec, limits: TimeLimits, relay: _Relay,
         on_tick: Callable[[], None], warm: WarmWorker | None) -> Outcome:
    reader = EventReader(spec.trial_dir)
    (Path(spec.trial_dir) / STOP).unlink(missing_ok=True)
    child = _launch(spec, warm)
    started = last_epoch_at = time.monotonic()
    try:
        while True:
            for event in reader.read():
                if relay.handle(event):
                    last_epoch_at = time.monotonic()
                    if warm is not None:
                        warm.refill()
            if relay.prune_at is not None:
                _stop(child, spec, limits.stop_grace)
                put(trial, TrialAttr.PRUNED_AT, relay.prune_at)
                relay.finish()
                raise optuna.TrialPruned(f"pruned at epoch {relay.prune_at}")
            code = child.poll()
            if code is not None:
                for event in reader.read():
                    relay.handle(event)
                relay.finish()
                return _outcome(code, relay, spec.trial_dir)
            now = time.monotonic()
            if limits.trial_timeout and now - started > limits.trial_timeout:
                _fail_timeout(child, spec, limits, f"trial ran past {limits.trial_timeout:g} s")
            if limits.epoch_timeout and now - last_epoch_at > limits.epoch_timeout:
                _fail_timeout(child, spec, limits, f"no epoch finished in {limits.epoch_timeout:g} s")
            on_tick()
            _wait_exit(child, limits.poll)
    except BaseException:
        _kill(child)
        relay.finish()
        raise


def _wait_exit(child: subprocess.Popen, seconds: float) -> None:
    """Sleep up to ``seconds``, but return as soon as the child exits (no poll latency)."""
    try:
        child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


class _Relay:
    """Turns metrics events into Optuna reports and user attrs."""

    def __init__(self, trial: optuna.Trial, reported: Iterable[int] = ()) -> None:
        self.trial = trial
        self.reported = set(reported)  # inherited by a retry
        self.epochs = 0  # epochs trained by this attempt
        self.seconds = 0.0
        self.prune_at: int | None = None
        self.end: dict | None = None

    def handle(self, event: dict) -> bool:
        """Process one event; True when it is a newly trained epoch."""
        if event["event"] == "end":
            self.end = event
        if event["event"] == "start":
            put(self.trial, TrialAttr.START_EPOCH, event["start_epoch"])
        if event["event"] != "epoch":
            return False
        epoch = event["epoch"]
        if epoch not in self.reported:
            self.trial.report(event["value"], epoch)
            self.reported.add(epoch)
        put_metrics(self.trial, event.get("parts", {}))
        if event.get("replayed"):
            return False
        self.epochs += 1
        self.seconds += event["seconds"]
        if self.trial.should_prune():
            self.prune_at = epoch
        return True

    def finish(self) -> None:
        put(self.trial, TrialAttr.EPOCHS, self.epochs)
        if self.epochs:
            put(self.trial, TrialAttr.SECONDS_PER_EPOCH, self.seconds / self.epochs)


def _outcome(code: int, relay: _Relay, trial_dir: str) -> Outcome:
    end = relay.end or {}
    if code == EXIT_OK and end.get("reason") in WITH_VALUE:
        if end["reason"] == EARLY_STOP:
            put(relay.trial, TrialAttr.EARLY_STOPPED_AT, end["last_epoch"])
        return Outcome(end["best_value"], end["reason"], relay.epochs, end["best_epoch"])
    gone = unreachable(trial_dir)
    if gone:  # whatever the worker died of, its folder went first
        raise TrialFailed(Failure.DISK_GONE, disk_advice(Failure.DISK_GONE, trial_dir, gone))
    reason = EXIT_REASONS.get(code, Failure.CRASHED)
    if code == EXIT_DISK_FULL:  # the worker could not write a word of its own
        raise TrialFailed(reason, disk_advice(reason, trial_dir))
    detail = end.get("message") or _describe_exit(code)
    raise TrialFailed(reason, detail)


FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or a full Drive quota
GONE = (errno.ENOTCONN, errno.EIO, errno.ENODEV, errno.ESTALE, errno.EROFS)  # a disk gone


@contextlib.contextmanager
def disk_faults(folder: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError of a full or unreachable disk under ``folder`` into TrialFailed
    (``disk_full`` or ``disk_gone``); any other error passes through."""
    try:
        yield
    except OSError as e:
        reason = disk_failure(e, folder)
        if reason is None:
            raise
        why = unreachable(folder) or e.strerror or str(e)
        raise TrialFailed(reason, disk_advice(reason, folder, why)) from None


def disk_failure(e: BaseException, folder: str | os.PathLike) -> Failure | None:
    """The disk fault ``e`` is (``folder``: where it was writing), or None for another error;
    ``e`` may be SQLite's, which has no errno ("database or disk is full")."""
    if e.errno in FULL if isinstance(e, OSError) else "disk is full" in str(e):
        return Failure.DISK_FULL
    if (isinstance(e, OSError) and e.errno in GONE) or unreachable(folder):
        return Failure.DISK_GONE
    return None


def unreachable(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot be reached (unmounted, "Transport endpoint is not connected"), or
    None when it is there."""
    try:
        os.stat(folder)
    except OSError as e:
        return e.strerror or str(e)
    return None


def disk_advice(reason: Failure, place: str | os.PathLike, why: str = "") -> str:
    """What happened to ``place`` and what to do, in a few words (no final period)."""
    if reason == Failure.DISK_FULL:
        return f"no space left on the disk of {place}: free some space there, then run again"
    hint = ("remount Drive (drive.mount('/content/drive', force_remount=True))"
            if str(place).startswith("/content/drive") else "mount its disk again")
    return f"{place} cannot be reached ({why or 'it is gone'}): {hint}, then run again"


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"worker killed by signal {signal.Signals(-code).name}"
    return f"worker exited with code {code}"


def _launch(spec: TrialSpec, warm: WarmWorker | None = None) -> subprocess.Popen:
    path = spec.write()
    child = warm.take(path) if warm is not None else None
    if child is not None:
        return child
    log = open(Path(spec.trial_dir) / LOG, "ab")
    try:
        return _popen(str(path), stdout=log, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def _popen(arg: str, **io) -> subprocess.Popen:
    """A worker process (``arg``: a spec path or ``--warm``) in its own process group."""
    return subprocess.Popen([sys.executable, "-m", "gg_optuna_helpers.worker", arg],
                            stderr=subprocess.STDOUT, env=_worker_env(), start_new_session=True,
                            **io)


def _worker_env() -> dict[str, str]:
    return dict(os.environ, PYTHONBREAKPOINT="0", PYTHONUNBUFFERED="1",
                GG_OPTUNA_PARENT_PID=str(os.getpid()))


class WarmWorker:
    """One worker process started ahead (``worker --warm``), handed the next trial's spec.

    :meth:`take` hands it over; :meth:`refill` (called at the trial's first epoch) starts the
    next one, which warms up while that trial trains. A warm process that died, or was started
    under another environment, is discarded (the trial then starts cold, as without a warm
    worker). Use as a context manager, or :meth:`close` it: the spare process is killed.
    """

    def __init__(self) -> None:
        self._child: subprocess.Popen | None = None
        self._env: dict[str, str] = {}
        self.refill()

    def refill(self) -> None:
        """Start a spare process unless one is there."""
        if self._child is None:
            self._env = _worker_env()
            self._child = _popen("--warm", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def take(self, spec_path: Path) -> subprocess.Popen | None:
        """The warm process, now training ``spec_path``; None if there is none to use."""
        child, env, self._child = self._child, self._env, None
        if child is None:
            return None
        if child.poll() is not None or env != _worker_env():
            _discard(child)
            return None
        try:
            child.stdin.write(f"{spec_path}\n".encode())
            child.stdin.close()
        except OSError:  # it died just now
            _discard(child)
            return None
        return child

    def close(self) -> None:
        if self._child is not None:
            _discard(self._child)
            self._child = None

    def __enter__(self) -> WarmWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stop(child: subprocess.Popen, spec: TrialSpec, grace: float) -> None:
    """Ask the worker to stop (STOP file), then kill its process group after ``grace``."""
    (Path(spec.trial_dir) / STOP).touch()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _kill(child)


def _discard(child: subprocess.Popen) -> None:
    _kill(child)
    if child.stdin and not child.stdin.closed:
        child.stdin.close()


def _kill(child: subprocess.Popen) -> None:
    if child.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child.wait()


def _fail_timeout(child: subprocess.Popen, spec: TrialSpec, limits: TimeLimits,
                  why: str) -> None:
    _stop(child, spec, min(limits.stop_grace, 5.0))
    raise TrialFailed(Failure.TIMEOUT, why)


def log_tail(trial_dir: str | os.PathLike, lines: int = 20) -> str:
    """The last ``lines`` lines of a trial's worker log."""
    try:
        text = (Path(trial_dir) / LOG).read_text(errors="replace")
    except OSError:  # none yet, or its disk is gone
        return ""
    return "\n".join(text.splitlines()[-lines:])
