"""The troubleshooting table, read off the study itself: each symptom found becomes a fix."""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from ..records import Failure, baseline, best
from ._summary import improvement, maximizes

MIN_COMPLETE = 3  # fewer completed trials say nothing about ranges or gains
MOSTLY = 0.5  # "most trials pruned": more than this share of the finished ones
EDGE = 0.05  # "at the edge": within this share of the range (log space for log ranges)
NO_GAIN = 0.01  # "no gain": the best beats the baseline by less than this share


@dataclass(frozen=True)
class Finding:
    """A symptom found in a study: ``code`` for programs, ``message`` (with the fix) for people."""

    code: str
    message: str


def diagnose(study: optuna.Study) -> list[Finding]:
    """Findings: most trials pruned, out of memory, best at a range edge, no gain, divergence."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    failed = {reason: [t for t in trials if Failure.of(t) == reason]
              for reason in (Failure.OOM, Failure.DIVERGED)}
    findings = []
    if len(pruned) >= MIN_COMPLETE and len(pruned) > MOSTLY * (len(pruned) + len(complete)):
        findings.append(Finding("mostly_pruned", (
            f"{len(pruned)} of {len(pruned) + len(complete)} finished trials were pruned, so the "
            "pruner stops trials before their value settles: raise its warm-up "
            "(n_warmup_steps) or startup trials (n_startup_trials), or use the 'patient' preset.")))
    if failed[Failure.OOM]:
        oom = failed[Failure.OOM]
        findings.append(Finding(Failure.OOM.value, (
            f"{len(oom)} trial(s) ran out of GPU memory{_shared_floor(oom, trials)}"
            ": narrow batch_size or the model size (dit_depth, MLP widths) in the space.")))
    if len(complete) >= MIN_COMPLETE:
        maximize = maximizes(study)
        findings += _edges(best(trials, maximize=maximize))
        findings += _no_gain(trials, len(complete), maximize)
    if failed[Failure.DIVERGED]:
        findings.append(_diverged(failed[Failure.DIVERGED], complete, maximizes(study)))
    return findings


def _edges(best: FrozenTrial) -> list[Finding]:
    """A finding per numeric parameter whose best value sits at an edge of its range."""
    findings = []
    for name, dist in best.distributions.items():
        if not isinstance(dist, (FloatDistribution, IntDistribution)) or dist.low == dist.high:
            continue
        scale = math.log if dist.log else float
        pos = (scale(best.params[name]) - scale(dist.low)) / (scale(dist.high) - scale(dist.low))
        if EDGE < pos < 1 - EDGE:
            continue
        side = "upper" if pos >= 1 - EDGE else "lower"
        low, high = _widened(dist, side)
        if (low, high) == (dist.low, dist.high):
            continue  # cannot widen (e.g. a weight already at 0)
        findings.append(Finding("edge_of_range", (
            f"The best {name}={best.params[name]:.4g} sits at the {side} edge of its range "
            f"{dist.low:g}..{dist.high:g}{' (log)' if dist.log else ''}, so better values may lie "
            f"beyond it: widen it, for example space.replace({name}=({low:g}, {high:g})).")))
    return findings


def _widened(dist: FloatDistribution | IntDistribution, side: str) -> tuple[float, float]:
    """The range grown on one side: a factor 10 on a log scale, half its width otherwise."""
    low, high = dist.low, dist.high
    if dist.log:
        low, high = (low, high * 10) if side == "upper" else (low / 10, high)
    elif side == "upper":
        high = high + (high - low) / 2
    else:
        low = low - (high - low) / 2 if low < 0 else max(0.0, low - (high - low) / 2)
    if isinstance(dist, IntDistribution):
        low, high = math.floor(low), math.ceil(high)
        low = max(1, low) if dist.log else low
    return low, high


def _no_gain(trials: list[FrozenTrial], n_complete: int, maximize: bool) -> list[Finding]:
    base = baseline(trials)
    gain = improvement(best(trials, maximize=maximize), base, maximize=maximize)
    if gain is None or gain >= NO_GAIN:
        return []
    return [Finding("no_gain", (
        f"No trial beat the baseline (trial {base.number}, {base.value:.4g}) by "
        f"{NO_GAIN:.0%} or more in {n_complete} completed trials: widen the ranges or rethink the "
        "space (other parameters, more epochs) before spending more GPU time on it."))]


def _diverged(bad: list[FrozenTrial], complete: list[FrozenTrial], maximize: bool) -> Finding:
    lrs = [t.params["lr"] for t in bad if "lr" in t.params]
    example = ""
    if lrs:
        dist = next(t.distributions["lr"] for t in bad if "lr" in t.params)
        top = best(complete, maximize=maximize)
        keep = top.params.get("lr", 0) if top else 0  # never cut off the best trial's lr
        ceiling = max(dist.low * 2, min(lrs) / 2, keep)
        example = (f" (the smallest that diverged was lr={min(lrs):.3g}), for example "
                   f"space.replace(lr=({dist.low:g}, {ceiling:.2g}))")
    return Finding(Failure.DIVERGED.value, (
        f"{len(bad)} trial(s) diverged (NaN or exploding loss): lower the learning-rate "
        f"ceiling{example}."))


def _shared_floor(bad: list[FrozenTrial], trials: list[FrozenTrial]) -> str:
    """' (each had batch_size>=2)' when every bad trial used more than any trial that ran."""
    ran = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    parts = []
    for name in bad[0].params:
        values = [t.params.get(name) for t in bad]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        ok = [t.params[name] for t in ran if isinstance(t.params.get(name), (int, float))]
        if ok and min(values) > max(ok):
            parts.append(f"{name}>={min(values):g}")
    return f" (each had {', '.join(parts)})" if parts else ""
