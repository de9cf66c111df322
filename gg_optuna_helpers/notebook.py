"""What notebooks 00-02 call: one function per cell, form values in, one-line messages out.

Every knob comes from the notebook's cell tagged ``parameters`` (Colab form fields; CI overrides
them papermill-style with an injected cell): nothing here reads environment variables. Each
function can be re-run, also after an interrupt. Importing this module in a kernel shows the
package's own errors (bad input) as their one sentence instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import StudyConfig
from .colab import is_colab, mount_drive
from .dashboard import DEFAULT_PORT, Dashboard, Storage, serve_dashboard
from .errors import ConfigError, GGOptunaError
from .layout import Results, default_study_name, is_place, is_url
from .values import parse_value, split_assignment

QUICK_TEST_TRIALS = 5


def results_folder(path: str | os.PathLike = "") -> Path:
    """The durable folder: ``path`` when given, else :func:`~.colab.mount_drive`'s."""
    if not str(path):
        return mount_drive()
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def form_study_name(backend: str, stage: str, name: str = "", *, quick_test: bool = False) -> str:
    """A form's study name: ``name`` or ``<backend>_<stage>``, with ``_test`` for a quick test."""
    return (name or default_study_name(backend, stage)) + ("_test" if quick_test else "")


FORM_FIELDS = {"repo": "REPO_PATH", "data": "DATA_PATH", "val_data": "VAL_DATA",
               "subjects": "SUBJECTS"}  # backend option -> the form field that sets it
_FORM = "key=value, key=value (e.g. opt.pred_img_size=256, val_samples=20)"


def form_options(text: str = "", *, repo: str = "", data: str = "", val_data: str = "",
                 subjects: str = "") -> dict[str, Any]:
    """The backend options of a notebook's form, in one dict for setup, check-repo and the
    study alike: the fields ``REPO_PATH``, ``DATA_PATH``, ``VAL_DATA``, ``SUBJECTS`` (empty
    ones left out) and ``BACKEND_OPTIONS`` (``text``: comma-separated ``key=value``, each value
    read as ``--backend-option`` reads it, by :func:`~.values.parse_value`)."""
    options = {}
    for item in _items(text):
        key, raw = split_assignment(item, "BACKEND_OPTIONS", _FORM)
        if key in options:
            raise ConfigError(f"BACKEND_OPTIONS sets {key} twice: keep one.")
        if key in FORM_FIELDS:
            raise ConfigError(f"BACKEND_OPTIONS sets {key}, which the form field "
                              f"{FORM_FIELDS[key]} sets: use that field.")
        options[key] = parse_value(raw.strip())
    fields = {"repo": repo, "data": data, "val_data": val_data, "subjects": subjects}
    given = {k: str(v).strip() for k, v in fields.items() if str(v).strip()}
    if "subjects" in given:
        given["subjects"] = parse_value(given["subjects"])
    return {**given, **options}


def _items(text: str) -> list[str]:
    """``text`` split at the commas outside brackets (``opt.geo_mlp=[27,64,132]`` stays whole)."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth = max(0, depth + {"[": 1, "]": -1}.get(char, 0))
        if char == "," and not depth:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ConfigError(f"BACKEND_OPTIONS opens a [ it does not close: write {_FORM}, a list "
                          f"as [1, 2], but got {text.strip()!r}.")
    return [item.strip() for item in [*items, text[start:]] if item.strip()]


def notebook_config(stage: str, *, results: str | os.PathLike,
                    backend: str = StudyConfig.backend, options: dict[str, Any] | None = None,
                    study_name: str = "", meshhead_study: str = "", change_meshhead: bool = False,
                    n_trials: int = StudyConfig.n_trials, max_epochs: int = StudyConfig.max_epochs,
                    pruner: str = StudyConfig.pruner, sampler: str = StudyConfig.sampler,
                    timeout_hours: float = 0, quick_test: bool = False) -> StudyConfig:
    """A checked study configuration from a notebook's parameter cell.

    ``options``: the backend options (:func:`form_options`, as :func:`setup_backend` returned
    them). ``quick_test`` runs 5 trials in a separate ``..._test`` study first, as the guide
    advises. ``meshhead_study`` (stage 2): the exact name notebook 01 printed; empty means 01's
    default.
    """
    return StudyConfig(
        stage=stage, backend=backend, storage=str(results),
        study_name=form_study_name(backend, stage, study_name, quick_test=quick_test),
        n_trials=QUICK_TEST_TRIALS if quick_test else n_trials, max_epochs=max_epochs,
        pruner=pruner, sampler=sampler, timeout=timeout_hours * 3600 or None,
        backend_options=dict(options or {}), change_meshhead=change_meshhead,
        meshhead_study=meshhead_study or form_study_name(
            backend, "meshhead", quick_test=quick_test)).resolved()


def setup_backend(backend: str, options: dict[str, Any], *, variant: str, commit: str = "",
                  weights: str = "", build_from_source: bool = False,
                  max_epochs: int = StudyConfig.max_epochs,
                  n_trials: int = StudyConfig.n_trials,
                  results: str | os.PathLike = "") -> dict[str, Any]:
    """The real backend's set-up (``setup_repo``: clone at ``options["repo"]``, build or reuse
    the cached wheels, copy the data files the checkout opens (``subjects`` of them) and
    weights to local disk, check-repo with ``options`` and the study's ``max_epochs`` and
    ``n_trials``); returns ``options`` pointing at the local copies, for the study. The wheels
    are cached in ``<results>/setup_cache`` (the results folder the notebook opened). Nothing
    happens for ``mini``."""
    if backend != "gazegaussian":
        return dict(options)
    from .setup_repo import setup_repo

    rest = {k: v for k, v in options.items() if k not in FORM_FIELDS}
    report = setup_repo(variant, commit or None, dest=options.get("repo") or None,
                        data=options.get("data"), val_data=options.get("val_data"),
                        subjects=options.get("subjects"), options=rest, epochs=max_epochs,
                        trials=n_trials, weights=weights or None,
                        build_from_source=build_from_source,
                        cache=Path(results) / "setup_cache" if str(results) else None)
    if not report.ready:
        raise ConfigError(report.summary)
    return {**options, **report.backend_options()}


def start_dashboard(storage: Storage, *, artifacts: str | os.PathLike | None = None,
                    tunnel: str = "colab", port: int = DEFAULT_PORT,
                    study_name: str | None = None, allow_edits: bool = False) -> Dashboard:
    """The live dashboard of ``storage`` (the results folder, a database URL or any storage
    :func:`~.dashboard.serve_dashboard` takes); a running one is reused, so Run all is safe.

    It only reads: no lease, no file written, so the run in this kernel or another runtime
    keeps the study to itself, and a request to delete or change a study gets 403
    (``allow_edits=True`` lets it through on a database URL).
    ``artifacts``: the trial previews' folder (default: the results folder's, for a folder).
    ``tunnel``: ``colab`` (private proxy link and the dashboard embedded in the cell), ``ngrok``
    (public, password-protected, needs NGROK_AUTHTOKEN) or ``none``. Outside Colab, ``colab``
    means this machine only. ``study_name``: show that study live, from the newest copy (this
    runtime's live database, or the folder's snapshot), also before its first trial; a folder
    otherwise shows every study as it is when the dashboard starts.
    """
    if tunnel == "colab" and not is_colab():
        print("Not running in Colab, so no Colab link (set TUNNEL to 'ngrok' for a public one).")
        tunnel = "none"
    folder = _folder(storage)
    if folder is not None and artifacts is None:
        artifacts = Results.of(folder).artifacts
    return serve_dashboard(storage, study_name=study_name, artifact_dir=artifacts, port=port,
                           tunnel=tunnel, allow_edits=allow_edits)


def _folder(storage: Storage) -> Path | None:
    """``storage`` as a results folder path; None for a URL or an opened storage."""
    return Path(storage) if is_place(storage) and not is_url(storage) else None


def show_status(config: StudyConfig) -> None:
    """Print the progress of ``config``'s study and the disk its trial folders use; works at
    any time, also before it started."""
    from .analysis import format_summary, summarize
    from .analysis._summary import disk_usage
    from .storage import open_study

    try:
        study = open_study(config.storage, config.study_name)
    except ConfigError as e:  # not started yet: say so, do not fail the cell
        print(e)
        return
    print(format_summary({**summarize(study), "disk": disk_usage(study)}))


def environment_report() -> str:
    """Python, torch, the GPU and Chrome, one line each: what notebook 00 checks."""
    import platform

    import optuna
    import torch

    from .chrome import chrome_hint, find_chrome

    gpu = (f"{torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
           else "none (fine for the mini backend; the real one needs a GPU runtime)")
    chrome = find_chrome() or f"not found, plots will be HTML only ({chrome_hint()})"
    return "\n".join([f"python {platform.python_version()}, torch {torch.__version__}, "
                      f"optuna {optuna.__version__}", f"GPU: {gpu}", f"Chrome: {chrome}"])


def _one_line_errors() -> None:
    """In a kernel, show the package's errors as their one sentence, without a traceback."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def handler(shell, etype, value, tb, tb_offset=None):
        shell._showtraceback(etype, value, [f"{etype.__name__}: {value}"])

    shell.set_custom_exc((GGOptunaError,), handler)


_one_line_errors()
