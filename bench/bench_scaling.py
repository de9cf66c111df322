"""Scaling: finished trials per hour with 1, 2 and 4 workers sharing one PostgreSQL study.

Each worker is ``python -m gg_optuna_helpers run --storage postgresql://...`` (Optuna's
distributed mode), all started together on a real local PostgreSQL server (``bench/_postgres.py``),
on the same fixed MeshHead configuration of the ``mini`` backend (one CPU thread per trial, no
pruning, no early stopping), until the study has its trials. Throughput is finished trials over
the time from the first trial's start to the last trial's end (Optuna's timestamps); efficiency
is throughput / (workers x the 1-worker throughput). On a machine with fewer cores than workers
the efficiency cannot reach 1: the figures say how many cores there were::

    python bench/bench_scaling.py            # 1, 2, 4 workers; 12 trials x 6 epochs each
    python bench/bench_scaling.py --quick    # 1, 2 workers; 2 trials x 1 epoch each
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from _common import ROOT, banner, parser, save, start, table
from _postgres import PostgresUnavailable, postgres

STAGE = "meshhead"
WORKERS = (1, 2, 4)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    args = p.parse_args(argv)
    start(args)
    n_trials, epochs = (2, 1) if args.quick else (12, 6)
    workers = WORKERS[:2] if args.quick else WORKERS
    cores = os.cpu_count()
    settings = {
        "stage": f"{STAGE} (mini backend, CPU, 1 thread per trial), every parameter at its default",
        "trials per study": n_trials, "epochs per trial": epochs, "workers": workers,
        "storage": "PostgreSQL (local server), heartbeat 1 s", "cores": cores,
    }
    banner("Scaling with workers on PostgreSQL", settings)
    started = time.perf_counter()
    work = args.out / "scaling_work"
    shutil.rmtree(work, ignore_errors=True)
    try:
        with postgres() as url:
            measured = {n: _study(url, work / f"w{n}", n, n_trials, epochs) for n in workers}
    except PostgresUnavailable as e:
        print(f"skipped: {e}")
        return 0
    shutil.rmtree(work, ignore_errors=True)

    one = measured[1]["per_hour"]
    rows, figures = [], {}
    for n in workers:
        m = measured[n]
        speedup = m["per_hour"] / one
        figures[n] = dict(m, speedup=speedup, efficiency=speedup / n)
        rows.append([n, m["finished"], f"{m['window_s']:.1f}", f"{m['per_hour']:.0f}",
                     f"{speedup:.2f}x", f"{speedup / n:.0%}"])
    body = table(["workers", "finished trials", "first start to last end, s", "trials per hour",
                  "vs 1 worker", "efficiency vs linear"], rows)
    body += (f"\n\nThis machine has {cores} CPU cores, shared with other jobs: with more "
             f"workers than cores the workers share the cores, so the efficiency above "
             f"{cores} workers is bounded by {cores}/workers. On one GPU per worker the "
             "training itself does not compete.\n")
    print(body)
    print(f"   ({time.perf_counter() - started:.0f} s)")
    save(args, "scaling", settings=settings, figures=figures, targets=[], markdown=body)
    return 0


def _study(url: str, work, workers: int, n_trials: int, epochs: int) -> dict:
    """Run ``workers`` study processes on one new study until ``n_trials`` have finished."""
    from gg_optuna_helpers.backends import get_backend

    name = f"scaling_{workers}"
    fixed = [f"--set={k}={v}" for k, v in get_backend("mini").defaults(STAGE, {}).items()]
    command = [sys.executable, "-m", "gg_optuna_helpers", "run", "--stage", STAGE,
               "--storage", url, "--study-name", name, "--results-dir", str(work),
               "--n-trials", str(n_trials), "--max-epochs", str(epochs), "--pruner", "none",
               "--patience", "0", "--heartbeat-interval", "1", "--device", "cpu", "--quiet",
               *fixed]
    work.mkdir(parents=True)
    procs = []
    for i in range(workers):
        with open(work / f"worker{i}.log", "wb") as log:
            procs.append(subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    codes = [proc.wait() for proc in procs]
    if any(codes):
        logs = "\n".join((work / f"worker{i}.log").read_text()[-1500:] for i in range(workers))
        raise RuntimeError(f"a worker failed ({codes}):\n{logs}")
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    window = (max(t.datetime_complete for t in trials)
              - min(t.datetime_start for t in trials)).total_seconds()
    print(f"   {workers} worker(s): {len(trials)} trials in {window:.1f} s", flush=True)
    return {"finished": len(trials), "window_s": window, "per_hour": len(trials) / window * 3600}


if __name__ == "__main__":
    sys.exit(main())
