"""Pruning: epochs trained, best value and wall time of each pruner preset, relative to ``none``.

The GazeGaussian stage of the ``mini`` backend, the package's space, TPE preset and pruner
presets, the same number of trials for every pruner and the same seeds (sampler seed = trainer
seed, as ``run_study``). Trials run in-process (see ``bench/_inprocess.py``); the child process
and database cost is measured by ``bench_overhead.py``. Target for the recommended (default)
preset: at least 60% of the epochs saved with at most 1% regret::

    python bench/bench_pruning.py            # 5 seeds x 20 trials x 12 epochs (~15 min)
    python bench/bench_pruning.py --quick    # 1 seed x 6 trials x 3 epochs, cheap DiTs only
    python bench/bench_pruning.py --what-if  # variants of the presets instead (tuning; ~15 min)
"""

from __future__ import annotations

import sys
import time

from _common import mean, parser, pct, save, start, table, banner
from _inprocess import CurveBank, package_space, run_inprocess

from optuna.pruners import HyperbandPruner, MedianPruner, PatientPruner, SuccessiveHalvingPruner

from gg_optuna_helpers.presets import PRUNERS, REFERENCE_EPOCHS, make_pruner, warmup_epochs
from gg_optuna_helpers.config import StudyConfig

STAGE = "gazegaussian"
RECOMMENDED = StudyConfig.pruner  # the package's default pruner
ORDER = ["none"] + [p for p in PRUNERS if p != "none"]
SAVED_TARGET, REGRET_TARGET = 0.60, 0.01
QUICK_EDITS = {"dit_depth": [4, 6], "dit_patch_size": [8, 16]}  # cheaper DiTs (CI only)
WHAT_IF = {  # label: (the preset it varies, max_epochs -> pruner)
    "median, warm-up 2": ("median", lambda max_epochs: MedianPruner(
        n_startup_trials=3, n_warmup_steps=2, interval_steps=1)),
    "median, warm-up 3": ("median", lambda max_epochs: MedianPruner(
        n_startup_trials=3, n_warmup_steps=3, interval_steps=1)),
    "asha, first rung 5/30 of the budget (before)": ("asha", lambda max_epochs:
        SuccessiveHalvingPruner(min_resource=max(1, round(5 * max_epochs / REFERENCE_EPOCHS)),
                                reduction_factor=3, min_early_stopping_rate=0)),
    "hyperband, reduction factor 2": ("hyperband", lambda max_epochs: HyperbandPruner(
        min_resource=warmup_epochs("hyperband", max_epochs), max_resource=max_epochs,
        reduction_factor=2)),
    "patient, patience 2": ("patient", lambda max_epochs: PatientPruner(
        make_pruner("median", max_epochs=max_epochs), patience=2, min_delta=0.0)),
}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, help="number of seeds (default: 5; quick: 1)")
    p.add_argument("--trials", type=int, help="trials per study (default: 20; quick: 6)")
    p.add_argument("--epochs", type=int, help="max epochs per trial (default: 12; quick: 3)")
    p.add_argument("--what-if", action="store_true",
                   help="compare variants of the presets (tuning) instead of the presets")
    args = p.parse_args(argv)
    start(args)
    seeds = list(range(args.seeds or (1 if args.quick else 5)))
    n_trials = args.trials or (6 if args.quick else 20)
    max_epochs = args.epochs or (3 if args.quick else 12)
    edits = QUICK_EDITS if args.quick else {}
    space = package_space(STAGE, edits)
    settings = {
        "stage": f"{STAGE} (mini backend, CPU, 1 thread, in-process trials)",
        "seeds": f"{len(seeds)} ({seeds[0]}..{seeds[-1]}; sampler seed = trainer seed)",
        "trials per study": n_trials, "max epochs": max_epochs,
        "sampler": "tpe preset", "early stopping": f"patience {StudyConfig.patience}",
        "pruner warm-up epochs": ", ".join(f"{n} {warmup_epochs(n, max_epochs)}" for n in ORDER),
        "space": "package default" + (f" with {edits}" if edits else ""),
    }
    if args.what_if:
        pruners = {"none": ("none", None), **WHAT_IF}
    else:
        pruners = {name: (name, None) for name in ORDER}
    banner("Pruning: " + ("variants of the presets" if args.what_if else "presets") + " vs none",
           settings)

    runs: dict[str, list] = {name: [] for name in pruners}
    started = time.perf_counter()
    for seed in seeds:
        bank = CurveBank(STAGE, seed, max_epochs, args.out / ".cache")
        for name, (preset, variant) in pruners.items():
            r = run_inprocess(bank, space, sampler="tpe", pruner=preset, n_trials=n_trials,
                              variant=variant)
            runs[name].append(r)
            print(f"   seed {seed} {name:<9} best {r.best:.5f} epochs {r.epochs:4d} "
                  f"time {r.seconds:6.1f} s  {r.states}", flush=True)
        print(f"   seed {seed}: {bank.epochs_trained} epochs trained for "
              f"{sum(runs[name][-1].epochs for name in pruners)} used", flush=True)

    rows, figures = [], {}
    for name in pruners:
        pairs = list(zip(runs[name], runs["none"]))
        epochs = [r.epochs / n.epochs for r, n in pairs]
        regret = [r.best / n.best - 1 for r, n in pairs]
        wall = [r.seconds / n.seconds for r, n in pairs]
        figures[name] = {
            "epochs_ratio": epochs, "regret": regret, "wall_ratio": wall,
            "best": [r.best for r, _ in pairs], "epochs": [r.epochs for r, _ in pairs],
            "seconds": [r.seconds for r, _ in pairs],
            "states": [r.states for r, _ in pairs],
            "epochs_saved_mean": 1 - mean(epochs), "regret_mean": mean(regret),
            "regret_worst": max(regret), "wall_ratio_mean": mean(wall),
        }
        states = {k: sum(r.states[k] for r, _ in pairs) for k in runs[name][0].states}
        rows.append([name + (" (default)" if name == RECOMMENDED else ""),
                     _spread(epochs, "{:.2f}".format), pct(1 - mean(epochs)),
                     _spread(regret, lambda x: pct(x, True)), _spread(wall, "{:.2f}".format),
                     f"{states['complete']}/{states['pruned']}/{states['fail']}"])
    header = ["pruner", "epochs vs none", "epochs saved", "regret (best vs none)",
              "time vs none", "complete/pruned/failed"]
    body = table(header, rows)
    print(body)

    def meets(name: str) -> bool:
        f = figures[name]
        return f["epochs_saved_mean"] >= SAVED_TARGET and f["regret_mean"] <= REGRET_TARGET

    goal = f">= {SAVED_TARGET:.0%} epochs saved with <= {REGRET_TARGET:.0%} regret (means)"
    targets = []
    if RECOMMENDED in figures:
        rec = figures[RECOMMENDED]
        targets.append({
            "target": f"default preset `{RECOMMENDED}`: {goal}",
            "figure": f"{pct(rec['epochs_saved_mean'])} saved, "
                      f"{pct(rec['regret_mean'], True)} regret",
            "met": meets(RECOMMENDED)})
    others = [n for n in pruners if n not in ("none", RECOMMENDED) and meets(n)]
    targets.append({"target": f"any {'variant' if args.what_if else 'other preset'}: {goal}",
                    "figure": ", ".join(others) or "none does", "met": bool(others)})
    for t in targets:
        print(f"target: {t['target']}: {t['figure']} -> {'met' if t['met'] else 'NOT met'}")
    print(f"   ({time.perf_counter() - started:.0f} s)")
    body += ("\n\nMeans over seeds [min..max]. Regret: the study's best value relative to the "
             "`none` study of the same seed (positive = worse). Time: the trainer builds and "
             "epochs a study used, at their measured cost, plus its measured Optuna time, in CPU "
             "seconds of one thread (= wall time on an idle core; unaffected by other jobs).\n")
    save(args, "pruning_whatif" if args.what_if else "pruning", settings=settings,
         figures=figures, targets=targets, markdown=body)
    return 0


def _spread(values: list[float], fmt) -> str:
    """'mean [min..max]' of per-seed figures."""
    return f"{fmt(mean(values))} [{fmt(min(values))}..{fmt(max(values))}]"


if __name__ == "__main__":
    sys.exit(main())
