"""Models trained once and shared by all trials of a results folder through ``ctx.cache_dir``.

Several trial processes may race to produce the same file: each writes a private temporary file
and moves it in place with ``os.replace``, so a reader sees either nothing or a complete file.
Producers are deterministic, so whichever copy wins holds the same weights.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Callable

import torch


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save(obj, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load(path: Path, device: str) -> dict[str, Any]:
    """Load a checkpoint dict onto ``device`` (tensors and plain Python values only)."""
    return torch.load(path, map_location=device, weights_only=True)


def cached(path: Path, device: str, produce: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The dict stored at ``path``; produced by ``produce()`` and saved atomically if absent."""
    if not Path(path).exists():
        atomic_save(produce(), path)
    return load(path, device)
