"""One way to read a value typed as text: ``--set``, ``--backend-option`` and the notebooks.

    parse_value("true") -> True     parse_value("3") -> 3       parse_value("1e-3") -> 0.001
    parse_value("[1, 2]") -> [1, 2] parse_value("adam") -> "adam"
    parse_assignments(["lr=0.1", "repo=/x"], what="--backend-option") -> {"lr": 0.1, "repo": "/x"}
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import ConfigError

_BOOLS = {"true": True, "false": False}


def parse_value(text: str) -> Any:
    """``text`` as a bool (true/false, any case), int, finite float or JSON list, else as is.

    Non-ASCII digits, ``nan`` and ``inf`` stay text: no value is guessed from them.
    """
    word = text.strip()
    if word.lower() in _BOOLS:
        return _BOOLS[word.lower()]
    if not word.isascii():
        return text
    for cast in (int, float):
        try:
            value = cast(word)
        except ValueError:
            continue
        return value if math.isfinite(value) else text
    if word.startswith("["):
        try:
            return json.loads(word)
        except json.JSONDecodeError:
            pass
    return text


def split_assignment(item: str, what: str, form: str = "key=value") -> tuple[str, str]:
    """``"key=value"`` as (key, raw value); a missing ``=``, key or value is one sentence."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip() or not raw:
        raise ConfigError(f"{what} takes {form}, but got {item!r}.")
    return key.strip(), raw


def parse_assignments(items: list[str], *, what: str) -> dict[str, Any]:
    """``["k=v", ...]`` as a dict of parsed values (:func:`parse_value`); ``what`` names the
    option in the error, e.g. ``"--backend-option"``."""
    return {key: parse_value(raw) for key, raw in (split_assignment(i, what) for i in items)}


__all__ = ["parse_assignments", "parse_value", "split_assignment"]
