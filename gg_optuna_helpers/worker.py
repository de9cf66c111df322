"""``python -m gg_optuna_helpers.worker SPEC``: train one trial, epoch by epoch.

Knows nothing of Optuna. Reads the spec, resumes from its checkpoint, and after every epoch
validates, saves ``last.pt`` (and ``best.pt``), then appends a metrics line. ``last.pt`` holds
everything to resume; ``best.pt`` holds no optimizer state (no later step reads it there: stage
coupling, the preview and export read the weights), which makes it about a third of the size
under Adam. The study removes ``last.pt`` once the trial has ended for good. Stops cleanly when
``STOP`` appears, on SIGTERM, when the parent dies, or by early stopping. The preview of the best
epoch is rendered when the training is over (and during it at most every few minutes), not on
every new best. Exit codes are in :mod:`gg_optuna_helpers.protocol`.

``python -m gg_optuna_helpers.worker --warm`` starts ahead of its trial: it imports torch and
builds a first optimizer, then reads the spec's path from stdin and trains it as above.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import math
import os
import signal
import sys
import threading
import time
import _thread
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import torch

from .backends import TrainerContext, get_backend
from .protocol import (BEST, DONE, EARLY_STOP, EXIT_CRASHED, EXIT_DISK_FULL, EXIT_DIVERGED,
                       EXIT_OK, EXIT_OOM, LAST, LOG, PREVIEW, STOP, STOPPED, TrialSpec,
                       append_event)
from .records import Failure

CHECKPOINT_FORMAT = 1
# Keys of a trainer's state that hold optimizer state (at any depth): best.pt goes without them.
OPTIMIZER_KEY = "optimizer"
PREVIEW_EVERY_S = 300.0  # during training; the best epoch's preview is rendered at the end


def is_diverged(loss: float, value: float) -> bool:
    """A non-finite training loss or validation value: the trial fails as ``diverged``."""
    return not (math.isfinite(loss) and math.isfinite(value))


class Step(NamedTuple):
    """One epoch's decisions (:meth:`Progress.step`)."""

    diverged: bool = False  # the trial ends as Failure.DIVERGED; nothing else was decided
    is_best: bool = False  # a new best value: save best.pt
    stop: bool = False  # early stopping: no improvement for ``patience`` epochs


@dataclass
class Progress:
    """What survives a restart besides the trainer: best value, early-stopping count, history."""

    next_epoch: int = 1
    best_value: float = math.inf
    best_epoch: int = 0
    since_improvement: int = 0
    history: list[dict] = field(default_factory=list)

    def update(self, epoch: int, value: float, min_delta: float) -> bool:
        """Record one epoch's value; True when it is a new best."""
        self.next_epoch = epoch + 1
        improved = value < self.best_value - min_delta or self.best_epoch == 0
        if value < self.best_value:
            self.best_value, self.best_epoch = value, epoch
        self.since_improvement = 0 if improved else self.since_improvement + 1
        return self.best_epoch == epoch

    def step(self, epoch: int, value: float, *, loss: float = 0.0, min_delta: float,
             patience: int | None, warmup_epochs: int) -> Step:
        """One epoch's decisions, shared by the worker and the benchmarks: diverged, else
        recorded (new best?) and stop early (no improvement for ``patience`` epochs after the
        pruner's warm-up)?"""
        if is_diverged(loss, value):
            return Step(diverged=True)
        is_best = self.update(epoch, value, min_delta)
        return Step(is_best=is_best, stop=bool(patience) and epoch > warmup_epochs and (
            self.since_improvement >= patience))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--warm"]:
        argv = _wait_warm()
        if not argv:  # the study ended (or died) before handing a trial over
            return EXIT_OK
    if len(argv) != 1:
        print("usage: python -m gg_optuna_helpers.worker SPEC_JSON", file=sys.stderr)
        return 2
    spec = TrialSpec.read(argv[0])
    _watch(Path(spec.trial_dir), int(os.environ.get("GG_OPTUNA_PARENT_PID", "0")))
    _threads()
    try:
        return _train(spec)
    except KeyboardInterrupt:
        append_event(spec.trial_dir, event="end", reason=STOPPED)
        return EXIT_OK


def _train(spec: TrialSpec) -> int:
    trial_dir = Path(spec.trial_dir)
    device = _device(spec.device)
    torch.manual_seed(spec.seed)
    ctx = TrainerContext(stage=spec.stage, params=spec.params, max_epochs=spec.max_epochs,
                         seed=spec.seed, device=device, trial_dir=trial_dir,
                         cache_dir=Path(spec.cache_dir), options=spec.options)
    try:
        trainer = get_backend(spec.backend).make_trainer(ctx)
        progress = _resume(trainer, spec)
        append_event(trial_dir, event="start", start_epoch=progress.next_epoch,
                     resumed=bool(progress.history))
        for record in progress.history:  # re-report what the checkpoint already knew
            append_event(trial_dir, **record, replayed=True)
        try:
            reason = _epochs(trainer, spec, progress)
        except KeyboardInterrupt:  # STOP (pruned) or SIGTERM: keep the best epoch's preview
            _preview_best(trainer, trial_dir, progress, reload=True)
            raise
        _preview_best(trainer, trial_dir, progress, reload=reason == Failure.DIVERGED
                      or progress.best_epoch != progress.next_epoch - 1)
    except DamagedCheckpoint as e:
        append_event(trial_dir, event="end", reason=Failure.CRASHED, message=str(e))
        return EXIT_CRASHED
    except Exception as e:  # noqa: BLE001 - classify, then let anything else crash
        oom = _oom(e)
        if oom is not None:
            print(f"out of memory: {type(oom).__name__}: {oom}", file=sys.stderr)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            append_event(trial_dir, event="end", reason=Failure.OOM, message=str(oom)[:300])
            return EXIT_OOM
        if _is_disk_full(e):
            with contextlib.suppress(OSError):  # the log may sit on the same full disk
                print(f"disk full: {os.strerror(errno.ENOSPC)} ({e})", file=sys.stderr)
            return EXIT_DISK_FULL
        raise
    if reason == Failure.DIVERGED:  # its end line, with the epoch and the values, is written
        return EXIT_DIVERGED
    append_event(trial_dir, event="end", reason=reason, best_value=progress.best_value,
                 best_epoch=progress.best_epoch, last_epoch=progress.next_epoch - 1)
    return EXIT_OK


def _epochs(trainer, spec: TrialSpec, progress: Progress) -> str:
    """Train the remaining epochs; return the end reason."""
    trial_dir = Path(spec.trial_dir)
    previewed = time.monotonic()
    for epoch in range(progress.next_epoch, spec.max_epochs + 1):
        start = time.perf_counter()
        train = trainer.train_epoch(epoch)
        parts = dict(trainer.validate())
        value = parts.pop("value")
        seconds = time.perf_counter() - start
        step = progress.step(epoch, value, loss=train.get("loss", 0.0), min_delta=spec.min_delta,
                             patience=spec.patience, warmup_epochs=spec.warmup_epochs)
        if step.diverged:
            append_event(trial_dir, event="end", reason=Failure.DIVERGED,
                         message=f"the loss is not finite at epoch {epoch} (training loss "
                                 f"{train.get('loss')}, validation {value}): a lower learning "
                                 "rate may help")
            return Failure.DIVERGED
        record = {"event": "epoch", "epoch": epoch, "value": value, "parts": parts,
                  "train": train, "seconds": seconds}
        progress.history.append(record)
        _save(trainer, spec, progress, trial_dir / LAST)
        if step.is_best:
            _save(trainer, spec, progress, trial_dir / BEST, slim=True)
            if time.monotonic() - previewed >= PREVIEW_EVERY_S:
                trainer.preview(trial_dir / PREVIEW)
                previewed = time.monotonic()
        append_event(trial_dir, **record)
        if step.stop:
            return EARLY_STOP
    return DONE


class DamagedCheckpoint(Exception):
    """No checkpoint of the trial could be read; the message names each file."""


def _preview_best(trainer, trial_dir: Path, progress: Progress, *, reload: bool) -> None:
    """Render the best epoch's preview once training is over; ``reload``: from ``best.pt``
    (the trainer has moved past its best epoch)."""
    best = trial_dir / BEST
    if not progress.best_epoch or not best.exists():
        return
    if reload:
        _load(trainer, best)
    trainer.preview(trial_dir / PREVIEW)


def _wait_warm() -> list[str]:
    """``--warm``: pay torch's start-up now (its first optimizer imports ``torch._dynamo``),
    then wait for a spec path on stdin; this process's output then goes to that trial's log."""
    _die_with_parent()
    _threads()  # before torch's first work, as a cold worker
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    line = sys.stdin.readline().strip()
    if not line:
        return []
    log = os.open(Path(line).parent / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return [line]


def _resume(trainer, spec: TrialSpec) -> Progress:
    """Continue from ``last.pt``, or from ``best.pt`` (an earlier good epoch) if that is damaged."""
    if not spec.resume or not Path(spec.resume).exists():
        return Progress()
    problems = []
    for path in (Path(spec.resume), Path(spec.resume).with_name(BEST)):
        if not path.exists():
            continue
        try:
            ckpt = _load(trainer, path)
        except Exception as e:  # noqa: BLE001 - truncated, overwritten, another format
            problems.append(f"checkpoint {path} is damaged ({type(e).__name__})")
            continue
        if problems:
            print(f"{problems[0]}: resuming from {path.name} (epoch {ckpt['epoch']}) instead, "
                  "with a fresh optimizer state", file=sys.stderr)
        return Progress(**ckpt["progress"])
    raise DamagedCheckpoint("; ".join(problems) + ": move it away to train this trial again "
                            "from epoch 1")


def _load(trainer, path: Path) -> dict:
    """Load a checkpoint into ``trainer``; what it lacks (best.pt's optimizer state) keeps the
    trainer's own. Returns the checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    trainer.load_state_dict(_filled(ckpt["trainer"], trainer.state_dict()))
    return ckpt


def _filled(saved: Any, current: Any) -> Any:
    """``saved`` with the keys only ``current`` has added, at any depth of nested dicts."""
    if not (isinstance(saved, dict) and isinstance(current, dict)):
        return saved
    return {**current, **{k: _filled(v, current.get(k)) for k, v in saved.items()}}


def _without_optimizer(state: Any) -> Any:
    """``state`` without the entries named ``optimizer`` or ``*_optimizer``, at any depth."""
    if not isinstance(state, dict):
        return state
    return {k: _without_optimizer(v) for k, v in state.items()
            if not (isinstance(k, str) and k.endswith(OPTIMIZER_KEY))}


def _save(trainer, spec: TrialSpec, progress: Progress, path: Path, *, slim: bool = False) -> None:
    """Atomic checkpoint: write a temporary file, then rename; ``slim``: no optimizer state."""
    tmp = path.with_name(f".{path.name}.tmp")
    state = trainer.state_dict()
    try:
        # Through a file object: a full disk then raises OSError(ENOSPC), not a bare RuntimeError.
        with open(tmp, "wb") as f:
            torch.save({"format": CHECKPOINT_FORMAT, "backend": spec.backend, "stage": spec.stage,
                        "params": spec.params, "epoch": progress.next_epoch - 1,
                        "best_value": progress.best_value, "progress": progress.__dict__,
                        "trainer": _without_optimizer(state) if slim else state}, f)
    except BaseException:
        with contextlib.suppress(OSError):  # the folder may be gone (Drive disconnected)
            tmp.unlink(missing_ok=True)  # a partial file would keep the disk full for later trials
        raise
    os.replace(tmp, path)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _chain(e: BaseException | None) -> Iterator[BaseException]:
    """``e`` and the exceptions it was raised from or while handling (``__cause__``/``__context__``)."""
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def _oom(e: BaseException) -> BaseException | None:
    """The out-of-memory error in the chain, if any: the real repo catches errors and calls
    ``breakpoint()``, which raises in a trial, so the OOM is that exception's context."""
    chain = list(_chain(e))
    typed = [x for x in chain if isinstance(x, (torch.cuda.OutOfMemoryError, MemoryError))]
    worded = [x for x in chain if isinstance(x, RuntimeError) and (
        "out of memory" in str(x).lower() or "can't allocate" in str(x).lower())]
    return next(iter(typed + worded), None)


def _is_disk_full(e: BaseException | None) -> bool:
    """ENOSPC (or a quota) anywhere in the chain: torch.save turns it into the context of a
    RuntimeError."""
    return any(isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT)
               for x in _chain(e))


def _threads() -> None:
    if os.environ.get("GG_OPTUNA_THREADS"):
        torch.set_num_threads(int(os.environ["GG_OPTUNA_THREADS"]))


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):  # the kernel kills us when the parent dies
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _watch(trial_dir: Path, parent_pid: int) -> None:
    """Stop cleanly on STOP or SIGTERM; die with the parent (no orphan keeps the GPU)."""
    signal.signal(signal.SIGTERM, lambda *_: _thread.interrupt_main())
    _die_with_parent()

    def poll() -> None:
        while True:
            if parent_pid and os.getppid() != parent_pid:
                os._exit(EXIT_OK)
            if os.path.exists(trial_dir / STOP):  # False, not an error, when Drive is gone
                _thread.interrupt_main()
                return
            time.sleep(0.25)

    threading.Thread(target=poll, daemon=True, name="stop-watch").start()


def _exit(code: int) -> None:
    """Exit without the interpreter's teardown (about 0.8 s once torch is loaded, paid by every
    trial while its parent waits for the exit code): every file the trial wrote is closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())  # an exception still ends the process the usual way, with its traceback
