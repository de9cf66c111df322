"""What notebooks 00-02 call: one function per cell, form values in, one-line messages out.

Every knob comes from the notebook's cell tagged ``parameters`` (Colab form fields; CI overrides
them papermill-style with an injected cell): nothing here reads environment variables. Each
function can be re-run, also after an interrupt. Importing this module in a kernel shows the
package's own errors (bad input) as their one sentence instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import StudyConfig
from .colab import is_colab, mount_drive
from .dashboard import DEFAULT_PORT, Dashboard, Storage, serve_dashboard
from .errors import ConfigError, GGOptunaError
from .layout import Results, default_study_name, is_place, is_url

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


def notebook_config(stage: str, *, results: str | os.PathLike,
                    backend: str = StudyConfig.backend, repo: str = "", data: str = "",
                    study_name: str = "", meshhead_study: str = "", change_meshhead: bool = False,
                    n_trials: int = StudyConfig.n_trials, max_epochs: int = StudyConfig.max_epochs,
                    pruner: str = StudyConfig.pruner, sampler: str = StudyConfig.sampler,
                    timeout_hours: float = 0, quick_test: bool = False) -> StudyConfig:
    """A checked study configuration from a notebook's parameter cell.

    ``quick_test`` runs 5 trials in a separate ``..._test`` study first, as the guide advises.
    ``meshhead_study`` (stage 2): the exact name notebook 01 printed; empty means 01's default.
    """
    options = {k: v for k, v in (("repo", repo), ("data", data)) if v}
    return StudyConfig(
        stage=stage, backend=backend, storage=str(results),
        study_name=form_study_name(backend, stage, study_name, quick_test=quick_test),
        n_trials=QUICK_TEST_TRIALS if quick_test else n_trials, max_epochs=max_epochs,
        pruner=pruner, sampler=sampler, timeout=timeout_hours * 3600 or None,
        backend_options=options, change_meshhead=change_meshhead,
        meshhead_study=meshhead_study or form_study_name(
            backend, "meshhead", quick_test=quick_test)).resolved()


def setup_backend(backend: str, *, variant: str, commit: str = "", repo: str,
                  data: str = "", weights: str = "") -> tuple[str, str]:
    """The real backend's set-up (``setup_repo``: clone, build or reuse the cached wheels, copy
    data and weights to local disk, check-repo); returns the (checkout, data) to train from.
    Nothing happens for ``mini``."""
    if backend != "gazegaussian":
        return repo, data
    from .setup_repo import setup_repo

    report = setup_repo(variant, commit or None, dest=repo, data=data or None,
                        weights=weights or None)
    if not report.ready:
        raise ConfigError(report.summary)
    return str(report.repo), str(report.data or data)


def start_dashboard(storage: Storage, *, artifacts: str | os.PathLike | None = None,
                    tunnel: str = "colab", port: int = DEFAULT_PORT,
                    study_name: str | None = None) -> Dashboard:
    """The live dashboard of ``storage`` (the results folder, a database URL or any storage
    :func:`~.dashboard.serve_dashboard` takes); a running one is reused, so Run all is safe.

    ``artifacts``: the trial previews' folder (default: the results folder's, for a folder).
    ``tunnel``: ``colab`` (private proxy link and the dashboard embedded in the cell), ``ngrok``
    (public, password-protected, needs NGROK_AUTHTOKEN) or ``none``. Outside Colab, ``colab``
    means this machine only. ``study_name``: show that study live (a folder otherwise shows
    every study as it is when the dashboard starts).
    """
    from .storage import open_storage

    if tunnel == "colab" and not is_colab():
        print("Not running in Colab, so no Colab link (set TUNNEL to 'ngrok' for a public one).")
        tunnel = "none"
    folder = _folder(storage)
    if folder is not None:
        artifacts = artifacts if artifacts is not None else Results.of(folder).artifacts
        if study_name:  # the study's live copy, which the run in this kernel writes
            storage = open_storage(folder, study_name=study_name)
    return serve_dashboard(storage, study_name=study_name, artifact_dir=artifacts, port=port,
                           tunnel=tunnel)


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
