"""Checks of a whole study configuration, run before anything is created.

Each refusal is one sentence (a ConfigError) that says what was wrong and how to fix it;
``cfg`` is a :class:`~gg_optuna_helpers.config.StudyConfig` with its names filled in.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .layout import Results, is_place, is_url
from .storage import check_folder, check_url, check_writable_dir, local_base


def check_numbers(cfg) -> None:
    """Counts, seconds, the seed and the device: one sentence for the first bad one."""
    for name in ("n_trials", "max_epochs", "heartbeat_interval", "max_failures_in_a_row"):
        value = getattr(cfg, name)
        if not _whole(value) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, but got {value!r}.")
    for name in ("timeout", "trial_timeout", "epoch_timeout"):
        value = getattr(cfg, name)
        if value is not None and not (_real(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number of seconds, but got {value!r}.")
    if cfg.patience is not None and (not _whole(cfg.patience) or cfg.patience < 1):
        raise ConfigError(f"patience must be a whole number >= 1 or None, but got {cfg.patience!r}.")
    if not (_real(cfg.min_delta) and math.isfinite(cfg.min_delta) and cfg.min_delta >= 0):
        raise ConfigError(f"min_delta must be a finite number >= 0, but got {cfg.min_delta!r}.")
    if not _whole(cfg.seed) or not 0 <= cfg.seed < 2**31:
        raise ConfigError(f"seed must be a whole number from 0 to {2**31 - 1}, but got "
                          f"{cfg.seed!r}.")
    _check_device(cfg.device)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _check_device(device: Any) -> None:
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, but got {device!r}.")
    if device.startswith("cuda") and not _has_cuda():
        raise ConfigError(f"device {device!r} asks for a GPU, but torch sees no CUDA GPU here: "
                          "use --device auto or cpu, or a GPU runtime.")


def check_backend_options(cfg) -> None:
    """The options every backend shares (each backend's ``limits`` checks its own)."""
    checkpoint = cfg.backend_options.get("meshhead_checkpoint")
    if checkpoint is not None and not Path(str(checkpoint)).expanduser().is_file():
        raise ConfigError(f"There is no MeshHead checkpoint file {checkpoint}: fix the "
                          "meshhead_checkpoint backend option, or leave it out to take the "
                          "best of the MeshHead study.")


def check_place_types(cfg) -> None:
    """``storage`` a folder or URL; ``results_dir`` and ``local_dir`` folders or None."""
    for name in ("storage", "results_dir", "local_dir"):
        value = getattr(cfg, name)
        if value is None and name != "storage":
            continue
        if not is_place(value):
            got = repr(value) if isinstance(value, str) else type(value).__name__
            if name != "storage":
                raise ConfigError(f"{name} must be a folder path or None, but got {got}.")
            raise ConfigError(
                f"storage must be a results folder or a database URL, but got {got}: a run "
                "opens its own storage (with a heartbeat and snapshots), so pass a path such as "
                "'gg_results' or a URL such as 'postgresql://user@host/db'.")


def check_places(cfg) -> None:
    """Storage, local and results folders, before anything is written to any of them."""
    if is_url(cfg.storage):
        check_url(cfg.storage)
    else:
        check_folder(cfg.storage, write=True)
        local_base(cfg.local_dir, write=True)
    results = Results.of(cfg.storage, cfg.results_dir)
    check_folder(results.folder, write=True)
    for folder in (results.study_dir(cfg.study_name), results.artifacts):
        check_writable_dir(folder, "results folder")


def _has_cuda() -> bool:
    import torch  # only when a GPU is asked for: refusals stay fast

    return torch.cuda.is_available()


__all__ = ["check_backend_options", "check_numbers", "check_place_types", "check_places"]
