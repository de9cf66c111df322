"""Run one trial's worker as a child process and relay its epochs to Optuna.

The child runs in its own process group (so a hang or a stuck CUDA context can be killed as a
whole) and dies with us. Each epoch line is reported; ``should_prune`` writes ``STOP``, waits a
grace period, then kills. Any failure becomes :class:`TrialFailed` with a reason and the last
lines of the worker log; the study goes on.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

from .errors import TrialFailed
from .protocol import (EXIT_DISK_FULL, EXIT_DIVERGED, EXIT_OK, EXIT_OOM, LOG, STOP, EventReader,
                       TrialSpec)

EXIT_REASONS = {EXIT_OOM: "oom", EXIT_DIVERGED: "diverged", EXIT_DISK_FULL: "disk_full"}


@dataclass
class Limits:
    """Time limits for one trial, in seconds (None: no limit)."""

    trial_timeout: float | None = None
    epoch_timeout: float | None = None  # no new epoch for this long -> hung
    stop_grace: float = 10.0
    poll: float = 0.2


@dataclass
class Outcome:
    """What a finished worker left: its best value and how it ended."""

    best_value: float
    reason: str  # done, early_stop
    epochs: int
    best_epoch: int


def run_trial(trial: optuna.Trial, spec: TrialSpec, *, limits: Limits,
              on_tick: Callable[[], None] = lambda: None) -> Outcome:
    """Train ``spec`` in a child process; raise TrialPruned or TrialFailed, or return."""
    reader = EventReader(spec.trial_dir)
    (Path(spec.trial_dir) / STOP).unlink(missing_ok=True)
    try:
        child = _launch(spec)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise TrialFailed("disk_full", _disk_full(spec.trial_dir)) from None
        raise
    relay = _Relay(trial)
    started = last_epoch_at = time.monotonic()
    try:
        while True:
            for event in reader.read():
                if relay.handle(event):
                    last_epoch_at = time.monotonic()
            if relay.prune_at is not None:
                _stop(child, spec, limits.stop_grace)
                trial.set_user_attr("pruned_at", relay.prune_at)
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
            time.sleep(limits.poll)
    except BaseException:
        _kill(child)
        relay.finish()
        raise


class _Relay:
    """Turns metrics events into Optuna reports and user attrs."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.reported = set(frozen(trial).intermediate_values)  # inherited by a retry
        self.epochs = 0  # epochs trained by this attempt
        self.seconds = 0.0
        self.prune_at: int | None = None
        self.end: dict | None = None

    def handle(self, event: dict) -> bool:
        """Process one event; True when it is a newly trained epoch."""
        if event["event"] == "end":
            self.end = event
        if event["event"] == "start":
            self.trial.set_user_attr("start_epoch", event["start_epoch"])
        if event["event"] != "epoch":
            return False
        epoch = event["epoch"]
        if epoch not in self.reported:
            self.trial.report(event["value"], epoch)
            self.reported.add(epoch)
        for key, val in event.get("parts", {}).items():
            self.trial.set_user_attr(key, val)
        if event.get("replayed"):
            return False
        self.epochs += 1
        self.seconds += event["seconds"]
        if self.trial.should_prune():
            self.prune_at = epoch
        return True

    def finish(self) -> None:
        self.trial.set_user_attr("epochs", self.epochs)
        if self.epochs:
            self.trial.set_user_attr("seconds_per_epoch", self.seconds / self.epochs)


def _outcome(code: int, relay: _Relay, trial_dir: str) -> Outcome:
    end = relay.end or {}
    if code == EXIT_OK and end.get("reason") in ("done", "early_stop"):
        if end["reason"] == "early_stop":
            relay.trial.set_user_attr("early_stopped_at", end["last_epoch"])
        return Outcome(end["best_value"], end["reason"], relay.epochs, end["best_epoch"])
    reason = EXIT_REASONS.get(code, "crashed")
    if code == EXIT_DISK_FULL:  # the worker could not write a word of its own
        raise TrialFailed(reason, _disk_full(trial_dir))
    detail = end.get("message") or _describe_exit(code)
    raise TrialFailed(reason, detail)


def _disk_full(trial_dir: str) -> str:
    return (f"no space left on the disk of {trial_dir} for checkpoints and metrics: free some "
            "space or choose another --results-dir, then run again")


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"worker killed by signal {signal.Signals(-code).name}"
    return f"worker exited with code {code}"


def _launch(spec: TrialSpec) -> subprocess.Popen:
    path = spec.write()
    env = dict(os.environ, PYTHONBREAKPOINT="0", PYTHONUNBUFFERED="1",
               GG_OPTUNA_PARENT_PID=str(os.getpid()))
    log = open(Path(spec.trial_dir) / LOG, "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "gg_optuna_helpers.worker", str(path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
    finally:
        log.close()


def _stop(child: subprocess.Popen, spec: TrialSpec, grace: float) -> None:
    """Ask the worker to stop (STOP file), then kill its process group after ``grace``."""
    (Path(spec.trial_dir) / STOP).touch()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _kill(child)


def _kill(child: subprocess.Popen) -> None:
    if child.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child.wait()


def _fail_timeout(child: subprocess.Popen, spec: TrialSpec, limits: Limits, why: str) -> None:
    _stop(child, spec, min(limits.stop_grace, 5.0))
    raise TrialFailed("timeout", why)


def frozen(trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    """The stored view of a running trial (system attrs, inherited intermediate values)."""
    return trial.study._storage.get_trial(trial._trial_id)


def log_tail(trial_dir: str | os.PathLike, lines: int = 20) -> str:
    """The last ``lines`` lines of a trial's worker log."""
    path = Path(trial_dir) / LOG
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
