"""Every knob of one study, with its defaults (the one place they are set) and its checks."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from .backends import STAGES, get_backend
from .config_checks import (check_backend_options, check_numbers, check_place_types,
                            check_places)
from .errors import ConfigError
from .layout import DEFAULT_FOLDER, Results, check_study_name, default_study_name
from .presets import make_pruner, make_sampler
from .spaces import SPACES, SearchSpace


@dataclass
class StudyConfig:
    """Every knob of one study. Unset names get sensible defaults in :meth:`resolved`."""

    stage: str
    backend: str = "mini"
    study_name: str | None = None  # default: "<backend>_<stage>"
    storage: str = DEFAULT_FOLDER  # a folder (snapshots) or a sqlite:// / postgresql:// URL
    results_dir: str | None = None  # trial folders; default: the storage folder
    n_trials: int = 20  # finished trials in total, across restarts
    max_epochs: int = 20
    pruner: str = "curve"  # kept the best on every seed of bench_time_to_quality; see docs
    sampler: str = "tpe"
    seed: int = 42
    timeout: float | None = None  # seconds for this call
    trial_timeout: float | None = None
    epoch_timeout: float | None = None
    patience: int | None = 5  # early stopping; None: off
    min_delta: float = 0.0
    device: str = "auto"
    space: SearchSpace | None = None
    edits: dict[str, Any] = field(default_factory=dict)  # e.g. {"batch_size": [1]}
    backend_options: dict[str, Any] = field(default_factory=dict)
    meshhead_study: str | None = None  # gazegaussian stage: where the best MeshHead comes from
    change_meshhead: bool = False  # allow a MeshHead other than the one the study recorded
    heartbeat_interval: int = 10
    local_dir: str | None = None
    fresh: bool = False  # the results folder has no copy of the study: set the live copy aside
    show_progress_bar: bool = True
    max_failures_in_a_row: int = 5
    warm_worker: bool = True  # start the next trial's process while the current one trains

    def resolved(self) -> StudyConfig:
        """A checked copy with defaults filled in; bad values raise one-sentence ConfigErrors."""
        cfg = copy.deepcopy(self)
        if cfg.stage not in STAGES:
            raise ConfigError(f"Unknown stage {cfg.stage!r}: choose one of {', '.join(STAGES)}.")
        check_numbers(cfg)
        check_place_types(cfg)
        make_pruner(cfg.pruner, max_epochs=cfg.max_epochs)
        make_sampler(cfg.sampler)
        cfg.study_name = check_study_name(cfg.study_name
                                          or default_study_name(cfg.backend, cfg.stage))
        cfg.meshhead_study = check_study_name(
            cfg.meshhead_study or default_study_name(cfg.backend, "meshhead"),
            "MeshHead study name")
        cfg.storage = os.fspath(cfg.storage)
        cfg.results_dir = os.fspath(Results.of(cfg.storage, cfg.results_dir).folder)
        check_places(cfg)
        check_backend_options(cfg)
        limits = get_backend(cfg.backend).limits(cfg.stage, cfg.backend_options)
        space = cfg.space or SPACES[cfg.stage].fitted(limits, keep=cfg.edits)
        cfg.space = space.replace(**cfg.edits)
        cfg.space.validate(limits, cfg.backend)
        return cfg

    @property
    def results(self) -> Results:
        """Where this study's trial folders, artifacts and caches go."""
        return Results.of(self.storage, self.results_dir)


__all__ = ["StudyConfig"]
