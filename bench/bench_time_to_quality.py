"""Time to quality: the GPU time each pruner preset needs to reach the `none` study's best.

For each stage of ``mini`` and two budgets (one report per epoch for 12 epochs, and a real-like
48 reports: one every quarter epoch of the same training), over many seeds (sampler seed): a
`none` study of 20 trials sets the quality bar (its final best) and the time scale (its charged
seconds, T). Every other preset runs with the same seed until it has used T (or 30 trials); per
preset: the time to reach the bar (x T; median over seeds [min..max]) and its regret (best vs
the bar) at 25%, 50% and 100% of T. Curves are recorded once and replayed (``bench/_curves.py``:
a pool of configurations per stage, each trained once; a trial replays the nearest one)::

    python bench/bench_time_to_quality.py            # 2 stages x 2 budgets x 10 seeds
    python bench/bench_time_to_quality.py --quick    # meshhead, 2 epochs, 2 seeds, pool 6
    python bench/bench_time_to_quality.py --what-if  # variants of `curve` and `median` too
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from _common import banner, parser, pct, save, start, table
from _curves import SPANS, PoolBank, record
from _inprocess import package_space, run_inprocess

from optuna.pruners import MedianPruner

from gg_optuna_helpers.presets import PRUNERS, warmup_epochs
from gg_optuna_helpers.config import StudyConfig

DEFAULT = StudyConfig.pruner
ORDER = ["none"] + [p for p in PRUNERS if p != "none"]
FRACTIONS = (0.25, 0.5, 1.0)
TIME_TARGET, REGRET_TARGET = 0.40, 0.01
POOLS = {"gazegaussian": 96, "meshhead": 64}  # recorded configurations per stage
_curve = PRUNERS["curve"]  # the shipped preset; the variants pass it options

WHAT_IF = {  # label: (the preset it varies, max_epochs -> pruner)
    "curve, optimism 8": ("curve", lambda max_epochs: _curve(max_epochs, optimism=8.0)),
    "curve, optimism 2 (before)": ("curve", lambda max_epochs: _curve(max_epochs, optimism=2.0)),
    "curve, k=3": ("curve", lambda max_epochs: _curve(max_epochs, k=3)),
    "curve, warm-up 1/8": ("curve", lambda max_epochs: _curve(max_epochs, warmup_fraction=0.125)),
    "median, warm-up 1/4 of the budget": ("median", lambda max_epochs: MedianPruner(
        n_startup_trials=3, n_warmup_steps=max(5, max_epochs // 4), interval_steps=1)),
}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, help="sampler seeds (default: 10; quick: 2)")
    p.add_argument("--trials", type=int, help="trials of the `none` study (default: 20; quick: 4)")
    p.add_argument("--pool", type=int, help="recorded configurations per stage "
                   f"({', '.join(f'{s} {k}' for s, k in POOLS.items())}; quick: 6)")
    p.add_argument("--epochs", type=int, help="epochs of training per trial (12; quick: 2)")
    p.add_argument("--stages", nargs="+", choices=["meshhead", "gazegaussian"])
    p.add_argument("--jobs", type=int, default=2, help="processes (recording and replay)")
    p.add_argument("--what-if", action="store_true", help="add variants of the presets")
    args = p.parse_args(argv)
    names = ORDER + (list(WHAT_IF) if args.what_if else [])
    start(args)
    seeds = list(range(args.seeds or (2 if args.quick else 10)))
    n_trials = args.trials or (4 if args.quick else 20)
    epochs = args.epochs or (2 if args.quick else 12)
    stages = args.stages or (["meshhead"] if args.quick else ["gazegaussian", "meshhead"])
    budgets = [epochs, epochs * SPANS]
    settings = {
        "stages": f"{', '.join(stages)} (mini backend, CPU, 1 thread)",
        "budgets": f"{budgets[0]} reports (1 per epoch) and {budgets[1]} reports (every 1/{SPANS} "
                   f"epoch) of the same {epochs}-epoch training",
        "seeds": f"{len(seeds)} ({seeds[0]}..{seeds[-1]}; TPE preset, sized for {n_trials} trials)",
        "none study": f"{n_trials} trials; the others: until they used its time, at most "
                      f"{n_trials * 3 // 2} trials",
        "replay": "pool of " + ", ".join(f"{_pool(args, s)} ({s})" for s in stages)
                  + " configurations (defaults + random), each trained once (trainer seed 0); "
                  "a trial gets the nearest one its study has not used",
        "early stopping": f"patience {StudyConfig.patience} reports after the pruner's warm-up",
        "early-stopping warm-up (reports)": "; ".join(
            f"{b}: " + ", ".join(f"{n} {warmup_epochs(n, b)}" for n in ORDER) for b in budgets),
        "curve prunes from report": ", ".join(
            f"{_curve(b).warmup_steps} (of {b})" for b in budgets),
    }
    banner("Time to quality: GPU time to reach the `none` study's best", settings)
    started = time.perf_counter()
    figures, body = {}, []
    for stage in stages:
        space = package_space(stage)
        curves = record(stage, space, k=_pool(args, stage), seed=0, jobs=args.jobs, epochs=epochs,
                        folder=args.out / ".curves")
        for reports in budgets:
            with ProcessPoolExecutor(max_workers=args.jobs) as ex:
                runs = list(ex.map(_seed_runs, [(stage, curves, reports, s, n_trials, names)
                                                for s in seeds]))
            name = f"{stage}_{reports}"
            figures[name] = _figures(runs, names)
            body.append(f"**{stage} stage, {reports} reports per trial**\n\n"
                        + _table(figures[name], len(seeds), names))
            print(body[-1], flush=True)
    targets = _targets(figures, stages, budgets[-1], names)
    for t in targets:
        print(f"target: {t['target']}: {t['figure']} -> {'met' if t['met'] else 'NOT met'}")
    print(f"   ({time.perf_counter() - started:.0f} s)")
    text = "\n\n".join(body) + (
        "\n\nTime: charged seconds (trainer builds, training and the validations at each report, "
        "as recorded, CPU of one thread) relative to T, the `none` study's total of the same seed; "
        "median over seeds [min..max]; 'not in T': the bar was not reached within T (counted as "
        "infinite in the median). Regret: the best finished value by that time against the bar "
        "(positive = worse); 'none yet': no trial had finished.\n")
    save(args, "time_to_quality" + ("_whatif" if args.what_if else ""), settings=settings,
         figures=figures, targets=targets, markdown=text)
    return 0


def _pool(args, stage: str) -> int:
    return args.pool or (6 if args.quick else POOLS[stage])


def _seed_runs(task: tuple) -> dict[str, dict]:
    """All presets' studies of one seed at one budget: time and best after each trial."""
    stage, curves, reports, seed, n_trials, names = task
    space = package_space(stage)
    bank = PoolBank(stage, space, curves, reports=reports, seed=seed)
    out = {}
    for name in names:
        limit = out["none"]["seconds"][-1] if name != "none" else None
        preset, variant = WHAT_IF.get(name, (name, None))
        r = run_inprocess(bank, space, sampler="tpe", pruner=preset, variant=variant,
                          sampler_trials=n_trials,
                          n_trials=n_trials if name == "none" else n_trials * 3 // 2,
                          seconds_limit=limit)
        bar = out["none"]["best"][-1] if out else r.best  # `none` runs first
        out[name] = {"seconds": r.seconds_so_far, "best": r.best_so_far, "states": r.states,
                     "winners_pruned": sum(bank.full_best(p) <= bar for p in r.pruned_params)}
    return out


def _figures(runs: list[dict[str, dict]], names: list[str]) -> dict[str, dict]:
    """Per preset and seed: time to the `none` best (x T) and regret at each fraction of T."""
    figures = {}
    for name in names:
        reach, regrets = [], {f: [] for f in FRACTIONS}
        for run in runs:
            bar, total = run["none"]["best"][-1], run["none"]["seconds"][-1]
            r = run[name]
            hit = [s for s, b in zip(r["seconds"], r["best"]) if b <= bar and s <= total * 1.0001]
            reach.append(hit[0] / total if hit else float("inf"))
            for f in FRACTIONS:
                done = [b for s, b in zip(r["seconds"], r["best"]) if s <= f * total * 1.0001]
                regrets[f].append(done[-1] / bar - 1 if done else float("inf"))
        figures[name] = {"time_to_bar": reach, "trials": [len(run[name]["best"]) for run in runs],
                         "winners_pruned": [run[name]["winners_pruned"] for run in runs],
                         **{f"regret_at_{f:g}": v for f, v in regrets.items()}}
    return figures


def _spread(values: list[float], fmt) -> str:
    """'median [min..max]' of per-seed figures; inf shows as 'not in T' / 'none yet'."""
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}..{fmt(max(values))}]"


def _ratio(x: float) -> str:
    return f"{x:.2f}" if x != float("inf") else "not in T"


def _regret(x: float) -> str:
    return pct(x, True) if x != float("inf") else "none yet"


def _table(fig: dict[str, dict], n_seeds: int, names: list[str]) -> str:
    rows = []
    for name in names:
        f = fig[name]
        reached = sum(x != float("inf") for x in f["time_to_bar"])
        rows.append([name + (" (default)" if name == DEFAULT else ""),
                     _spread(f["time_to_bar"], _ratio), f"{reached}/{n_seeds}",
                     *[_spread(f[f"regret_at_{x:g}"], _regret) for x in FRACTIONS],
                     f"{statistics.median(f['trials']):g}", sum(f["winners_pruned"])])
    return table(["pruner", "time to `none`'s best (x T)", "seeds reaching it",
                  "regret at 25% of T", "at 50%", "at 100%", "trials (median)",
                  "pruned trials that would have reached it (all seeds)"], rows)


def _targets(figures: dict[str, dict], stages: list[str], reports: int,
             names: list[str]) -> list[dict]:
    """Per preset: the bar in <= 40% of T (median) with <= 1% worst-seed regret at T, on every
    stage at the real-like budget."""
    targets = []
    for name in names[1:]:
        parts, met = [], True
        for stage in stages:
            f = figures[f"{stage}_{reports}"][name]
            time_, worst = statistics.median(f["time_to_bar"]), max(f["regret_at_1"])
            met &= time_ <= TIME_TARGET and worst <= REGRET_TARGET
            when = f"{time_:.2f} of T" if time_ != float("inf") else "not within T"
            parts.append(f"{stage} {when}, worst {_regret(worst)}")
        targets.append({"target": f"`{name}`: `none`'s best in <= {TIME_TARGET:.0%} of its time "
                                  f"(median), worst-seed regret <= {REGRET_TARGET:.0%}, "
                                  f"{reports} reports",
                        "figure": "; ".join(parts), "met": met})
    return targets


if __name__ == "__main__":
    sys.exit(main())
