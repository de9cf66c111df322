"""Optuna's plots as HTML (always) and as PNG (one Chrome start for all, when Chrome exists)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..chrome import chrome_hint, find_chrome

PNG_SIZE = {"width": 1100, "height": 650}
NO_COMPLETE = "no completed trial yet"


def export_plots(study: optuna.Study, out_dir: str | os.PathLike, *,
                 chrome: str | os.PathLike | bool | None = None) -> dict[str, Any]:
    """Write the study's plots into ``out_dir``; returns what was written, skipped and why.

    ``chrome``: a Chrome/Chromium path, ``False`` for HTML only, or None to find one the way
    kaleido does (see :func:`gg_optuna_helpers.chrome.find_chrome`). The result is JSON-able:
    ``{"html": {name: path}, "png": {name: path}, "skipped": {name: reason},
    "importances": {param: value}, "note": str | None}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures, skipped, importances = build_figures(study)
    html = {}
    for name, fig in figures.items():
        # "directory": one plotly.min.js next to the pages, so they open offline.
        fig.write_html(out / f"{name}.html", include_plotlyjs="directory")
        html[name] = str(out / f"{name}.html")
    png, note = _write_pngs(figures, out, chrome)
    return {"html": html, "png": png, "skipped": skipped, "importances": importances,
            "note": note}


def build_figures(study: optuna.Study) -> tuple[dict[str, Any], dict[str, str],
                                                dict[str, float]]:
    """The study's plotly figures by name, the ones skipped with a reason, and importances."""
    builders, skipped, importances = _plan(study)
    return {name: build() for name, build in builders.items()}, skipped, importances


def _plan(study: optuna.Study) -> tuple[dict[str, Callable], dict[str, str], dict[str, float]]:
    """The figures worth drawing (as builders), the ones skipped with a reason, importances."""
    import optuna.visualization as vis  # plotly and matplotlib: only when a report is made

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    varied = [n for n in dict.fromkeys(p for t in complete for p in t.params)
              if len({repr(t.params.get(n)) for t in complete}) > 1]
    importances, why_not = _importances(study, complete)
    top = [n for n in importances if n in varied][:2] if importances else varied[:2]
    wanted: dict[str, tuple[Callable, str | None]] = {
        "history": (lambda: vis.plot_optimization_history(study),
                    None if complete else NO_COMPLETE),
        "importances": (lambda: vis.plot_param_importances(study), why_not),
        "parallel_coordinate": (lambda: vis.plot_parallel_coordinate(study),
                                None if varied else "no parameter varied across completed trials"),
        "intermediate_values": (lambda: vis.plot_intermediate_values(study),
                                None if any(t.intermediate_values for t in trials)
                                else "no trial reported a value per epoch"),
        "timeline": (lambda: vis.plot_timeline(study),
                     None if trials else "the study has no trials"),
    }
    if len(top) == 2 and len(complete) >= 3:
        # The two parameters that matter most, against each other.
        wanted["contour"] = (lambda: vis.plot_contour(study, params=top), None)
    else:
        wanted["slice"] = (lambda: vis.plot_slice(study), None if complete else NO_COMPLETE)
    builders = {name: build for name, (build, why) in wanted.items() if why is None}
    skipped = {name: why for name, (build, why) in wanted.items() if why is not None}
    return builders, skipped, importances


def _importances(study: optuna.Study, complete: list) -> tuple[dict[str, float], str | None]:
    """PED-ANOVA importances (Optuna's default), or why they cannot be computed yet."""
    few = (f"too few completed trials ({len(complete)}) for parameter importances: "
           "PED-ANOVA needs enough trials to compare the best ones with the rest")
    if len(complete) < 2:
        return {}, few
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its "importances will be equal" warning: tested below
        try:
            values = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError) as e:  # e.g. no parameter in any trial
            return {}, f"parameter importances unavailable ({e})"
    if not values or (len(values) > 1 and len(set(values.values())) == 1):
        return {}, few  # all equal: the evaluator could not tell the parameters apart
    return {k: round(float(v), 6) for k, v in values.items()}, None


def _write_pngs(figures: dict[str, Any], out: Path,
                chrome: str | os.PathLike | bool | None) -> tuple[dict[str, str], str | None]:
    """All figures as PNG through kaleido in ONE Chrome start; else a note saying why not."""
    if not figures:
        return {}, None
    path = None if chrome is False else find_chrome(None if chrome is True else chrome)
    if path is None:
        return {}, f"HTML plots only: {chrome_hint()}."
    import kaleido

    specs = [{"fig": fig, "path": out / f"{name}.png", "opts": {"format": "png", **PNG_SIZE}}
             for name, fig in figures.items()]
    try:
        # mathjax=False: kaleido would otherwise fetch MathJax from a CDN (slow or offline).
        kaleido.write_fig_from_object_sync(specs, kopts={"path": path, "mathjax": False})
    except Exception as e:  # any Chrome start/render failure: PNGs are optional, HTML is done
        first = (str(e).strip().splitlines() or [""])[0]
        return {}, (f"HTML plots only: PNG export with Chrome at {path} failed "
                    f"({type(e).__name__}: {first}).")
    return {name: str(out / f"{name}.png") for name in figures}, None
