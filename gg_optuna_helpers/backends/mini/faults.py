"""Test hooks that make a trial's child process fail for real at a chosen epoch.

Selected through the trial spec: ``options["fault"] = {"kind": KIND, "epoch": E}`` with KIND one of

- ``"oom"``: raise ``torch.cuda.OutOfMemoryError`` (constructible on CPU builds too);
- ``"nan"``: poison the epoch's input batches with NaN, so the real loss comes out NaN;
- ``"crash"``: ``os._exit(86)`` at once, flushing nothing, as a segfaulting extension would;
- ``"hang"``: sleep forever, as a deadlocked data loader would.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from ...errors import ConfigError

KINDS = ("oom", "nan", "crash", "hang")
CRASH_EXIT_CODE = 86


def check(fault: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refuse a malformed fault spec before training starts; return it unchanged."""
    if fault is None:
        return None
    if not isinstance(fault, dict) or fault.get("kind") not in KINDS \
            or not isinstance(fault.get("epoch"), int):
        raise ConfigError(f"fault must be {{'kind': one of {KINDS}, 'epoch': int}}, "
                          f"but got {fault!r}.")
    return fault


def strike(fault: dict[str, Any] | None, epoch: int) -> bool:
    """Fail now if ``fault`` is due at ``epoch``. Returns True when the batches must be poisoned."""
    if fault is None or fault["epoch"] != epoch:
        return False
    kind = fault["kind"]
    if kind == "oom":
        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory (injected by the mini backend's fault hook at epoch {epoch})")
    if kind == "crash":
        os._exit(CRASH_EXIT_CODE)
    if kind == "hang":
        while True:
            time.sleep(3600)
    return True  # "nan"
