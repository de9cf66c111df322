"""One call for the whole analysis of a stored study, written into one folder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage

from ..errors import ConfigError
from ..storage import StudyStorage, open_study
from ._diagnose import diagnose
from ._export import export_best_config
from ._plots import export_plots
from ._summary import format_summary, summarize


def write_report(storage: StudyStorage | BaseStorage | str | os.PathLike, study_name: str,
                 out_dir: str | os.PathLike, *, chrome: str | os.PathLike | bool | None = None,
                 repo_script: str | None = None) -> Path:
    """Write summary.json, summary.md, plots/, best_config.yaml and best_command.txt.

    ``storage``: a results folder, a database URL, an opened storage or an Optuna storage
    (read, never written). ``chrome``: as in :func:`export_plots`. Returns the path of
    ``summary.json``; works for studies with failures, pruned trials and no completed trial yet
    (then there is no best configuration to export).
    """
    study = open_study(storage, study_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(study)
    summary["findings"] = [asdict(f) for f in diagnose(study)]
    summary["plots"] = export_plots(study, out / "plots", chrome=chrome)
    summary["best_config"] = summary["best_config_note"] = None
    try:
        summary["best_config"] = export_best_config(study, out, repo_script=repo_script)
    except ConfigError as e:  # no completed trial yet, or no known stage
        summary["best_config_note"] = str(e)
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    (out / "summary.md").write_text(_markdown(summary, out))
    return path


def _markdown(summary: dict[str, Any], out: Path) -> str:
    plots = summary["plots"]
    lines = [f"# Study `{summary['study_name']}`", "", "```", format_summary(summary), "```", ""]
    lines += ["## Findings", ""]
    lines += [f"- **{f['code']}**: {f['message']}" for f in summary["findings"]] or ["- none"]
    lines += ["", "## Plots", ""]
    for name, html in plots["html"].items():
        png = plots["png"].get(name)
        image = f" ![{name}]({_rel(png, out)})" if png else ""
        lines.append(f"- [{name}]({_rel(html, out)}){image}")
    lines += [f"- {name}: skipped, {why}" for name, why in plots["skipped"].items()]
    if plots["note"]:
        lines += ["", plots["note"]]
    lines += ["", "HTML plots load `plots/plotly.min.js`: keep it next to them.", ""]
    if summary["best_config"]:
        command = Path(summary["best_config"]["command"]).read_text().splitlines()[0]
        lines += ["## Best configuration", "", "```", command, "```", "",
                  "Details and notes: `best_command.txt`, `best_config.yaml`.", ""]
    else:
        lines += ["## Best configuration", "", summary["best_config_note"], ""]
    return "\n".join(lines)


def _rel(path: str, out: Path) -> str:
    return Path(path).relative_to(out).as_posix()
