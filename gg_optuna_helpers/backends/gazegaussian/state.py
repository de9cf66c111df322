"""Checkpoint helpers: random-number state, and row-sparse storage of per-sample tensors.

GazeGaussian learns an offset per training sample (identity, expression, camera): tables with
one row per frame of the data set, mostly untouched in a short trial. Storing only the rows
that are not zero keeps a checkpoint small, and is exact (Adam leaves untouched rows at zero).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

SPARSE = "__rows__"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def compact(value: Any, rows: int) -> Any:
    """``value`` with every tensor of ``rows`` rows stored as its non-zero rows (recursively)."""
    if isinstance(value, dict):
        return {k: compact(v, rows) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(compact(v, rows) for v in value)
    if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == rows > 1:
        data = value.detach().cpu()
        used = data.reshape(rows, -1).ne(0).any(1).nonzero().flatten()
        return {SPARSE: used, "values": data[used].clone(), "shape": tuple(data.shape),
                "dtype": str(data.dtype)}
    return value


def expand(value: Any) -> Any:
    """Undo :func:`compact`."""
    if isinstance(value, dict) and SPARSE in value:
        dtype = getattr(torch, value["dtype"].removeprefix("torch."))
        full = torch.zeros(value["shape"], dtype=dtype)
        full[value[SPARSE]] = value["values"]
        return full
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(expand(v) for v in value)
    return value
