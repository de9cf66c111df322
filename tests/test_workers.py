"""Several workers on one study: four processes on a real PostgreSQL server, two on one SQLite file.

Each worker is the ordinary command (``python -m gg_optuna_helpers run ...``), started at the same
moment as the others, as several Colab runtimes running the same notebook would be.

What "the total is honoured" means here, precisely: a worker starts another trial only while
finished plus running trials are fewer than ``n_trials``; if two workers start one at the same
moment beyond the total, the newer trial ends at once as a FAIL with failure "surplus" (nothing
trained). So exactly ``n_trials`` trials finish, and every other trial is such a surplus FAIL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest

from conftest import ROOT
from gg_optuna_helpers import open_storage

pytestmark = pytest.mark.slow
ERRORS = ("Traceback", "database is locked", "OperationalError", "Error", "error:")


def start_workers(n: int, storage: str, results: Path, *, study: str,
                  trials: int) -> list[subprocess.Popen]:
    """``n`` copies of the same command, started together, each in its own session. Heartbeats
    every 2 s (a trial is stale after 6 s): two cores for up to eight processes never starve a
    live worker's heartbeat that long, and a joining worker waits at most 8 s. No warm worker:
    each would add a process importing torch beside every training trial (twice the processes
    on two cores; a starved heartbeat once failed a live trial here)."""
    args = ["run", "--stage", "meshhead", "--storage", storage, "--results-dir", str(results),
            "--study-name", study, "--n-trials", str(trials), "--max-epochs", "2",
            "--pruner", "none", "--patience", "0", "--heartbeat-interval", "2", "--no-warm-worker",
            "--quiet", "--set", "lr=1e-4:2e-3"]  # a range that never diverges: no failures
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return [subprocess.Popen(["python", "-m", "gg_optuna_helpers", *args], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True) for _ in range(n)]


def finish(workers: list[subprocess.Popen], timeout: float = 500) -> list[str]:
    """Every worker's output, once all have exited 0; no process is left behind."""
    try:
        outputs = [w.communicate(timeout=timeout)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-3000:]
        for error in ERRORS:
            assert error not in out, out[-3000:]
    return outputs


def logged_trials(output: str) -> list[int]:
    """The trial numbers a worker finished, in its order ("Trial N: ..." lines)."""
    return [int(n) for n in re.findall(r"^Trial (\d+)", output, flags=re.M)]


def check_total(study: optuna.Study, outputs: list[str],
                total: int) -> list[optuna.trial.FrozenTrial]:
    """The module docstring's assertions; returns the trials."""
    trials = study.get_trials()
    surplus = [t for t in trials if t.user_attrs.get("failure") == "surplus"]
    assert all(t.state.name == "FAIL" and t.user_attrs.get("epochs", 0) == 0 for t in surplus)
    trials = [t for t in trials if t not in surplus]
    states = [t.state.name for t in trials]
    odd = [(t.number, t.state.name, t.user_attrs.get("failure"), t.system_attrs.get("failed_trial"))
           for t in trials if t.state.name != "COMPLETE"]
    assert set(states) == {"COMPLETE"}, odd  # nothing else failed, running or waiting
    assert len(trials) == total
    # each trial was run by exactly one worker
    per_worker = [logged_trials(out) for out in outputs]
    numbers = [n for ns in per_worker for n in ns]
    assert sorted(numbers) == sorted([t.number for t in trials] + [t.number for t in surplus])
    # exactly one baseline, with the backend's defaults
    [baseline] = [t for t in trials if t.user_attrs.get("baseline")]
    assert baseline.params["lr"] == 1e-3 and baseline.params["shape_mlp_hidden"] == 256
    return trials


def test_four_workers_share_one_postgresql_study(postgres_url, tmp_path):
    study_name = f"workers_{uuid.uuid4().hex[:8]}"
    workers = start_workers(4, postgres_url, tmp_path / "results", study=study_name, trials=40)
    outputs = finish(workers)
    study = optuna.load_study(study_name=study_name, storage=postgres_url)
    trials = check_total(study, outputs, 40)
    print(f"\n4 workers on PostgreSQL: {len(trials)} finished for 40 asked; per worker "
          f"{[len(logged_trials(out)) for out in outputs]}")
    assert all(logged_trials(out) for out in outputs)  # all four took part
    # each worker's sampler has its own seed: no configuration was sampled twice
    fresh = [json.dumps(t.params, sort_keys=True) for t in trials]
    assert len(set(fresh)) == len(fresh)


@pytest.mark.parametrize("mode", ["sqlite_url", "folder"])
def test_two_workers_on_one_local_sqlite_file(mode, tmp_path):
    """A ``sqlite:///`` URL, or a storage folder whose live file both workers share."""
    storage = (f"sqlite:///{tmp_path / 'optuna.db'}" if mode == "sqlite_url"
               else str(tmp_path / "drive"))
    outputs = finish(start_workers(2, storage, tmp_path / "results", study="shared",
                                   trials=6))
    if mode == "folder":  # both used the same local live file, and the snapshot has it all
        storage = f"sqlite:///{tmp_path / 'drive' / 'shared' / 'optuna.db'}"
        assert len(list((tmp_path / "local").glob("*/optuna.db"))) == 1
    check_total(optuna.load_study(study_name="shared", storage=storage), outputs, 6)


def test_workers_opening_a_new_database_together(postgres_url):
    """Eight workers started at once on an empty database all create its tables: none fails."""
    import psycopg

    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as server:
        server.execute(f"create database {name}")
    url = f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    start = threading.Barrier(8)

    def open_together(_):
        start.wait()
        return open_storage(url, heartbeat_interval=1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        storages = list(pool.map(open_together, range(8)))
    for storage in storages:
        optuna.create_study(study_name="shared", storage=storage.rdb, load_if_exists=True)
        storage.rdb.engine.dispose()
