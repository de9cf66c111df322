"""Search: the ``tpe`` preset against ``random`` and the baseline defaults, same budget.

The MeshHead stage of the ``mini`` backend (``--stage gazegaussian`` for the other), the
package's space, no pruning (so only the sampler differs), trial 0 = the backend's defaults in
every study (the baseline), the same trials and seeds for both samplers. Trials run in-process
(``bench/_inprocess.py``). Targets: TPE reaches random's 20-trial best in at most 10 trials, and
its best is at least 15% better than the baseline::

    python bench/bench_search.py            # 5 seeds x 20 trials x 10 epochs (~10 min)
    python bench/bench_search.py --quick    # 1 seed x 6 trials x 2 epochs
"""

from __future__ import annotations

import statistics
import sys
import time

from _common import banner, mean, parser, pct, save, start, table
from _inprocess import CurveBank, package_space, run_inprocess

from gg_optuna_helpers.presets import startup_trials

SAMPLERS = ("tpe", "random")
TRIALS_TARGET, GAIN_TARGET = 10, 0.15


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--stage", default="meshhead", choices=["meshhead", "gazegaussian"])
    p.add_argument("--seeds", type=int, help="number of seeds (default: 5; quick: 1)")
    p.add_argument("--trials", type=int, help="trials per study (default: 20; quick: 6)")
    p.add_argument("--epochs", type=int, help="max epochs per trial (default: 10; quick: 2)")
    args = p.parse_args(argv)
    start(args)
    seeds = list(range(args.seeds or (1 if args.quick else 5)))
    n_trials = args.trials or (6 if args.quick else 20)
    max_epochs = args.epochs or (2 if args.quick else 10)
    space = package_space(args.stage)
    settings = {
        "stage": f"{args.stage} (mini backend, CPU, 1 thread, in-process trials)",
        "seeds": f"{len(seeds)} ({seeds[0]}..{seeds[-1]}; sampler seed = trainer seed)",
        "trials per study": f"{n_trials} (trial 0 = baseline defaults; tpe start-up "
                            f"{startup_trials(n_trials)} random trials)",
        "max epochs": max_epochs, "pruner": "none", "early stopping": "patience 5",
        "space": "package default",
    }
    banner("Search: tpe vs random vs baseline", settings)

    started = time.perf_counter()
    runs: dict[str, list] = {s: [] for s in SAMPLERS}
    for seed in seeds:
        bank = CurveBank(args.stage, seed, max_epochs, args.out / ".cache")
        for sampler in SAMPLERS:
            r = run_inprocess(bank, space, sampler=sampler, pruner="none", n_trials=n_trials)
            runs[sampler].append(r)
            print(f"   seed {seed} {sampler:<6} baseline {r.baseline:.5f} best {r.best:.5f} "
                  f"{r.states}", flush=True)

    per_seed, reach, gains, random_gains, vs_random = [], [], [], [], []
    for seed, tpe, rnd in zip(seeds, runs["tpe"], runs["random"]):
        needed = tpe.trials_to_reach(rnd.best)
        reach.append(needed)
        gains.append(1 - tpe.best / tpe.baseline)
        random_gains.append(1 - rnd.best / rnd.baseline)
        vs_random.append(1 - tpe.best / rnd.best)
        per_seed.append([seed, f"{tpe.baseline:.4f}", f"{rnd.best:.4f}", f"{tpe.best:.4f}",
                         _trials(needed, n_trials), pct(random_gains[-1]), pct(gains[-1])])
    median_reach = statistics.median(n if n is not None else n_trials + 1 for n in reach)
    reach_text = _trials(None if median_reach > n_trials else median_reach, n_trials)
    body = table(["seed", "baseline value", "random best", "tpe best",
                  f"tpe trials to reach random's {n_trials}-trial best",
                  "random vs baseline", "tpe vs baseline"], per_seed)
    summary = table(["figure", "value"], [
        [f"tpe trials to reach random's {n_trials}-trial best (median over seeds)", reach_text],
        ["tpe best vs random best (mean gain)", pct(mean(vs_random), True)],
        ["tpe best vs baseline (mean gain)", pct(mean(gains))],
        ["random best vs baseline (mean gain)", pct(mean(random_gains))],
    ])
    print(body + "\n\n" + summary)
    targets = [
        {"target": f"tpe reaches random's {n_trials}-trial best in <= {TRIALS_TARGET} trials "
                   "(median over seeds)",
         "figure": reach_text + " (per seed: " + ", ".join(_trials(n, n_trials) for n in reach)
                   + ")",
         "met": median_reach <= TRIALS_TARGET},
        {"target": f"tpe best >= {GAIN_TARGET:.0%} better than the baseline (mean over seeds)",
         "figure": f"{pct(mean(gains))} (per seed: {', '.join(pct(g) for g in gains)})",
         "met": mean(gains) >= GAIN_TARGET},
    ]
    for t in targets:
        print(f"target: {t['target']}: {t['figure']} -> {'met' if t['met'] else 'NOT met'}")
    print(f"   ({time.perf_counter() - started:.0f} s)")
    figures = {"trials_to_reach_random_best": reach, "median_trials_to_reach": median_reach,
               "gain_vs_baseline": gains, "random_gain_vs_baseline": random_gains,
               "tpe_vs_random": vs_random,
               "best": {s: [r.best for r in runs[s]] for s in SAMPLERS},
               "baseline": [r.baseline for r in runs["tpe"]],
               "best_so_far": {s: [r.best_so_far for r in runs[s]] for s in SAMPLERS}}
    body += "\n\n" + summary + (
        "\n\nGain = 1 - best / baseline value (lower values are better). \"more than N\": TPE "
        "did not reach it within the budget; counted as N + 1 for the median.\n")
    save(args, "search", settings=settings, figures=figures, targets=targets, markdown=body)
    return 0


def _trials(n: int | float | None, budget: int) -> str:
    return f"more than {budget}" if n is None else f"{n:g}"


if __name__ == "__main__":
    sys.exit(main())
