"""Search: the ``tpe`` preset against ``random`` and the baseline defaults, same budget.

A stage of the ``mini`` backend, the package's space, no pruning (so only the sampler differs),
trial 0 = the backend's defaults in every study (the baseline), the same trials and seeds for
every sampler. Trials run in-process (``bench/_inprocess.py``). One extra row is a what-if, not
the package's behaviour: TPE when a diverged trial ends as PRUNED (which TPE learns from)
instead of FAIL (which TPE ignores). Targets: TPE reaches random's 20-trial best in at most 10
trials, and its best is at least 15% better than the baseline::

    python bench/bench_search.py                        # MeshHead: 5 seeds x 20 trials x 10 epochs
    python bench/bench_search.py --stage gazegaussian   # 3 seeds x 20 trials x 12 epochs
    python bench/bench_search.py --quick                # MeshHead: 1 seed x 6 trials x 2 epochs
"""

from __future__ import annotations

import statistics
import sys
import time

from _common import banner, mean, parser, pct, save, start, table
from _inprocess import CurveBank, package_space, run_inprocess

from gg_optuna_helpers.presets import startup_trials

SAMPLERS = {  # label: (sampler preset, diverged trials end as PRUNED instead of FAIL)
    "tpe": ("tpe", False),
    "random": ("random", False),
    "tpe, diverged as pruned (what-if)": ("tpe", True),
}
FULL = {"meshhead": (5, 10), "gazegaussian": (3, 12)}  # stage: (seeds, max epochs)
TRIALS_TARGET, GAIN_TARGET = 10, 0.15


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--stage", default="meshhead", choices=list(FULL))
    p.add_argument("--seeds", type=int, help="number of seeds (default: 5 MeshHead, "
                                                 "3 GazeGaussian; quick: 1)")
    p.add_argument("--trials", type=int, help="trials per study (default: 20; quick: 6)")
    p.add_argument("--epochs", type=int, help="max epochs per trial (default: 10 MeshHead, "
                                                  "12 GazeGaussian; quick: 2)")
    args = p.parse_args(argv)
    start(args)
    full_seeds, full_epochs = FULL[args.stage]
    seeds = list(range(args.seeds or (1 if args.quick else full_seeds)))
    n_trials = args.trials or (6 if args.quick else 20)
    max_epochs = args.epochs or (2 if args.quick else full_epochs)
    space = package_space(args.stage)
    settings = {
        "stage": f"{args.stage} (mini backend, CPU, 1 thread, in-process trials)",
        "seeds": f"{len(seeds)} ({seeds[0]}..{seeds[-1]}; sampler seed = trainer seed)",
        "trials per study": f"{n_trials} (trial 0 = baseline defaults; tpe start-up "
                            f"{startup_trials(n_trials)} random trials)",
        "max epochs": max_epochs, "pruner": "none", "early stopping": "patience 5",
        "space": "package default",
    }
    banner(f"Search ({args.stage}): tpe vs random vs baseline", settings)

    started = time.perf_counter()
    runs: dict[str, list] = {label: [] for label in SAMPLERS}
    for seed in seeds:
        bank = CurveBank(args.stage, seed, max_epochs, args.out / ".cache")
        for label, (sampler, as_pruned) in SAMPLERS.items():
            r = run_inprocess(bank, space, sampler=sampler, pruner="none", n_trials=n_trials,
                              diverged_as_pruned=as_pruned)
            runs[label].append(r)
            print(f"   seed {seed} {label:<6} baseline {r.baseline:.5f} best {r.best:.5f} "
                  f"{r.states}", flush=True)

    randoms = runs["random"]
    figures = {"baseline": [r.baseline for r in randoms]}
    rows = []
    for label, results in runs.items():
        reach = [r.trials_to_reach(rnd.best) for r, rnd in zip(results, randoms)]
        median_reach = statistics.median(n if n is not None else n_trials + 1 for n in reach)
        gains = [1 - r.best / r.baseline for r in results]
        diverged = sum(r.states["fail"] for r in results)
        if SAMPLERS[label][1]:
            diverged = sum(r.states["pruned"] for r in results)
        figures[label] = {"best": [r.best for r in results], "gain_vs_baseline": gains,
                          "trials_to_reach_random_best": reach, "median_trials": median_reach,
                          "vs_random": [1 - r.best / rnd.best for r, rnd in zip(results, randoms)],
                          "diverged_trials": diverged,
                          "best_so_far": [r.best_so_far for r in results]}
        rows.append([label,
                     _trials(None if median_reach > n_trials else median_reach, n_trials)
                     + " (" + ", ".join(_trials(n, n_trials) for n in reach) + ")",
                     f"{pct(mean(gains))} (" + ", ".join(pct(g) for g in gains) + ")",
                     pct(mean(figures[label]["vs_random"]), True),
                     f"{diverged} of {n_trials * len(seeds)}"])
    body = table(["sampler", f"trials to reach random's {n_trials}-trial best: median "
                             "(per seed)", "best vs baseline: mean gain (per seed)",
                  "best vs random's best", "diverged trials"], rows)
    print(body)
    tpe = figures["tpe"]
    reach_text = rows[0][1]
    targets = [
        {"target": f"tpe reaches random's {n_trials}-trial best in <= {TRIALS_TARGET} trials "
                   "(median over seeds)", "figure": reach_text,
         "met": tpe["median_trials"] <= TRIALS_TARGET},
        {"target": f"tpe best >= {GAIN_TARGET:.0%} better than the baseline (mean over seeds)",
         "figure": rows[0][2], "met": mean(tpe["gain_vs_baseline"]) >= GAIN_TARGET},
    ]
    for t in targets:
        print(f"target: {t['target']}: {t['figure']} -> {'met' if t['met'] else 'NOT met'}")
    print(f"   ({time.perf_counter() - started:.0f} s)")
    body += ("\n\nGain = 1 - best / baseline value of the same seed (lower values are better; "
             "the baseline's value changes with the seed). \"more than N\": not reached within "
             "the budget, counted as N + 1 for the median. Diverged trials: a too-high learning "
             "rate made the loss non-finite; the package ends them as FAIL, which TPE ignores.\n")
    name = "search" if args.stage == "meshhead" else f"search_{args.stage}"
    save(args, name, settings=settings, figures=figures, targets=targets, markdown=body)
    return 0


def _trials(n: int | float | None, budget: int) -> str:
    return f"more than {budget}" if n is None else f"{n:g}"


if __name__ == "__main__":
    sys.exit(main())
