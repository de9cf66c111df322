"""What notebook 03 calls: write each study's report, then show it inline.

    analyse(RESULTS, STUDY_NAME, backend=BACKEND, quick_test=QUICK_TEST)
    show_reports(RESULTS, STUDY_NAME, backend=BACKEND, quick_test=QUICK_TEST)

Plots show inline everywhere: the PNG where a Chrome exported one, else the figure itself through
plotly's notebook renderer (Colab's own on Colab), so a fresh Colab VM needs no browser download.
The best configuration is shown as YAML and as a command, with a link that downloads the YAML.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import optuna

from .colab import is_colab
from .layout import Results
from .notebook import form_study_name


def analyse(results: str | os.PathLike, study_names: str = "", *, backend: str = "mini",
            quick_test: bool = False) -> list[Path]:
    """Write and print the report of each named study (comma-separated) found in ``results``.

    No names: both stages' default studies for ``backend`` (``_test`` ones for a quick test).
    """
    from .analysis import format_summary, write_report

    reports = []
    for study in _studies(results, study_names, backend, quick_test):
        path = write_report(results, study.study_name, _folder(results, study))
        print(format_summary(json.loads(path.read_text())), f"\nReport: {path.parent}\n")
        reports.append(path.parent)
    return reports


def show_reports(results: str | os.PathLike, study_names: str = "", *, backend: str = "mini",
                 quick_test: bool = False) -> None:
    """The reports :func:`analyse` wrote: plots inline, best configuration, a download link."""
    from IPython.display import HTML, Image, Markdown, display

    from .analysis import build_figures

    renderer = "colab" if is_colab() else "notebook_connected"
    for study in _studies(results, study_names, backend, quick_test):
        folder = _folder(results, study)
        display(Markdown(f"### {study.study_name}"))
        pngs = {p.stem: p for p in (folder / "plots").glob("*.png")}
        figures, skipped, _ = build_figures(study)
        for name, fig in figures.items():
            if name in pngs:
                display(Image(filename=str(pngs[name]), width=720))
            else:
                fig.show(renderer=renderer)
        for name, why in skipped.items():
            print(f"{name}: skipped, {why}")
        display(HTML(_best_config_html(folder)))


def _studies(results: str | os.PathLike, study_names: str, backend: str,
             quick_test: bool) -> list[optuna.Study]:
    """The named studies found in ``results`` (each opened alone); a missing one is said in one
    line."""
    from .errors import ConfigError
    from .storage import open_study

    names = [n.strip() for n in study_names.split(",") if n.strip()] or [
        form_study_name(backend, stage, quick_test=quick_test)
        for stage in ("meshhead", "gazegaussian")]
    found = []
    for name in names:
        try:
            found.append(open_study(results, name))
        except ConfigError as e:
            print(e)
    return found


def _folder(results: str | os.PathLike, study: optuna.Study) -> Path:
    return Results.of(results).report_dir(study.study_name)


def _best_config_html(folder: Path) -> str:
    """The best configuration as YAML and command, and a link that downloads the YAML."""
    yaml_file, command_file = folder / "best_config.yaml", folder / "best_command.txt"
    if not yaml_file.exists():  # the report says why (no completed trial, unknown stage)
        note = json.loads((folder / "summary.json").read_text()).get("best_config_note")
        return f"<p>No best configuration: {html.escape(str(note))}</p>"
    text = yaml_file.read_text()
    link = (f'<a download="{html.escape(folder.name)}_best_config.yaml" '
            f'href="data:text/yaml;base64,{base64.b64encode(text.encode()).decode()}">'
            f"Download best_config.yaml</a> (also in {html.escape(str(folder))})")
    command = command_file.read_text() if command_file.exists() else ""
    return (f"<h4>Best configuration</h4><pre>{html.escape(text)}</pre>"
            f"<h4>Command for the real repo</h4><pre>{html.escape(command)}</pre><p>{link}</p>")
