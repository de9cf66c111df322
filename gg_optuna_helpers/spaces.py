"""Search spaces as data, and their validation against a backend's real limits.

A user edits a space in one line and gets a new space::

    space = MESHHEAD.replace(batch_size=[1])              # a list: these choices
    space = GAZEGAUSSIAN.replace(lr=(1e-5, 1e-3))          # a tuple: this range (log kept)
    space = GAZEGAUSSIAN.replace(dit_depth=6)              # a scalar: fixed

``space.validate(limits)`` refuses an edit the backend cannot run, with one sentence; a backend
states its :class:`Limits` (backends import this module, never the other way round).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import optuna

from .errors import ConfigError
from .values import parse_value, split_assignment


@dataclass(frozen=True)
class Limits:
    """What a backend can run, checked against a search space before any trial starts.

    ``params``: the parameter names the backend understands for a stage.
    ``choices``: hard sets of allowed values (e.g. ``{"batch_size": (1,)}`` for the real MeshHead).
    ``embed_dim``: attention heads must divide it. ``featmap_size``: patch sizes must divide it.
    """

    params: frozenset[str]
    choices: dict[str, tuple] = field(default_factory=dict)
    embed_dim: int | None = None
    featmap_size: int | None = None


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: a float/int range (``low``..``high``) or ``choices``."""

    name: str
    kind: str  # "float", "int" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in this parameter's choices or range."""
        if self.kind == "categorical":
            return value in self.choices
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution :meth:`suggest` uses."""
        if self.kind == "categorical":
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high),
                                                        log=self.log)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def values(self) -> tuple | None:
        """The finite set of values this parameter can take, or None for a range."""
        return self.choices if self.kind == "categorical" else None

    def check(self) -> None:
        """Refuse a malformed range or choice list."""
        if self.kind == "categorical":
            if not self.choices:
                raise ConfigError(f"Parameter {self.name!r} needs at least one choice.")
            return
        for bound in (self.low, self.high):
            if not _number(bound) or not math.isfinite(bound):
                raise ConfigError(f"Parameter {self.name!r} needs finite numbers as range bounds, "
                                  f"but got {bound!r}.")
        if not (self.low < self.high):
            raise ConfigError(
                f"Parameter {self.name!r} needs low < high, but got low={self.low}, high={self.high}."
            )
        if self.log and self.low <= 0:
            raise ConfigError(
                f"Parameter {self.name!r} is searched on a log scale, so low must be > 0, "
                f"but got low={self.low}."
            )

    def edited(self, value: Any) -> Param:
        """This parameter after a one-line user edit (see the module docstring)."""
        if isinstance(value, (list, set, frozenset)):
            return replace(self, kind="categorical", choices=tuple(value), low=None, high=None)
        if isinstance(value, tuple):
            if len(value) != 2:
                raise ConfigError(
                    f"Parameter {self.name!r} takes a range as (low, high), but got {value!r}."
                )
            low, high = value
            kind = "int" if self.kind == "int" or all(isinstance(v, int) for v in value) else "float"
            if self.kind == "categorical":
                kind = "float" if any(isinstance(v, float) for v in value) else "int"
            return replace(self, kind=kind, low=low, high=high, choices=None)
        return replace(self, kind="categorical", choices=(value,), low=None, high=None)

    def describe(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"{self.low:g}..{self.high:g}" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of :class:`Param` for one stage."""

    stage: str
    params: tuple[Param, ...]

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ConfigError(
            f"Unknown parameter {name!r} for the {self.stage} stage: "
            f"known ones are {', '.join(self.names)}."
        )

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def replace(self, **edits: Any) -> SearchSpace:
        """A copy with some parameters narrowed, widened or fixed (see the module docstring)."""
        new = {p.name: p for p in self.params}
        for name, value in edits.items():
            new[name] = self[name].edited(value)
            new[name].check()
        return SearchSpace(self.stage, tuple(new.values()))

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample one configuration; valid by construction once :meth:`validate` has passed."""
        return {p.name: p.suggest(trial) for p in self.params}

    def validate(self, limits: Limits, backend: str = "this") -> None:
        """Refuse, with one sentence, a space the backend cannot run."""
        for p in self.params:
            p.check()
            _check_values(p, SPACES[self.stage][p.name])
            if p.name not in limits.params:
                raise ConfigError(
                    f"Parameter {p.name!r} is not supported by the {backend} backend's "
                    f"{self.stage} stage: remove it, or use one of {', '.join(sorted(limits.params))}."
                )
            values = p.values()
            allowed = limits.choices.get(p.name)
            if allowed is not None:
                bad = [v for v in values or (p.low, p.high) if v not in allowed]
                if bad:
                    raise ConfigError(
                        f"Parameter {p.name!r} allows only {list(allowed)} on the {backend} backend, "
                        f"but got {bad[0]!r}: narrow it, e.g. replace({p.name}={list(allowed)})."
                    )
            rules = {"dit_num_heads": ("embed_dim", "the embedding dimension"),
                     "dit_patch_size": ("featmap_size", "the feature-map size")}
            if p.name in rules:
                attr, what = rules[p.name]
                size = getattr(limits, attr)
                if values is None:
                    raise ConfigError(f"Parameter {p.name!r} must be a list of choices, not a range.")
                for v in values:
                    if size is not None and (not isinstance(v, int) or v <= 0 or size % v):
                        raise ConfigError(
                            f"Parameter {p.name!r} must divide {what} ({size}) on the {backend} "
                            f"backend, but got {v!r}."
                        )

    def fitted(self, limits: Limits, keep: Iterable[str] = ()) -> SearchSpace:
        """The default space clipped to hard choice limits (e.g. batch_size {1, 2} -> {1});
        a range whose backend allows only a few values becomes those values. Parameters the
        backend lacks (upstream GazeGaussian has no DiT) are dropped, except those in ``keep``
        (the user's edits, refused later by :meth:`validate` in one sentence)."""
        params = []
        for p in self.params:
            if p.name not in limits.params and p.name not in keep:
                continue
            allowed = limits.choices.get(p.name)
            if allowed is not None:
                inside = (p.values() if p.values() is not None
                          else [v for v in allowed if p.low <= v <= p.high])
                kept = tuple(v for v in inside if v in allowed) or tuple(allowed)
                p = replace(p, kind="categorical", choices=kept, low=None, high=None, log=False)
            params.append(p)
        return SearchSpace(self.stage, tuple(params))

    def describe(self) -> str:
        return "\n".join(f"  {p.name:32s} {p.describe()}" for p in self.params)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_values(p: Param, default: Param) -> None:
    """Values of the kind the default space has: whole numbers > 0 for widths, depths and batch
    sizes, numbers > 0 for learning rates, numbers >= 0 otherwise (loss weights; 0: off)."""
    whole = default.kind == "int" or (default.kind == "categorical"
                                      and all(isinstance(v, int) for v in default.choices))
    positive = whole or p.name.startswith("lr")
    for v in p.values() or (p.low, p.high):
        if not (_number(v) and math.isfinite(v) and (v > 0 if positive else v >= 0)
                and (isinstance(v, int) or not whole)):
            raise ConfigError(
                f"Parameter {p.name!r} takes {'whole numbers' if whole else 'numbers'} "
                f"{'> 0' if positive else '>= 0'}, but got {v!r}.")


def _range(name: str, low: float, high: float, log: bool = False) -> Param:
    return Param(name, "float", low=low, high=high, log=log)


def _choice(name: str, *choices: Any) -> Param:
    return Param(name, "categorical", choices=choices)


MESHHEAD = SearchSpace(
    "meshhead",
    (
        _range("lr", 1e-5, 1e-2, log=True),
        _choice("batch_size", 1, 2),
        _choice("shape_mlp_hidden", 128, 256, 384),
        _choice("pose_mlp_hidden", 64, 128, 256),
        _choice("eye_mlp_hidden", 64, 128, 256),
    ),
)
"""Stage 1. MLP widths are HIDDEN widths only: first and last sizes are fixed by the model."""

GAZEGAUSSIAN = SearchSpace(
    "gazegaussian",
    (
        _range("lr", 1e-5, 5e-3, log=True),
        _choice("dit_depth", 4, 6, 8, 12),
        _choice("dit_num_heads", 4, 8, 16),
        _choice("dit_patch_size", 4, 8, 16),
        _range("vgg_importance", 0.05, 0.5),
        _range("eye_loss_importance", 0.5, 2.0),
        _range("gaze_loss_importance", 0.05, 0.5),
        _range("orthogonality_loss_importance", 0.001, 0.1, log=True),
    ),
)
"""Stage 2: the DiT neural renderer and the loss weights."""

SPACES = {"meshhead": MESHHEAD, "gazegaussian": GAZEGAUSSIAN}


def parse_edit(text: str) -> tuple[str, Any]:
    """Parse a command-line edit: ``name=v`` (fixed), ``name=a,b`` (choices), ``name=lo:hi``."""
    name, raw = split_assignment(text, "--set", "name=value, name=a,b,c or name=low:high")
    if ":" in raw:
        bounds = [parse_value(s) for s in raw.split(":")]
        if len(bounds) != 2 or not all(_number(b) for b in bounds):
            raise ConfigError(f"--set {name} takes a range as low:high with two finite numbers, "
                              f"but got {raw!r}.")
        return name, tuple(bounds)
    if "," in raw:
        return name, [parse_value(s) for s in raw.split(",") if s]
    return name, parse_value(raw)
