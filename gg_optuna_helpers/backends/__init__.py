"""Training backends, looked up by name: ``mini`` (embedded, CPU-fast) and ``gazegaussian``."""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import STAGES, Backend, Export, Trainer, TrainerContext

BACKENDS = {"mini": ".mini", "gazegaussian": ".gazegaussian"}

__all__ = ["BACKENDS", "STAGES", "Backend", "Export", "Trainer", "TrainerContext", "get_backend"]


def get_backend(name: str) -> Backend:
    """Return the backend called ``name`` (its module's ``BACKEND`` object)."""
    if name not in BACKENDS:
        raise ConfigError(f"Unknown backend {name!r}: choose one of {', '.join(BACKENDS)}.")
    return importlib.import_module(BACKENDS[name], __name__).BACKEND
