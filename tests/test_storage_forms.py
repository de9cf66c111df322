"""Every public function that reads a study takes the same storage forms, and refuses a wrong one.

Forms: a results folder (str or Path), a ``sqlite:///`` URL, an opened ``StudyStorage`` and an
Optuna storage. Wrong ones (an int, None, an empty string, a file that is not a database, an
unknown scheme...) are a one-sentence ConfigError, and nothing is written anywhere.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import optuna
import pytest

from gg_optuna_helpers import ConfigError, StudyConfig, best_checkpoint, open_storage, run_study
from gg_optuna_helpers.analysis import write_report
from gg_optuna_helpers.dashboard import serve_dashboard
from gg_optuna_helpers.protocol import BEST
from gg_optuna_helpers.records import TrialAttr, put
from gg_optuna_helpers.storage import open_study

STUDY = "forms"
N_TRIALS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fill(storage: optuna.storages.BaseStorage, checkpoints: Path) -> None:
    """The study with two finished trials; the best one has a ``best.pt``."""
    def objective(trial: optuna.Trial) -> float:
        folder = checkpoints / f"trial_{trial.number}"
        folder.mkdir(parents=True)
        (folder / BEST).write_bytes(b"weights")
        put(trial, TrialAttr.TRIAL_DIR, str(folder))
        return float(trial.number)

    study = optuna.create_study(study_name=STUDY, storage=storage)
    study.optimize(objective, n_trials=N_TRIALS)


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, Path | str]:
    """A results folder and a SQLite URL, each holding the same small study."""
    root = tmp_path_factory.mktemp("forms")
    folder = root / "results"
    opened = open_storage(folder, study_name=STUDY, local_dir=root / "local")
    _fill(opened.rdb, root / "folder_checkpoints")
    opened.snapshot(force=True)
    opened.close()
    url = f"sqlite:///{root / 'study.db'}"
    _fill(optuna.storages.RDBStorage(url), root / "url_checkpoints")
    return {"folder": folder, "url": url, "local": root / "local"}


FORMS = {
    "folder str": lambda p: str(p["folder"]),
    "folder Path": lambda p: p["folder"],
    "sqlite URL": lambda p: p["url"],
    "StudyStorage": lambda p: open_storage(p["folder"], study_name=STUDY, read_only=True,
                                           local_dir=p["local"]),
    "Optuna storage": lambda p: optuna.storages.RDBStorage(p["url"]),
}


def _open_study(storage, tmp_path):
    study = open_study(storage, STUDY)
    assert len(study.trials) == N_TRIALS


def _best_checkpoint(storage, tmp_path):
    path = best_checkpoint(storage, STUDY)
    assert path is not None and path.name == BEST and path.parent.name == "trial_0"


def _write_report(storage, tmp_path):
    path = write_report(storage, STUDY, tmp_path / "report", chrome=False)
    assert json.loads(path.read_text())["study_name"] == STUDY


def _serve_dashboard(storage, tmp_path):
    with serve_dashboard(storage, study_name=STUDY, port=_free_port(), tunnel="none") as dash:
        with urllib.request.urlopen(dash.local_url + "api/studies", timeout=10) as response:
            assert STUDY in response.read().decode()


FUNCTIONS = {"open_study": _open_study, "best_checkpoint": _best_checkpoint,
             "write_report": _write_report, "serve_dashboard": _serve_dashboard}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_takes_every_storage_form(places, form, function, tmp_path):
    FUNCTIONS[function](FORMS[form](places), tmp_path)


def _not_a_database(tmp_path: Path) -> str:
    (tmp_path / "notes.db").write_text("not a database\n")
    return f"sqlite:///{tmp_path / 'notes.db'}"


def _a_file_as_folder(tmp_path: Path) -> str:
    (tmp_path / "notes.txt").write_text("a file, not a results folder\n")
    return str(tmp_path / "notes.txt")


WRONG = {
    "an int": lambda tmp_path: 42,
    "None": lambda tmp_path: None,
    "an empty string": lambda tmp_path: "",
    "blank": lambda tmp_path: "   ",
    "a list": lambda tmp_path: [str(tmp_path)],
    "a file that is not a database": _not_a_database,
    "a file where a folder belongs": _a_file_as_folder,
    "a .db file name as folder": lambda tmp_path: str(tmp_path / "study.db"),
    "an unknown scheme": lambda tmp_path: "ftp://host/study",
    "sqlite with two slashes": lambda tmp_path: "sqlite://study.db",
}


def _files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.rglob("*"))


@pytest.mark.parametrize("wrong", WRONG)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_wrong_storage_is_one_sentence_and_writes_nothing(function, wrong, tmp_path,
                                                            monkeypatch):
    storage = WRONG[wrong](tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # nothing may land in the working folder either
    before = _files(tmp_path)
    with pytest.raises(ConfigError) as refused:
        FUNCTIONS[function](storage, tmp_path)
    message = str(refused.value)
    assert "\n" not in message and message.endswith("."), message
    assert _files(tmp_path) == before


RUN_WRONG = {name: WRONG[name] for name in (
    "an int", "None", "an empty string", "blank", "a list", "a file where a folder belongs",
    "an unknown scheme", "sqlite with two slashes")}
RUN_WRONG["an Optuna storage"] = lambda tmp_path: optuna.storages.InMemoryStorage()
RUN_WRONG["an opened StudyStorage"] = lambda tmp_path: open_storage(tmp_path / "opened")


@pytest.mark.parametrize("wrong", RUN_WRONG)
def test_a_run_refuses_a_storage_it_cannot_open_itself(wrong, tmp_path, monkeypatch):
    """A run opens its own storage (heartbeat, lease, snapshots): a folder or a URL only."""
    storage = RUN_WRONG[wrong](tmp_path)
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(ConfigError) as refused:
        run_study(StudyConfig(stage="meshhead", storage=storage, n_trials=1, max_epochs=1))
    message = str(refused.value)
    assert "\n" not in message and message.endswith("."), message
    assert _files(tmp_path) == before


@pytest.mark.parametrize("wrong", [name for name in RUN_WRONG if name != "None"])  # None: default
def test_open_storage_refuses_what_it_cannot_open(wrong, tmp_path, monkeypatch):
    storage = RUN_WRONG[wrong](tmp_path)
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(ConfigError) as refused:
        open_storage(storage, study_name=STUDY, local_dir=tmp_path / "local")
    message = str(refused.value)
    assert "\n" not in message and message.endswith("."), message
    assert _files(tmp_path) == before
