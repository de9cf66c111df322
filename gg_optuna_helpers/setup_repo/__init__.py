"""``setup_repo``: from a fresh Colab GPU runtime to a GazeGaussian checkout ready for a study.

Five steps, each safe to re-run and fast the second time: clone at the pinned commit, build or
fetch the CUDA packages as wheels, keep those wheels on Drive (so the runtime after a disconnect
installs in seconds), copy data and model files from Drive to local disk, run ``check-repo``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..colab import is_colab
from .clone import VARIANTS, ensure_clone, resolve
from .files import DataCopy, copy_data, place_model_files, place_weights
from .imports import failing_imports, install_missing
from .packages import WHEEL_MODULES, Package, packages_for
from .toolchain import Toolchain, detect
from .wheels import Builder, build_wheel, default_builder, ensure_wheels
from ._step import step

__all__ = ["SetupReport", "setup_repo", "VARIANTS", "Builder", "Package", "Toolchain",
           "build_wheel", "default_dest"]


@dataclass
class SetupReport:
    """Where things are after :func:`setup_repo`, and whether check-repo found it ready."""

    repo: Path
    commit: str
    data: Path | None = None
    val_data: Path | None = None
    ready: bool = False
    summary: str = ""
    subjects: list[str] | None = None  # the training subjects copied, when a subset

    def backend_options(self) -> dict[str, str]:
        """The gazegaussian backend options that point at this setup."""
        named = {"repo": self.repo, "data": self.data, "val_data": self.val_data,
                 "subjects": ",".join(self.subjects) if self.subjects else None}
        return {k: str(v) for k, v in named.items() if v is not None}


def default_dest() -> Path:
    """/content/GazeGaussian on Colab (local disk, fast), ./GazeGaussian elsewhere."""
    return Path("/content/GazeGaussian") if is_colab() else Path.cwd() / "GazeGaussian"


def setup_repo(variant: str = "fork", commit: str | None = None, *,
               dest: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
               val_data: str | os.PathLike | None = None, subjects: Any = None,
               options: dict[str, Any] | None = None, epochs: int | None = None,
               trials: int | None = None,
               weights: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
               local_data: str | os.PathLike | None = None, build_from_source: bool = False,
               pypi: bool = True, time_iters: int = 3, builder: Builder | None = None,
               toolchain: Toolchain | None = None,
               site: str | os.PathLike | None = None) -> SetupReport:
    """Clone, build, cache, copy and check; print each step; return the paths to train from.

    ``variant``: ``fork`` (kram254, DiT), ``upstream`` (ucwxb) or a git URL (then ``commit``
    is required); ``commit`` defaults to the variant's pinned one. ``data``: a folder on Drive
    copied under ``local_data`` (default: ``data/`` next to ``dest``); ``val_data`` (default:
    ``<data>_test`` when that exists) is copied next to it as ``<data name>_test``. Only the
    files the checkout opens are copied (``subjects``: of the training ones, that subset: a
    number N or a list of keys or numbers), found under either file-name scheme, at the top
    level or one folder down, and linked to the names the checkout opens.
    ``options``: the study's other backend options (``opt.NAME``, ``val_split``, ...) and
    ``epochs``/``trials`` its ``max_epochs``/``n_trials``, for check-repo's timing and estimate.
    ``weights``: a file or .zip on Drive placed in ``configs/config_models``. ``cache``: the
    Drive folder for wheels and ``config_models.zip`` (default: ``setup_cache`` in the results
    folder, Drive on Colab).
    ``build_from_source``: build kaolin/pytorch3d (at a pinned tag) when no wheel matches.
    ``pypi``: install from PyPI what the checkout imports and does not find, and what the
    wheels' metadata requires (torch pinned). ``time_iters``: check-repo's timed iterations
    (0: none). For tests: ``builder`` replaces the CUDA build, ``toolchain`` the detected one
    (its ``executable`` is the interpreter set up, its ``capability`` the GPU's), ``site``
    installs into that folder instead of the interpreter's environment.
    """
    url, commit = resolve(variant, commit)
    root = Path(dest or default_dest()).expanduser().resolve()
    # the results folder: the cache's default; on Colab mounted (once) for data= and weights=
    results = _results() if is_colab() or not cache else None
    cache = Path(cache).expanduser() if cache else results / "setup_cache"
    site = Path(site) if site else None
    with step(f"[1/5] GazeGaussian at {commit[:12]} in {root}") as say:
        note, commit = ensure_clone(url, commit, root)  # the full id, also for a short one
        say(note)
    report = SetupReport(root, commit)
    toolchain = toolchain or detect()
    wheels = cache / "wheels" / toolchain.key(commit)
    with step(f"[2-3/5] CUDA packages as wheels, cached in {wheels}") as say:
        build = builder or default_builder(toolchain, from_source=build_from_source)
        broken = _install(report, wheels, build, toolchain, pypi, site, say)
    with step("[4/5] data and model files to local disk") as say:
        _copy_data(report, data, val_data, subjects, dict(options or {}),
                   Path(local_data) if local_data else root.parent / "data", say)
        if weights:
            say(place_weights(Path(weights).expanduser(), root))
        say(place_model_files(root, cache / "config_models.zip", _assets()))
    with step("[5/5] check-repo") as say:
        report.ready, report.summary = _check(report, time_iters, broken, dict(options or {}),
                                              epochs, trials)
        say(report.summary)
    return report


def _install(report: SetupReport, wheels: Path, build: Builder, toolchain: Toolchain,
             pypi: bool, site: Path | None, say: Callable[[str], None]) -> dict[str, str]:
    """Wheels from the cache or built, the PyPI packages the checkout imports and the wheels
    require; the modules that do not import."""
    packages = packages_for(report.repo)
    python = toolchain.executable
    installed = ensure_wheels(packages, report.repo, wheels, build, site, say, python)
    if pypi:
        say(install_missing(report.repo, installed, WHEEL_MODULES, toolchain, site))
    broken = failing_imports([p.module for p in packages], site, python)
    say("; ".join(f"import {m} fails ({e})" for m, e in broken.items())
        or f"{', '.join(p.module for p in packages)} import")
    return broken


def _copy_data(report: SetupReport, data: str | os.PathLike | None,
               val_data: str | os.PathLike | None, subjects: Any, options: dict[str, Any],
               local: Path, say: Callable[[str], None]) -> None:
    """The files the checkout opens, to local disk; the held-out ones named as the backend's
    default val_data (``<data>_test``)."""
    from ..backends.gazegaussian.data import dataset_of, spellings, split_subjects

    if data is None:
        return
    root, dataset = report.repo, dataset_of(report.repo, options)
    src = Path(data).expanduser()
    held_out = Path(val_data).expanduser() if val_data else Path(f"{src}_test")
    report.data = local / src.name
    chosen = split_subjects(root, dataset, "train", subjects)
    report.subjects = chosen if chosen != split_subjects(root, dataset, "train") else None
    copies = [DataCopy.plan(src, report.data, spellings(root, dataset, "train", subjects))]
    if (val_data or held_out.is_dir()) and options.get("val_split", "subjects") == "subjects":
        report.val_data = local / f"{src.name}_test"
        copies.append(DataCopy.plan(held_out, report.val_data, spellings(root, dataset, "val")))
    for line in copy_data(copies):
        say(line)


def _results() -> Path:
    from ..colab import mount_drive

    return mount_drive()


def _assets() -> list[str]:
    from ..backends.gazegaussian.check import ASSETS

    return list(ASSETS)


def _check(report: SetupReport, time_iters: int, broken: dict[str, str],
           options: dict[str, Any], epochs: int | None,
           trials: int | None) -> tuple[bool, str]:
    """check-repo, summed up in one line: ready, or the first problem and its fix."""
    from ..backends.gazegaussian.check import check_repo

    checked = check_repo(report.repo, options={**options, **report.backend_options()},
                         time_iters=time_iters if not broken else 0, epochs=epochs,
                         trials=trials)
    problems = [f"import {m} fails ({e})" for m, e in broken.items()]
    problems += checked.problems()
    if problems:
        data = f" --data {report.data}" if report.data else ""
        more = (f" (+{len(problems) - 1} more: python -m gg_optuna_helpers check-repo "
                f"{report.repo}{data} lists them)") if len(problems) > 1 else ""
        return False, f"NOT READY: {problems[0]}{more}"
    eta = "; ".join(f.text for f in checked.findings if f.topic == "estimate")
    return True, f"READY: {checked.variant} checkout at {report.repo}" + (f"; {eta}" if eta else "")
