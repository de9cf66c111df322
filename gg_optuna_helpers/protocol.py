"""The file protocol between the study process and a trial's worker process.

A trial folder holds ``spec.json`` (written by the parent), ``metrics.jsonl`` (one JSON line per
event, appended by the worker), ``worker.log``, the ``last.pt`` / ``best.pt`` checkpoints,
``preview.png`` and, to ask the worker to stop, a ``STOP`` file.

Metrics lines: ``{"event": "start", "start_epoch": e}``, one
``{"event": "epoch", "epoch": e, "value": v, "parts": {...}, "train": {...}, "seconds": s}``
per epoch, and a final ``{"event": "end", "reason": ..., "best_value": v, "best_epoch": e}``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


SPEC, METRICS, LOG, STOP = "spec.json", "metrics.jsonl", "worker.log", "STOP"
LAST, BEST, PREVIEW = "last.pt", "best.pt", "preview.png"

# Worker exit codes. Anything else (including death by a signal) is a crash.
EXIT_OK, EXIT_CRASHED, EXIT_OOM, EXIT_DIVERGED, EXIT_DISK_FULL = 0, 1, 3, 4, 5
# The "end" event's reason: trained to the end, stopped early, asked to stop, or a failure.
DONE, EARLY_STOP, STOPPED = "done", "early_stop", "stopped"
WITH_VALUE = (DONE, EARLY_STOP)  # the reasons that end a trial with its best value


@dataclass
class TrialSpec:
    """What one worker trains. ``resume`` is the checkpoint to continue from, if any."""

    backend: str
    stage: str
    params: dict[str, Any]
    max_epochs: int
    trial_dir: str
    cache_dir: str
    seed: int = 42
    device: str = "auto"
    resume: str | None = None
    patience: int | None = None
    min_delta: float = 0.0
    warmup_epochs: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def write(self) -> Path:
        path = Path(self.trial_dir) / SPEC
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> TrialSpec:
        return cls(**json.loads(Path(path).read_text()))


def append_event(trial_dir: str | os.PathLike, **event: Any) -> None:
    """Append one metrics line and flush it to disk (the parent may be reading)."""
    with open(Path(trial_dir) / METRICS, "a") as f:
        f.write(json.dumps(event) + "\n")
        f.flush()
        os.fsync(f.fileno())


class EventReader:
    """Reads complete metrics lines appended since the reader was created."""

    def __init__(self, trial_dir: str | os.PathLike) -> None:
        self.path = Path(trial_dir) / METRICS
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]
