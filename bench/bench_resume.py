"""Resume cost: epochs lost per hard kill, helper vs a plain Optuna loop without checkpoints.

Both paths run as a study process on the same fixed MeshHead configuration of the ``mini``
backend (no pruning, no early stopping). The benchmark kills the study process with SIGKILL
(a Colab disconnect: the helper's worker dies with it) half-way through an epoch at the same
points of progress (trial, epoch) in both paths, restarts the same command, and counts every
epoch trained until the study is done. The helper resumes the trial from its last checkpoint
(heartbeat 1 s here, so the dead trial is found after its 3 s grace period); the plain loop,
which has no checkpoints, starts the trial again. Also measured: wall time lost per kill,
against an uninterrupted run of each path. Target: at most 1 epoch lost per kill::

    python bench/bench_resume.py            # 2 trials x 8 epochs, 3 kills per path
    python bench/bench_resume.py --quick    # 1 trial x 3 epochs, 1 kill per path, no clean runs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, banner, parser, save, start, table

STAGE = "meshhead"
KILL_AT_FRACTION = 0.5  # of an epoch after the last finished one
TARGET_EPOCHS = 1.0
SCRIPT = Path(__file__).resolve()


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--plain-child", nargs=4, metavar=("DB", "EPOCHS", "TRIALS", "LOG"),
                   help=argparse.SUPPRESS)  # the plain loop's study process
    args = p.parse_args(argv)
    if args.plain_child:
        return plain_child(*args.plain_child)
    start(args)
    if args.quick:
        n_trials, epochs, kills = 1, 3, [(0, 2)]
    else:
        n_trials, epochs, kills = 2, 8, [(0, 3), (0, 6), (1, 2)]
    work = args.out / "resume_work"
    shutil.rmtree(work, ignore_errors=True)
    settings = {
        "stage": f"{STAGE} (mini backend, CPU, 1 thread), every parameter at its default",
        "trials": n_trials, "epochs per trial": epochs,
        "kills": ", ".join(f"trial {t} after epoch {e}" for t, e in kills)
                 + f", each {KILL_AT_FRACTION:g} epoch into the next one (SIGKILL)",
        "helper": "`python -m gg_optuna_helpers run`, folder storage, heartbeat 1 s",
        "plain": "in-process Optuna loop, SQLite storage, no checkpoints",
    }
    banner("Resume cost after a hard kill", settings)
    started = time.perf_counter()
    results = {}
    for path in ("helper", "plain"):
        killed = _run(path, work / f"{path}_killed", n_trials, epochs, kills)
        clean = ({"seconds": math.nan} if args.quick  # no reference run: wall time lost n/a
                 else _run(path, work / f"{path}_clean", n_trials, epochs, []))
        lost = killed["epochs"] - n_trials * epochs
        results[path] = {
            "epochs_trained": killed["epochs"], "epochs_needed": n_trials * epochs,
            "complete_epochs_lost_per_kill": lost / len(kills),
            "epochs_lost_per_kill": lost / len(kills) + KILL_AT_FRACTION,
            "seconds_lost_per_kill": (killed["seconds"] - clean["seconds"]) / len(kills),
            "seconds_clean": clean["seconds"], "seconds_killed": killed["seconds"],
            "restarts": killed["restarts"],
        }
        r = results[path]
        print(f"   {path:<6} {r['epochs_trained']} epochs trained for {r['epochs_needed']}; "
              f"{r['seconds_killed']:.1f} s ({r['seconds_clean']:.1f} s uninterrupted)",
              flush=True)
    shutil.rmtree(work, ignore_errors=True)

    h, pl = results["helper"], results["plain"]
    body = table(["per hard kill", "helper", "plain loop", "helper / plain"], [
        ["epochs lost (finished epochs trained again + the half epoch in progress)",
         f"{h['epochs_lost_per_kill']:.2f}", f"{pl['epochs_lost_per_kill']:.2f}",
         f"{h['epochs_lost_per_kill'] / pl['epochs_lost_per_kill']:.2f}"],
        ["finished epochs trained again", f"{h['complete_epochs_lost_per_kill']:.2f}",
         f"{pl['complete_epochs_lost_per_kill']:.2f}", ""],
        ["wall time lost, s (vs an uninterrupted run; includes the restart)",
         *_na(f"{h['seconds_lost_per_kill']:.1f}", f"{pl['seconds_lost_per_kill']:.1f}",
              f"{h['seconds_lost_per_kill'] / pl['seconds_lost_per_kill']:.2f}")],
    ])
    print(body)
    targets = [{"target": f"<= {TARGET_EPOCHS:g} epoch lost per hard kill",
                "figure": f"{h['epochs_lost_per_kill']:.2f} (plain loop: "
                          f"{pl['epochs_lost_per_kill']:.2f})",
                "met": h["epochs_lost_per_kill"] <= TARGET_EPOCHS}]
    for t in targets:
        print(f"target: {t['target']}: {t['figure']} -> {'met' if t['met'] else 'NOT met'}")
    print(f"   ({time.perf_counter() - started:.0f} s)")
    body += ("\n\nThe helper's wall time lost per kill is mostly its restart: a new study "
             "process, the 3 s heartbeat grace before the dead trial is re-queued, and a new "
             "worker process.\n")
    save(args, "resume", settings=settings, figures=results, targets=targets, markdown=body)
    return 0


def _na(*cells: str) -> list[str]:
    return ["n/a" if cell == "nan" else cell for cell in cells]


def _command(path: str, work: Path, n_trials: int, epochs: int) -> list[str]:
    if path == "plain":
        return [sys.executable, str(SCRIPT), "--plain-child", str(work / "plain.db"),
                str(epochs), str(n_trials), str(work / "epochs.jsonl")]
    from gg_optuna_helpers.backends import get_backend

    fixed = [f"--set={k}={v}" for k, v in get_backend("mini").defaults(STAGE, {}).items()]
    return [sys.executable, "-m", "gg_optuna_helpers", "run", "--stage", STAGE,
            "--storage", str(work / "results"), "--n-trials", str(n_trials),
            "--max-epochs", str(epochs), "--pruner", "none", "--patience", "0",
            "--heartbeat-interval", "1", "--device", "cpu", "--quiet", *fixed]


def _progress(path: str, work: Path) -> list[tuple[int, int]]:
    """(trial, epoch) of every epoch trained so far, in order (replays excluded)."""
    if path == "plain":
        files = [work / "epochs.jsonl"]
    else:
        files = sorted((work / "results" / f"mini_{STAGE}").glob("trial_*/metrics.jsonl"))
    seen = []
    for index, file in enumerate(files):  # trial folders in order: trial_0000, trial_0003, ...
        if not file.exists():
            continue
        text = file.read_text()
        for line in text[:text.rfind("\n") + 1].splitlines():  # complete lines only
            event = json.loads(line)
            if path == "plain":
                seen.append((event["trial"], event["epoch"]))
            elif event["event"] == "epoch" and not event.get("replayed"):
                seen.append((index, event["epoch"]))  # a retry writes to its original folder
    return seen


def _run(path: str, work: Path, n_trials: int, epochs: int,
         kills: list[tuple[int, int]]) -> dict:
    """Run one path to the end, killing it at each (trial, epoch) of ``kills``."""
    work.mkdir(parents=True)
    env = dict(os.environ, GG_OPTUNA_LOCAL_DIR=str(work / "local"))
    pending = list(kills)
    restarts, epoch_seconds = 0, None
    start_time = time.perf_counter()
    while True:
        with open(work / "stderr", "ab") as stderr:
            proc = subprocess.Popen(_command(path, work, n_trials, epochs), cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=stderr,
                                    start_new_session=True)
        killed = False
        last_count, last_time = len(_progress(path, work)), time.perf_counter()
        while proc.poll() is None:
            seen = _progress(path, work)
            if len(seen) != last_count:
                now = time.perf_counter()
                if len(seen) == last_count + 1 and last_count and seen[-2][0] == seen[-1][0]:
                    epoch_seconds = now - last_time  # between two epochs of one trial
                last_count, last_time = len(seen), now
            if pending and seen and seen[-1] == pending[0] and epoch_seconds:
                time.sleep(max(0.0, last_time + KILL_AT_FRACTION * epoch_seconds
                               - time.perf_counter()))
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                pending.pop(0)
                killed = True
                time.sleep(0.5)  # the worker dies with its parent (PR_SET_PDEATHSIG)
                break
            time.sleep(0.02)
        if not killed:
            if proc.returncode != 0:
                raise RuntimeError(f"{path} run failed ({proc.returncode}): "
                                   + (work / "stderr").read_text()[-2000:])
            break
        restarts += 1
    if pending:
        raise RuntimeError(f"{path}: never reached the kill points {pending}")
    return {"epochs": len(_progress(path, work)), "seconds": time.perf_counter() - start_time,
            "restarts": restarts}


def plain_child(db: str, epochs: str, n_trials: str, log: str) -> int:
    """The plain loop: in-process trainer, SQLite study (it survives a kill), no checkpoints."""
    sys.path.insert(0, str(ROOT))
    import optuna
    import torch
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from gg_optuna_helpers.backends import TrainerContext, get_backend

    torch.set_num_threads(int(os.environ.get("GG_OPTUNA_THREADS", "1")))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    backend = get_backend("mini")
    params = backend.defaults(STAGE, {})
    epochs_, total = int(epochs), int(n_trials)
    study = optuna.create_study(study_name="plain", storage=f"sqlite:///{db}",
                                load_if_exists=True, direction="minimize")

    def objective(trial: optuna.Trial) -> float:
        index = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        for name, value in params.items():
            trial.suggest_categorical(name, [value])
        trainer = backend.make_trainer(TrainerContext(
            stage=STAGE, params=params, max_epochs=epochs_, seed=42, device="cpu",
            trial_dir=Path(db).parent, cache_dir=Path(db).parent / ".cache"))
        best = float("inf")
        for epoch in range(1, epochs_ + 1):
            trainer.train_epoch(epoch)
            best = min(best, trainer.validate()["value"])
            trial.report(best, epoch)
            with open(log, "a") as f:
                f.write(json.dumps({"trial": index, "epoch": epoch}) + "\n")
        return best

    study.optimize(objective, callbacks=[MaxTrialsCallback(total, states=(TrialState.COMPLETE,))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
