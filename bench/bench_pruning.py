"""Pruning: epochs trained, best value and wall time of each pruner preset, relative to ``none``.

The GazeGaussian stage of the ``mini`` backend, the package's space, TPE preset and pruner
presets, the same number of trials for every pruner and the same seeds (sampler seed = trainer
seed, as ``run_study``). Trials run in-process (see ``bench/_inprocess.py``); the child process
and database cost is measured by ``bench_overhead.py``. Target for the recommended (default)
preset: at least 60% of the epochs saved with at most 1% regret::

    python bench/bench_pruning.py            # 5 seeds x 20 trials x 12 epochs (~15 min)
    python bench/bench_pruning.py --quick    # 1 seed x 6 trials x 3 epochs, cheap DiTs only
"""

from __future__ import annotations

import sys
import time

from _common import mean, parser, pct, save, start, table, banner
from _inprocess import CurveBank, package_space, run_inprocess

from gg_optuna_helpers.presets import PRUNERS, warmup_epochs
from gg_optuna_helpers.study import StudyConfig

STAGE = "gazegaussian"
RECOMMENDED = StudyConfig.pruner  # the package's default pruner
ORDER = ["none"] + [p for p in PRUNERS if p != "none"]
SAVED_TARGET, REGRET_TARGET = 0.60, 0.01
QUICK_EDITS = {"dit_depth": [4, 6], "dit_patch_size": [8, 16]}  # cheaper DiTs (CI only)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, help="number of seeds (default: 5; quick: 1)")
    p.add_argument("--trials", type=int, help="trials per study (default: 20; quick: 6)")
    p.add_argument("--epochs", type=int, help="max epochs per trial (default: 12; quick: 3)")
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
    banner("Pruning presets vs none", settings)

    runs: dict[str, list] = {name: [] for name in ORDER}
    started = time.perf_counter()
    for seed in seeds:
        bank = CurveBank(STAGE, seed, max_epochs, args.out / ".cache")
        for name in ORDER:
            r = run_inprocess(bank, space, sampler="tpe", pruner=name, n_trials=n_trials)
            runs[name].append(r)
            print(f"   seed {seed} {name:<9} best {r.best:.5f} epochs {r.epochs:4d} "
                  f"time {r.seconds:6.1f} s  {r.states}", flush=True)
        print(f"   seed {seed}: {bank.epochs_trained} epochs actually trained for "
              f"{sum(r.epochs for name in ORDER for r in runs[name][-1:])} charged", flush=True)

    rows, figures = [], {}
    for name in ORDER:
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
                     f"{mean(epochs):.2f} [{min(epochs):.2f}..{max(epochs):.2f}]",
                     pct(1 - mean(epochs)),
                     f"{pct(mean(regret), True)} [{pct(min(regret), True)}..{pct(max(regret), True)}]",
                     f"{mean(wall):.2f} [{min(wall):.2f}..{max(wall):.2f}]",
                     f"{states['complete']}/{states['pruned']}/{states['fail']}"])
    header = ["pruner", "epochs vs none", "epochs saved", "regret (best vs none)",
              "wall time vs none", "complete/pruned/failed"]
    body = table(header, rows)
    print(body)

    def meets(name: str) -> bool:
        f = figures[name]
        return f["epochs_saved_mean"] >= SAVED_TARGET and f["regret_mean"] <= REGRET_TARGET

    rec = figures[RECOMMENDED]
    targets = [{
        "target": f"default preset `{RECOMMENDED}`: >= {SAVED_TARGET:.0%} epochs saved with "
                  f"<= {REGRET_TARGET:.0%} regret (means over seeds)",
        "figure": f"{pct(rec['epochs_saved_mean'])} saved, {pct(rec['regret_mean'], True)} regret",
        "met": meets(RECOMMENDED)}]
    others = [n for n in ORDER if n not in ("none", RECOMMENDED) and meets(n)]
    targets.append({"target": "any other preset meets both",
                    "figure": ", ".join(others) or "none does", "met": bool(others)})
    for t in targets:
        print(f"target: {t['target']}: {t['figure']} -> {'met' if t['met'] else 'NOT met'}")
    print(f"   ({time.perf_counter() - started:.0f} s)")
    body += ("\n\nMeans over seeds [min..max]. Regret: the study's best value relative to the "
             "`none` study of the same seed (positive = worse). Wall time: charged time (trainer "
             "builds and epochs at their measured cost, plus the measured Optuna time).\n")
    save(args, "pruning", settings=settings, figures=figures, targets=targets, markdown=body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
