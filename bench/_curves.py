"""Recorded learning curves of a fixed pool of configurations, replayed by in-process studies.

A tabular benchmark, as LCBench or HPOBench: each stage gets a pool of ``K`` configurations (the
backend's defaults first, the rest drawn at random from the package's space), each trained ONCE
to the full budget with the trainer's seed, and validated every ``1 / SPANS`` of an epoch. Both
budgets read the same runs: the 12-epoch budget every ``SPANS``-th validation (one per epoch), the
real-like budget every validation (``12 * SPANS`` reports, as the real backend reporting every
``iters_per_epoch`` iterations). A span is a mini "epoch" of ``64 / SPANS`` samples, so a trial
trains exactly as much at both budgets.

Recording runs in parallel processes and appends one JSON line per configuration to
``<out>/.curves/<stage>_k<K>.jsonl``: an interrupted recording resumes, a finished one is reused.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from gg_optuna_helpers.backends import TrainerContext, get_backend
from gg_optuna_helpers.spaces import Param, SearchSpace
from gg_optuna_helpers.worker import is_diverged


SPANS = 4  # validations per epoch in the recording
EPOCHS = 12  # the training every recorded configuration gets
POOL_SEED = 2026  # the random draw of the pool (the trainer seed is the benchmark's --train-seed)


def pool_params(stage: str, space: SearchSpace, k: int) -> list[dict[str, Any]]:
    """The pool: the backend's defaults, then ``k - 1`` random configurations of ``space``."""
    defaults = get_backend("mini").defaults(stage, {})
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=POOL_SEED))
    pool = [{n: defaults[n] for n in space.names}]
    while len(pool) < k:
        pool.append(space.suggest(study.ask()))
    return pool


def record(stage: str, space: SearchSpace, *, k: int, seed: int, jobs: int, folder: Path,
           epochs: int = EPOCHS) -> list[dict[str, Any]]:
    """Every pool configuration's curve (see :func:`_train`), training only what is missing."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stage}_k{k}_seed{seed}_e{epochs}.jsonl"
    pool = pool_params(stage, space, k)
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                c = json.loads(line)
                done[c["index"]] = c
    missing = [i for i in range(k) if i not in done]
    if missing:
        print(f"   recording {len(missing)} of {k} {stage} curves ({jobs} processes)", flush=True)
        tasks = [(stage, pool[i], i, seed, epochs, str(folder / "cache")) for i in missing]
        with ProcessPoolExecutor(max_workers=jobs) as ex, open(path, "a") as f:
            # the first alone: it fills the backend's caches (baseline MeshHead, gaze estimator)
            first = _train(tasks[0])
            for curve in itertools.chain([first], ex.map(_train, tasks[1:])):
                f.write(json.dumps(curve) + "\n")
                f.flush()
                done[curve["index"]] = curve
    curves = [done[i] for i in range(k)]
    assert all(c["params"] == p for c, p in zip(curves, pool)), "pool changed: delete " + str(path)
    return curves


def _train(task: tuple) -> dict[str, Any]:
    """Train one configuration for EPOCHS epochs, validating every span (CPU seconds, 1 thread)."""
    stage, params, index, seed, epochs, cache = task
    torch.set_num_threads(1)
    t0 = time.process_time()
    trainer = get_backend("mini").make_trainer(TrainerContext(
        stage=stage, params=dict(params), max_epochs=epochs * SPANS, seed=seed, device="cpu",
        trial_dir=Path(cache), cache_dir=Path(cache)))
    trainer.samples_per_epoch //= SPANS  # an "epoch" of the trainer is one span here
    curve = {"index": index, "params": params, "setup": time.process_time() - t0,
             "values": [], "train_s": [], "val_s": [], "diverged_at": None}
    for span in range(1, epochs * SPANS + 1):
        t0 = time.process_time()
        loss = trainer.train_epoch(span).get("loss", 0.0)
        t1 = time.process_time()
        value = trainer.validate()["value"] if math.isfinite(loss) else math.nan
        curve["train_s"].append(t1 - t0)
        curve["val_s"].append(time.process_time() - t1)
        if is_diverged(loss, value):
            curve["diverged_at"] = span
            break
        curve["values"].append(value)
    return curve


class PoolBank:
    """Replays a recorded pool at one budget, for :func:`_inprocess.run_inprocess`.

    ``reports``: reports per trial, ``epochs * SPANS`` (one per span) or ``epochs`` (one per
    epoch). A trial's sampled parameters get the NEAREST recorded configuration (in the space
    scaled to [0, 1], log where the space is) that this study has not used yet, so every trial
    of a study is a distinct configuration. Charged seconds: the build (first report), the
    training spans up to the report and the validation at it, as recorded.
    """

    def __init__(self, stage: str, space: SearchSpace, curves: list[dict[str, Any]], *,
                 reports: int, seed: int) -> None:
        spans = max(len(c["train_s"]) for c in curves)
        if spans % reports:
            raise ValueError(f"{reports} reports do not divide the {spans} recorded spans")
        self.stage, self.seed, self.max_epochs = stage, seed, reports
        self.backend, self.curves, self.every = get_backend("mini"), curves, spans // reports
        self.space, self.trained_seconds = space, 0.0
        self.points = np.array([self._point(c["params"]) for c in curves])
        self.start_study()

    def start_study(self) -> None:
        self.assigned: dict[tuple, int] = {}

    def epoch(self, params: dict[str, Any], epoch: int) -> tuple[float, float]:
        """Value (nan once diverged) and charged seconds at report ``epoch`` (from 1)."""
        c = self.curves[self._index(params)]
        first, last = (epoch - 1) * self.every, epoch * self.every  # spans [first, last)
        seconds = (c["setup"] if epoch == 1 else 0.0) + sum(c["train_s"][first:last])
        if c["diverged_at"] is not None and c["diverged_at"] <= last:
            return math.nan, seconds + c["val_s"][-1]
        return c["values"][last - 1], seconds + c["val_s"][last - 1]

    def full_best(self, params: dict[str, Any]) -> float:
        """The best value ``params``' configuration reports over the whole budget."""
        values = self.curves[self._index(params)]["values"][self.every - 1::self.every]
        return min(values, default=math.inf)

    def _index(self, params: dict[str, Any]) -> int:
        key = tuple(sorted(params.items()))
        if key not in self.assigned:
            order = np.argsort(((self.points - self._point(params)) ** 2).sum(1), kind="stable")
            used = set(self.assigned.values())
            self.assigned[key] = next((int(i) for i in order if i not in used), int(order[0]))
        return self.assigned[key]

    def _point(self, params: dict[str, Any]) -> list[float]:
        return [_scaled(p, params[p.name]) for p in self.space.params]


def _scaled(p: Param, value: Any) -> float:
    """``value`` of ``p`` in [0, 1]: log or linear in its range, or its choice's rank."""
    if p.kind == "categorical":
        return p.choices.index(value) / max(1, len(p.choices) - 1)
    if p.log:
        return (math.log(value) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
    return (value - p.low) / (p.high - p.low)
