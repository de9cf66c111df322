"""``check_repo``: is a GazeGaussian checkout ready for a study, and how long would one take?

Checks the checkout, its options, the files it loads at run time, the data, the GPU; then, when
nothing is missing, times a few real iterations of both stages in a child process (the same
code path trials use) and estimates hours per trial and per study.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...errors import ConfigError
from .checkout import inspect, missing_files
from .data import data_files, locate, spellings, split_keys
from ..base import STAGES
from .options import (DATA_DEFAULTS, FEATMAP_CHANNELS, MLP_GROUPS, orthogonality_works,
                      overrides, positive_int, supported)

ASSETS = {  # loaded at run time from the repo root; shipped in the repo's config_models.zip
    "configs/config_models/tets_data.npz": "MeshHead's tetrahedral grid",
    "configs/config_models/epoch_60_512_ckpt.pth.tar": "the gaze estimator's weights",
}
SET_BY_ADAPTER = {"meshhead": ("lr_lmk", "img_dir", "dataset_name", "num_workers", "num_epochs"),
                  "gazegaussian": ("img_dir", "dataset_name", "num_workers", "num_epochs",
                                   "featmap_size", "featmap_nc", "load_meshhead_checkpoint")}
PROBE_MARKER = "GG_PROBE_RESULT "


@dataclass(frozen=True)
class Finding:
    status: str  # ok, warn or problem
    topic: str
    text: str

    def line(self) -> str:
        return f"{self.status.upper():7s} {self.topic}: {self.text}"


@dataclass
class RepoReport:
    """What :func:`check_repo` found: one :class:`Finding` per check, and the estimates."""

    repo: Path
    findings: list[Finding] = field(default_factory=list)
    variant: str | None = None
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    hours_per_trial: dict[str, float] = field(default_factory=dict)
    hours_per_study: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing stands in the way of a study (warnings allowed)."""
        return not any(f.status == "problem" for f in self.findings)

    def problems(self) -> list[str]:
        return [f.text for f in self.findings if f.status == "problem"]

    def lines(self) -> list[str]:
        return [f.line() for f in self.findings]

    def add(self, status: str, topic: str, text: str) -> None:
        self.findings.append(Finding(status, topic, text))


def check_repo(repo: str | os.PathLike, data: str | os.PathLike | None = None, *,
               options: dict[str, Any] | None = None, time_iters: int = 3,
               val_data: str | os.PathLike | None = None, val_split: str = "subjects",
               dataset: str | None = None, iters_per_epoch: int = 1000, val_samples: int = 30,
               epochs: int | None = None, trials: int | None = None,
               timeout: float = 1800.0) -> RepoReport:
    """Check the checkout at ``repo`` (and its data) for the gazegaussian backend.

    ``options`` are the backend options the study's trials get (``run --backend-option``):
    their ``data``, ``val_data``, ``val_split``, ``dataset``, ``iters_per_epoch`` and
    ``val_samples`` take the place of the keyword arguments, ``subjects`` limits the training
    files checked to that subset, and the timing run uses all of them (``opt.NAME``
    included), so it times the trials' configuration.
    ``time_iters`` iterations of each stage are timed when everything is in place (0: skip).
    ``iters_per_epoch``, ``val_samples``, ``epochs`` and ``trials`` (the study's
    ``max_epochs`` and ``n_trials``; default: a study's defaults) size the estimate, an upper
    bound: pruned trials stop early.
    """
    options = dict(options or {})
    data = options.pop("data", None) or data
    val_data = options.pop("val_data", None) or val_data
    val_split = options.pop("val_split", val_split)
    dataset = options.pop("dataset", None) or dataset
    iters_per_epoch = positive_int(options, "iters_per_epoch", iters_per_epoch)
    val_samples = positive_int(options, "val_samples", val_samples)
    root = Path(repo).expanduser().resolve()
    report = RepoReport(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        report.add("problem", "checkout", f"{root} {what}: clone ucwxb/GazeGaussian or "
                   "kram254/GazeGaussian there, or fix the path.")
        return report
    missing = missing_files(root)
    for name in missing:
        report.add("problem", "checkout", f"{name} is missing, so {root} is not a complete "
                   "GazeGaussian checkout.")
    if missing:
        return report
    try:
        checkout = inspect(root)
    except ConfigError as e:
        report.add("problem", "options", str(e))
        return report
    report.variant = checkout.variant
    _check_options(report, checkout)
    errors = []
    for stage in STAGES:
        try:
            overrides(stage, checkout, options)
        except ConfigError as e:
            errors.append(str(e))
    for text in dict.fromkeys(errors):  # a stage-independent fault is said once
        report.add("problem", "options", text)
    _check_assets(report, root)
    repo_data = {**DATA_DEFAULTS, **checkout.meshhead}
    dataset = dataset or repo_data["dataset_name"]
    folder = Path(data or root / repo_data["img_dir"]).expanduser().resolve()
    held_out = Path(val_data or f"{folder}_test").expanduser().resolve()
    _check_data(report, root, dataset, {"train": folder,
                                        **({"val": held_out} if val_split == "subjects" else {})},
                options.get("subjects"))
    _check_gpu(report)
    if report.ok and time_iters > 0:
        probe = {**options, "repo": str(root), "data": str(folder), "val_data": str(held_out),
                 "val_split": val_split, "dataset": dataset, "val_samples": 2}
        _time(report, probe, time_iters, timeout)
        _estimate(report, iters_per_epoch, val_samples, epochs, trials)
    return report


def _check_options(report: RepoReport, checkout: Any) -> None:
    if checkout.variant == "fork":
        report.add("ok", "checkout", f"DiT fork at {checkout.root} (DiT renderer: "
                   f"{'yes' if checkout.has_dit else 'no'}, orthogonality loss: "
                   f"{'yes' if checkout.has_orthogonality else 'no'}).")
    else:
        report.add("ok", "checkout", f"upstream GazeGaussian at {checkout.root} (no DiT or "
                   "orthogonality options: dit_* and orthogonality_loss_importance cannot be "
                   "searched).")
    for stage in ("meshhead", "gazegaussian"):
        repo = checkout.options(stage)
        searched = supported(stage, checkout)
        absent = [n for n in SET_BY_ADAPTER[stage] if n not in repo]
        for name in absent:
            report.add("problem", "options", f"{stage} option {name!r} is missing from "
                       f"configs/{stage}_options.py, which the adapter needs.")
        if not absent:
            report.add("ok", "options", f"{stage}: searchable here: " + ", ".join(
                f"{ours} ({' + '.join(MLP_GROUPS.get(ours, [theirs]))})" if ours != theirs
                else ours for ours, theirs in searched.items()) + ".")
    if checkout.gazegaussian.get("featmap_nc", FEATMAP_CHANNELS) != FEATMAP_CHANNELS:
        report.add("problem", "options", f"featmap_nc is {checkout.gazegaussian['featmap_nc']}, "
                   f"but the rasterizer is built for {FEATMAP_CHANNELS} channels.")
    if checkout.has_orthogonality and orthogonality_works(checkout) is False:
        report.add("warn", "options", "the orthogonality loss fails on the trainer's inputs (gaze "
                   "2-d, head rotation 3-d), so orthogonality_loss_importance is held at 0.0 "
                   "until calc_orthogonality_loss in losses/gazenerf_loss.py is repaired.")


def _check_assets(report: RepoReport, root: Path) -> None:
    for name, what in ASSETS.items():
        if (root / name).is_file():
            report.add("ok", "files", f"{name} ({what}) is there.")
        else:
            report.add("problem", "files", f"{name} ({what}) is missing: download config_models.zip"
                       " as the repo's README says and unzip it in configs/.")


def _check_data(report: RepoReport, root: Path, dataset: str, folders: dict[str, Path],
                subjects: Any) -> None:
    try:
        keys = split_keys(root, dataset)
        files = {split: data_files(root, folder, dataset, split, subjects)
                 for split, folder in folders.items()}
    except ConfigError as e:
        report.add("problem", "data", str(e))
        return
    for split, folder in folders.items():
        missing = [p for p in files[split] if not p.is_file()]
        name = "training" if split == "train" else "held-out (val)"
        of = (f" (subjects: {len(files[split])} of {len(keys['train'])})"
              if split == "train" and subjects is not None else "")
        if not files[split]:
            report.add("problem", "data", f"the {dataset} split list has no {split} subjects.")
        elif missing:
            report.add("problem", "data", f"{len(missing)} of {len(files[split])} {name} files "
                       f"are missing from {folder} (first: {missing[0].name}): "
                       f"{_data_fix(root, folder, dataset, split, subjects)}.")
        else:
            report.add("ok", "data", f"{len(files[split])} {name} files in {folder}{of}.")


def _data_fix(root: Path, folder: Path, dataset: str, split: str, subjects: Any) -> str:
    """How to fix missing data files: where they are under other names, or what to pass."""
    found = {}
    if folder.is_dir():
        found, _ = locate(folder, spellings(root, dataset, split, subjects))
    moved = next(((name, rel) for name, rel in found.items() if str(rel) != name), None)
    if moved:
        return (f"they are there as {moved[1]} (another file-name scheme or one folder "
                f"down), which setup-repo links to {moved[0]} in its local copy")
    fix = "--data" if split == "train" else "--backend-option val_data=, or val_split=frames"
    return f"download them as the repo's README says, or pass {fix}"


def _check_gpu(report: RepoReport) -> None:
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        report.add("ok", "gpu", f"{props.name}, {props.total_memory / 2**30:.0f} GiB.")
    else:
        report.add("warn", "gpu", "torch sees no CUDA GPU: the real repo's rasterizers need one "
                   "(timings below, if any, are CPU timings).")


def _time(report: RepoReport, options: dict[str, Any], iters: int, timeout: float) -> None:
    """Run :mod:`.probe` in a child process and record its timings or its error."""
    with tempfile.TemporaryDirectory(prefix="gg_check_") as work:
        spec = Path(work) / "probe.json"
        spec.write_text(json.dumps({"options": options, "iters": iters, "workdir": work}))
        package_parent = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ, PYTHONBREAKPOINT="0",
                   PYTHONPATH=os.pathsep.join(filter(None, [package_parent,
                                                            os.environ.get("PYTHONPATH")])))
        try:
            done = subprocess.run(
                [sys.executable, "-m", "gg_optuna_helpers.backends.gazegaussian.probe", str(spec)],
                capture_output=True, text=True, timeout=timeout, env=env, cwd=work)
        except subprocess.TimeoutExpired:
            report.add("problem", "timing", f"timing {iters} iterations took over {timeout:g} s.")
            return
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(PROBE_MARKER)]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        report.add("problem", "timing", f"the timing run failed before reporting ({tail}).")
        return
    result = json.loads(lines[-1][len(PROBE_MARKER):])
    report.seconds = result.get("seconds", {})
    if "error" in result:
        report.add("problem", "timing", f"the {result['stage']} stage failed: {result['error']}")


def _estimate(report: RepoReport, iters_per_epoch: int, val_samples: int, epochs: int | None,
              trials: int | None) -> None:
    from ...config import StudyConfig  # a study's defaults: what the notebooks and `run` use

    epochs, trials = epochs or StudyConfig.max_epochs, trials or StudyConfig.n_trials
    for stage, s in report.seconds.items():
        epoch = iters_per_epoch * s["per_iter"] + val_samples * s["per_val_sample"]
        report.hours_per_trial[stage] = epochs * epoch / 3600
        report.hours_per_study[stage] = trials * report.hours_per_trial[stage]
        report.add("ok", "estimate", f"{stage}: {s['per_iter']:.3g} s/iteration, "
                   f"{s['per_val_sample']:.3g} s/validation sample -> "
                   f"{report.hours_per_trial[stage]:.2f} h per trial ({epochs} epochs of "
                   f"{iters_per_epoch} iterations + {val_samples} validation samples), "
                   f"{report.hours_per_study[stage]:.1f} h per study of {trials} trials "
                   "(upper bound: pruned trials stop early).")
