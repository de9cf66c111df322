"""Overhead: what the helper adds per trial and per epoch, against a plain in-process loop.

Both run the same MeshHead trainer of the ``mini`` backend, every parameter fixed at the
backend's defaults, no pruning, no early stopping. The helper path is ``run_study``: a child
process per trial, the live SQLite database and a snapshot after each trial, a checkpoint every
epoch; with the warm worker (the default: the next trial's process starts and imports torch
while the current one trains) and without it (cold: each process starts when its trial does).
The plain path is a textbook in-process Optuna loop (in-memory storage, no checkpoints).

Per trial: a trial's cycle (one trial's start to the next, from Optuna's timestamps) minus the
training it did (``train_epoch`` + ``validate`` seconds, measured where they ran), so the noise
of the training itself cancels, less the per-epoch part, from the longer trials (the warm
worker hides a process start behind the previous trial only as far as that trial lasts; the
shorter trials show what is left when it is too short). Per epoch: a
watcher thread notes when each epoch's metrics line appears; the gap between two epochs of a
trial minus the second one's training is what the worker spent between them (checkpoints,
preview, metrics line), on the critical path. The parent's per-epoch work (reports into SQLite)
runs meanwhile, on the other core. Targets (warm worker): at most 0.5 s per trial and 10 ms
per epoch::

    python bench/bench_overhead.py            # 7 trials at 2 and at 16 epochs, each path
    python bench/bench_overhead.py --quick    # 3 trials at 2 and at 3 epochs
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
import warnings
from functools import partial
from pathlib import Path

import optuna
from optuna.trial import TrialState

from _common import banner, parser, save, start, table
from _inprocess import package_space

from gg_optuna_helpers.backends import TrainerContext, get_backend
from gg_optuna_helpers.config import StudyConfig
from gg_optuna_helpers.protocol import TrialSpec, append_event
from gg_optuna_helpers.records import TrialAttr, get
from gg_optuna_helpers.runner import WarmWorker, _launch, _Relay
from gg_optuna_helpers.storage import open_storage
from gg_optuna_helpers.study import run_study
from gg_optuna_helpers.worker import Progress, _save

STAGE = "meshhead"
TRIAL_TARGET_S, EPOCH_TARGET_S = 0.5, 0.010
PATHS = {"plain": "plain", "warm": "helper, warm worker", "cold": "helper, cold start"}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--trials", type=int, help="trials per run (default: 7; quick: 3)")
    args = p.parse_args(argv)
    start(args)
    n_trials = args.trials or (3 if args.quick else 7)
    short, long = (2, 3) if args.quick else (2, 16)  # 2 or more: a gap between two epochs
    defaults = get_backend("mini").defaults(STAGE, {})
    work = args.out / "overhead_work"
    shutil.rmtree(work, ignore_errors=True)
    settings = {
        "stage": f"{STAGE} (mini backend, CPU, 1 thread), every parameter at its default",
        "trials per run": f"{n_trials} (overhead from the {n_trials - 2} cycles between starts "
                          "after the first trial's: a study's one-off start is left out of "
                          "both paths)",
        "epochs per trial": f"{short} and {long}", "pruner": "none", "early stopping": "off",
        "helper": "run_study, folder storage (live SQLite + snapshots), heartbeat 10 s; with the "
                  "warm worker (default) and without (cold)",
        "plain": "optuna.create_study() in memory, trainer in-process, no checkpoints",
    }
    banner("Overhead of the helper per trial and per epoch", settings)
    started = time.perf_counter()
    _warm_up(work / "warm_up", defaults)
    measured, epoch_gaps = {}, {path: [] for path in PATHS}
    for epochs in (short, long):
        for path in PATHS:
            run = _plain if path == "plain" else partial(_helper, warm=path == "warm")
            cycle, gaps = run(work / f"{path}_{epochs}", defaults, n_trials, epochs)
            measured[path, epochs] = cycle
            epoch_gaps[path] += gaps
            print(f"   {path:<6} {epochs} epochs: {cycle:.3f} s overhead per trial, "
                  f"{statistics.fmean(gaps) * 1000:.1f} ms per epoch", flush=True)

    per_epoch_path = {path: statistics.fmean(gaps) for path, gaps in epoch_gaps.items()}
    per_epoch = {p: per_epoch_path[p] - per_epoch_path["plain"] for p in ("warm", "cold")}
    # from the longer trials: a warm worker hides its start behind the previous trial only as
    # far as that trial lasts (the shorter trials' rows show what is left when it is too short)
    per_trial = {p: measured[p, long] - measured["plain", long] - per_epoch[p] * long
                 for p in ("warm", "cold")}
    parts = _components(work / "parts", defaults, repeats=1 if args.quick else 3)
    shutil.rmtree(work, ignore_errors=True)

    rows = [[f"{PATHS[path]} ({e} epochs)", f"{measured[path, e]:.3f}"]
            for e in (short, long) for path in PATHS]
    rows += [[f"{PATHS[path]}, per epoch", f"{per_epoch_path[path]:.4f}"] for path in PATHS]
    body = table(["path", "overhead, s (cycle minus training)"], rows)
    body += "\n\n" + table(["what the helper adds", "seconds", "target", "vs target"], [
        [f"per trial ({long}-epoch trials), {PATHS[p]}", f"{per_trial[p]:.3f}",
         f"{TRIAL_TARGET_S:g}",
         f"{per_trial[p] / TRIAL_TARGET_S:.2f}x"] for p in ("warm", "cold")] + [
        [f"per epoch, {PATHS[p]}", f"{per_epoch[p]:.4f}", f"{EPOCH_TARGET_S:g}",
         f"{per_epoch[p] / EPOCH_TARGET_S:.2f}x"] for p in ("warm", "cold")])
    body += "\n\n" + table(["component, measured alone", "seconds"], [
        ["child start: `python -m gg_optuna_helpers.worker` for 0 epochs", f"{parts['child']:.3f}"],
        ["same, handed to a warmed `worker --warm` process", f"{parts['warm_child']:.3f}"],
        ["  of which `import torch` in a fresh interpreter", f"{parts['import_torch']:.3f}"],
        ["  of which the first optimizer (torch imports `torch._dynamo` then)",
         f"{parts['first_optimizer']:.3f}"],
        ["  `import gg_optuna_helpers` (Optuna, SQLAlchemy) in a fresh interpreter",
         f"{parts['import_package']:.3f}"],
        ["same trainer built in-process (the plain loop's cost)", f"{parts['build']:.3f}"],
        ["snapshot of the study database (after each trial)", f"{parts['snapshot']:.4f}"],
        ["per epoch, in the child: checkpoint `last.pt` (and `best.pt` on a new best)",
         f"{parts['checkpoint']:.4f}"],
        ["per trial, in the child: `preview.png` of the best epoch, at the end",
         f"{parts['preview']:.4f}"],
        ["per epoch, in the child: metrics line (with fsync)", f"{parts['metrics_line']:.4f}"],
        ["per epoch, in the parent: report + user attrs + should_prune on SQLite",
         f"{parts['report']:.4f}"],
    ])
    print(body)
    targets = [
        {"target": f"<= {TRIAL_TARGET_S:g} s added per trial (warm worker)",
         "figure": f"{per_trial['warm']:.2f} s (cold start: {per_trial['cold']:.2f} s)",
         "met": per_trial["warm"] <= TRIAL_TARGET_S},
        {"target": f"<= {EPOCH_TARGET_S * 1000:g} ms added per epoch (warm worker)",
         "figure": f"{per_epoch['warm'] * 1000:.1f} ms (cold start: "
                   f"{per_epoch['cold'] * 1000:.1f} ms)",
         "met": per_epoch["warm"] <= EPOCH_TARGET_S},
    ]
    for t in targets:
        print(f"target: {t['target']}: {t['figure']} -> {'met' if t['met'] else 'NOT met'}")
    print(f"   ({time.perf_counter() - started:.0f} s)")
    figures = {"overhead_per_trial": {f"{k[0]}_{k[1]}": v for k, v in measured.items()},
               "overhead_per_epoch": per_epoch_path, "added_per_trial": per_trial,
               "added_per_epoch": per_epoch, "components": parts}
    body += ("\n\nThe per-trial and per-epoch figures come from the end-to-end runs; the "
             "components are measured alone to show where the time goes. The parent's per-epoch "
             "work runs while the child trains the next epoch, so it is not on the critical "
             "path.\n")
    save(args, "overhead", settings=settings, figures=figures, targets=targets, markdown=body)
    return 0


def _cycles(trials: list[optuna.trial.FrozenTrial], trained: dict[int, float]) -> float:
    """Mean over consecutive trials after the first of (next start - this start - this
    trial's training)."""
    trials = sorted(trials, key=lambda t: t.number)[1:]
    gaps = [(b.datetime_start - a.datetime_start).total_seconds() - trained[a.number]
            for a, b in zip(trials, trials[1:])]
    return statistics.fmean(gaps)


def _helper(work: Path, defaults: dict, n_trials: int, epochs: int, *,
            warm: bool) -> tuple[float, list]:
    cfg = StudyConfig(stage=STAGE, storage=str(work / "results"), local_dir=str(work / "local"),
                      n_trials=n_trials, max_epochs=epochs, pruner="none", patience=None,
                      device="cpu", edits=dict(defaults), show_progress_bar=False,
                      warm_worker=warm)
    resolved = cfg.resolved()
    watcher = _EpochWatcher(resolved.results.study_dir(resolved.study_name))
    with contextlib.redirect_stdout(io.StringIO()), watcher:  # no line per trial here
        study = run_study(cfg)
    trials = study.get_trials(deepcopy=False)
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    trained = {t.number: get(t, TrialAttr.EPOCHS) * get(t, TrialAttr.SECONDS_PER_EPOCH)
               for t in trials}
    return _cycles(trials, trained), watcher.gaps()


class _EpochWatcher(threading.Thread):
    """Notes when each epoch's metrics line appears in the trial folders (every 2 ms)."""

    def __init__(self, study_dir: Path) -> None:
        super().__init__(daemon=True)
        self.study_dir, self.seen, self.done = study_dir, {}, threading.Event()

    def run(self) -> None:
        sizes: dict[Path, int] = {}
        while not self.done.is_set():
            for file in self.study_dir.glob("trial_*/metrics.jsonl"):
                size = file.stat().st_size
                if size != sizes.get(file):
                    sizes[file] = size
                    now = time.perf_counter()
                    text = file.read_text()
                    for line in text[:text.rfind("\n") + 1].splitlines():
                        event = json.loads(line)
                        if event["event"] == "epoch":
                            self.seen.setdefault((file, event["epoch"]), (now, event["seconds"]))
            time.sleep(0.002)

    def __enter__(self) -> "_EpochWatcher":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.join()

    def gaps(self) -> list[float]:
        """For each epoch after a trial's first: time since the previous epoch's line, minus
        its own training."""
        return [self.seen[file, epoch][0] - self.seen[file, epoch - 1][0] - seconds
                for (file, epoch), (_, seconds) in self.seen.items()
                if (file, epoch - 1) in self.seen]


def _plain(work: Path, defaults: dict, n_trials: int, epochs: int) -> tuple[float, list]:
    space = package_space(STAGE, defaults)
    backend = get_backend("mini")
    trained: dict[int, float] = {}
    gaps: list[float] = []
    work.mkdir(parents=True, exist_ok=True)

    def objective(trial: optuna.Trial) -> float:
        params = space.suggest(trial)
        trainer = backend.make_trainer(TrainerContext(
            stage=STAGE, params=params, max_epochs=epochs, seed=42, device="cpu",
            trial_dir=work, cache_dir=work / ".cache"))
        best, seconds, last = float("inf"), 0.0, None
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            trainer.train_epoch(epoch)
            value = trainer.validate()["value"]
            t1 = time.perf_counter()
            seconds += t1 - t0
            if last is not None:  # as the helper's: previous epoch's end to this one's
                gaps.append(t1 - last - (t1 - t0))
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
            best = min(best, value)
            last = t1
        trained[trial.number] = seconds
        return best

    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=n_trials)
    return _cycles(study.get_trials(deepcopy=False), trained), gaps


def _warm_up(work: Path, defaults: dict) -> None:
    """Pay the plain loop's once-per-process costs (data, the first optimizer imports
    ``torch._dynamo``) before measuring: a study pays them once, not per trial."""
    work.mkdir(parents=True, exist_ok=True)
    trainer = get_backend("mini").make_trainer(TrainerContext(
        stage=STAGE, params=dict(defaults), max_epochs=1, seed=42, device="cpu",
        trial_dir=work, cache_dir=work / ".cache"))
    trainer.train_epoch(1)
    trainer.validate()


def _components(work: Path, defaults: dict, repeats: int) -> dict[str, float]:
    """Each per-trial and per-epoch cost of the helper, measured alone (medians)."""
    work.mkdir(parents=True, exist_ok=True)
    spec = TrialSpec(backend="mini", stage=STAGE, params=dict(defaults), max_epochs=0,
                     trial_dir=str(work), cache_dir=str(work / ".cache"), device="cpu")
    path = spec.write()
    child = _median(lambda: subprocess.run(
        [sys.executable, "-m", "gg_optuna_helpers.worker", str(path)], check=True,
        capture_output=True), repeats)
    warm = statistics.median(_warm_trial(spec) for _ in range(repeats))  # hand-over to exit

    def fresh(code: str) -> float:
        return _median(lambda: subprocess.run([sys.executable, "-c", code], check=True), repeats)

    import_torch = fresh("import torch")
    first_optimizer = fresh("import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], "
                            "lr=0.1)") - import_torch
    import_package = fresh("import gg_optuna_helpers")
    backend = get_backend("mini")
    ctx = TrainerContext(stage=STAGE, params=dict(defaults), max_epochs=1, seed=42, device="cpu",
                         trial_dir=work, cache_dir=work / ".cache")
    build = _median(lambda: backend.make_trainer(ctx), repeats)
    trainer = backend.make_trainer(ctx)
    trainer.train_epoch(1)
    checkpoint = _median(lambda: _save(trainer, spec, Progress(next_epoch=2), work / "last.pt"), 5)
    preview = _median(lambda: trainer.preview(work / "preview.png"), 5)
    parts = {k: v for k, v in trainer.validate().items() if k != "value"}
    event = {"event": "epoch", "epoch": 1, "value": 0.1, "parts": parts, "train": {"loss": 0.1},
             "seconds": 0.3}
    metrics = _median(lambda: append_event(work, **event), 5)
    storage = open_storage(work / "db", study_name="snapshot", local_dir=work / "local")
    study = optuna.create_study(study_name="snapshot", storage=storage.rdb)
    with warnings.catch_warnings():  # ask/tell on a heartbeat storage: fine for a timing
        warnings.simplefilter("ignore")
        for _ in range(20):  # a database the size of a small study's
            trial = study.ask()
            for epoch in range(1, 11):
                trial.report(0.1, epoch)
            study.tell(trial, 0.1)
        relay = _Relay(study.ask())
        epochs = iter(range(1, 1000))
        report = _median(lambda: relay.handle(dict(event, epoch=next(epochs))), 9)
    snapshot = _median(lambda: storage.snapshot(force=True), 5)
    return {"child": child, "warm_child": warm, "import_torch": import_torch,
            "first_optimizer": first_optimizer,
            "import_package": import_package, "build": build,
            "checkpoint": checkpoint, "preview": preview, "metrics_line": metrics,
            "report": report, "snapshot": snapshot}


def _warm_trial(spec: TrialSpec) -> float:
    """Seconds from handing ``spec`` to a warmed process (idle on its stdin) to its exit."""
    with WarmWorker() as warm:
        _wait_idle(warm._child.pid)
        t0 = time.perf_counter()
        child = _launch(spec, warm)
        child.wait()
        return time.perf_counter() - t0


def _wait_idle(pid: int) -> None:
    """Until the process has used no CPU for 1 s (warmed, waiting for its spec)."""
    def cpu() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    last = -1
    while (now := cpu()) != last:
        last = now
        time.sleep(1.0)


def _median(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())
