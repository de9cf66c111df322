"""What the notebooks call: their form values in, a checked :class:`StudyConfig` out.

Environment variables shrink the work without editing a notebook (CI does this):
``GG_RESULTS_DIR`` (the durable folder), ``GG_NOTEBOOK_TRIALS``, ``GG_NOTEBOOK_EPOCHS``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .colab import mount_drive
from .study import StudyConfig

QUICK_TEST_TRIALS = 5


def results_folder() -> Path:
    """The durable folder: ``$GG_RESULTS_DIR``, else Drive on Colab, else ./gg_results."""
    if os.environ.get("GG_RESULTS_DIR"):
        folder = Path(os.environ["GG_RESULTS_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return mount_drive()


def notebook_config(stage: str, *, results: str | os.PathLike, backend: str = "mini",
                    repo: str = "", data: str = "", study_name: str = "", n_trials: int = 20,
                    max_epochs: int = 20, pruner: str = "median", sampler: str = "tpe",
                    timeout_hours: float = 0, quick_test: bool = False) -> StudyConfig:
    """A study configuration from a notebook's parameter cell.

    ``quick_test`` runs 5 trials in a separate ``..._test`` study first, as the guide advises.
    """
    n_trials = int(os.environ.get("GG_NOTEBOOK_TRIALS")
                   or (QUICK_TEST_TRIALS if quick_test else n_trials))
    max_epochs = int(os.environ.get("GG_NOTEBOOK_EPOCHS") or max_epochs)
    options = {k: v for k, v in (("repo", repo), ("data", data)) if v}
    name = study_name or f"{backend}_{stage}"
    mesh = f"{backend}_meshhead"
    if quick_test:
        name, mesh = f"{name}_test", f"{mesh}_test"
    return StudyConfig(stage=stage, backend=backend, study_name=name, storage=str(results),
                       n_trials=n_trials, max_epochs=max_epochs, pruner=pruner, sampler=sampler,
                       timeout=timeout_hours * 3600 or None, backend_options=options,
                       meshhead_study=mesh).resolved()


def environment_report() -> str:
    """Python, torch, the GPU and Chrome, one line each: what notebook 00 checks."""
    import platform

    import optuna
    import torch

    from .colab import chrome_hint, find_chrome

    gpu = (f"{torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
           else "none (fine for the mini backend; the real one needs a GPU runtime)")
    chrome = find_chrome() or f"not found, plots will be HTML only ({chrome_hint()})"
    return "\n".join([f"python {platform.python_version()}, torch {torch.__version__}, "
                      f"optuna {optuna.__version__}", f"GPU: {gpu}", f"Chrome: {chrome}"])


def analyse(results: str | os.PathLike, *, backend: str = "mini",
            quick_test: bool = False) -> list[Path]:
    """Write and print the report of each stage's study found in ``results``."""
    import json

    from .analysis import format_summary, write_report
    from .errors import ConfigError
    from .status import load_study
    from .storage import open_storage

    storage = open_storage(results).rdb
    reports = []
    for stage in ("meshhead", "gazegaussian"):
        name = f"{backend}_{stage}" + ("_test" if quick_test else "")
        try:
            load_study(storage, name)
        except ConfigError as e:
            print(e)
            continue
        path = write_report(storage, name, Path(results) / f"report_{name}")
        print(format_summary(json.loads(path.read_text())), f"\nReport: {path.parent}\n")
        reports.append(path.parent)
    return reports


def show_plots(reports: list[Path]) -> None:
    """Display each report's PNG plots inline (HTML versions sit beside them)."""
    from IPython.display import Image, Markdown, display

    for report in reports:
        display(Markdown(f"### {report.name}"))
        pngs = sorted((report / "plots").glob("*.png"))
        if not pngs:
            display(Markdown(f"No PNG plots (no Chrome): open the HTML files in {report}/plots."))
        for png in pngs:
            display(Image(filename=str(png), width=720))
