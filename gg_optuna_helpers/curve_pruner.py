"""``CurvePruner``: stop a trial only when its extrapolated learning curve cannot win.

Same-step pruners (median, successive halving, hyperband) compare a young trial with the others
at the same epoch, so a configuration that learns fast but starts badly (a higher learning rate,
a small DiT) is pruned before its curve crosses the others. This pruner fits the trial's curve
with a few parametric families (as Domhan, Springenberg and Hutter, IJCAI 2015; plain numpy, no
downloaded model), extrapolates each to ``max_resource``, and prunes when even the most
optimistic of the well-fitting extrapolations, less a noise margin, is worse than the ``k``-th
best finished value. A trial's value is its BEST report, so on a noisy curve it lands below the
mean curve: the margin is the fit's residual times ``optimism`` plus ``sqrt(2 ln n)`` (about the
lowest of ``n`` Gaussian draws) for the ``n`` reports still to come. Curves are fitted as
decreasing (a maximised value is negated first); each family is ``c + a * phi(t)`` with
``a >= 0`` and ``phi`` decreasing,
solved by least squares on a small grid of shape parameters, so a fit is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

# phi(t / horizon) for each family, over a grid of shape parameters (t in reports, from 1)
FAMILIES = {
    "pow": [lambda x, p=p: x ** -p for p in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)],
    "exp": [lambda x, b=b: np.exp(-b * x) for b in (1.0, 2.0, 4.0, 8.0, 16.0)],
    "log-power": [lambda x, s=s, p=p: 1.0 / (1.0 + (x / s) ** p)
                  for s in (0.05, 0.15, 0.4) for p in (1.0, 2.0, 4.0)],
}


FITTED = 3  # parameters of each fit: c, a and the shape


@dataclass(frozen=True)
class Fit:
    """One family's best least-squares fit: its value at the horizon and its residual (RMSE)."""

    family: str
    final: float
    rmse: float


def fit_curves(steps, values, horizon: int) -> list[Fit]:
    """The best fit of each family to a decreasing curve ``values`` at ``steps``, at ``horizon``."""
    x = np.asarray(steps, dtype=float) / horizon
    y = np.asarray(values, dtype=float)
    fits = []
    for family, phis in FAMILIES.items():
        best = None
        for phi in phis:
            basis, end = phi(x), float(phi(np.array(1.0)))
            a, c = _nonneg_line(basis, y)
            rmse = float(np.sqrt(np.mean((c + a * basis - y) ** 2)))
            if best is None or rmse < best.rmse:
                best = Fit(family, c + a * end, rmse)
        fits.append(best)
    return fits


def _nonneg_line(basis: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares ``y ~ c + a * basis`` with ``a >= 0`` (flat if the slope is negative)."""
    spread = basis - basis.mean()
    denom = float(spread @ spread)
    a = max(0.0, float(spread @ (y - y.mean())) / denom) if denom > 0 else 0.0
    return a, float(y.mean() - a * basis.mean())


def optimistic_final(steps, values, horizon: int, *, optimism: float,
                     tolerance: float = 2.0) -> float:
    """The best value a curve may still reach by ``horizon``: the lowest extrapolation among
    fits within ``tolerance`` x the best RMSE, less that RMSE x (``optimism`` + the expected
    noise minimum of the reports to come); never above the curve's best so far."""
    fits = fit_curves(steps, values, horizon)
    floor = min(f.rmse for f in fits)
    accepted = [f.final for f in fits if f.rmse <= tolerance * floor + 1e-12]
    n, to_come = len(values), max(2, horizon - int(max(steps)))
    noise = floor * math.sqrt(n / max(1, n - FITTED))  # residuals of a 3-parameter fit
    margin = noise * (optimism + math.sqrt(2.0 * math.log(to_come)))
    return min(min(accepted) - margin, float(np.min(values)))


class CurvePruner(BasePruner):
    """Prune when the optimistic extrapolation of a trial's curve is worse than the k-th best.

    Args:
        max_resource: the last step a trial reports (the epoch budget).
        warmup_fraction: no pruning before this fraction of ``max_resource`` steps is reported,
            and never before ``min_warmup_steps``: the warm-up scales with the budget.
        min_warmup_steps: the smallest warm-up, in steps (at least 2; the default 5 leaves a
            3-parameter fit 2 residuals to measure the noise with).
        k: compare with the k-th best finished value (1: the best).
        n_startup_trials: no pruning until this many trials (and at least ``k``) completed.
        optimism: residuals of the best fit subtracted from the extrapolation, on top of the
            expected noise minimum of the reports to come.
    """

    def __init__(self, *, max_resource: int, warmup_fraction: float = 0.25,
                 min_warmup_steps: int = 5, k: int = 1, n_startup_trials: int = 2,
                 optimism: float = 4.0) -> None:
        if not isinstance(max_resource, int) or max_resource < 2:
            raise ValueError(f"max_resource must be an integer >= 2, but got {max_resource=}.")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), but got {warmup_fraction=}.")
        if not isinstance(min_warmup_steps, int) or min_warmup_steps < 2:
            raise ValueError(
                f"min_warmup_steps must be an integer >= 2, but got {min_warmup_steps=}.")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, but got {k=}.")
        if not isinstance(n_startup_trials, int) or n_startup_trials < 0:
            raise ValueError(
                f"n_startup_trials must be a non-negative integer, but got {n_startup_trials=}.")
        if not (math.isfinite(optimism) and optimism >= 0.0):
            raise ValueError(f"optimism must be a finite number >= 0, but got {optimism=}.")
        self.max_resource, self.k, self.optimism = max_resource, k, optimism
        self.n_startup_trials = max(n_startup_trials, k)
        self.warmup_steps = max(min_warmup_steps, math.ceil(warmup_fraction * max_resource))

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.warmup_steps or step >= self.max_resource:
            return False
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(done) < self.n_startup_trials:
            return False
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        target = sorted(sign * t.value for t in done)[self.k - 1]
        points = sorted((s, sign * v) for s, v in trial.intermediate_values.items()
                        if math.isfinite(v))
        if len(points) < 2 or min(v for _, v in points) <= target:
            return False
        steps, values = zip(*points)
        return optimistic_final(steps, values, self.max_resource,
                                optimism=self.optimism) > target
