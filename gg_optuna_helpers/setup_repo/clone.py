"""Step 1: the GazeGaussian repo at its pinned commit on local disk, cloned once, then reused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import ConfigError
from ._step import run

VARIANTS = {  # variant -> (git URL, pinned commit)
    "fork": ("https://github.com/kram254/GazeGaussian.git",
             "2308209fcf98c519be3d68af99862e02ebdcd5ec"),
    "upstream": ("https://github.com/ucwxb/GazeGaussian.git",
                 "bb8fac920bc937016216b0223b3663967f099b78"),
}

MOVE_AWAY = "move the folder away or pass another dest= (--dest)."


def resolve(variant: str, commit: str | None) -> tuple[str, str]:
    """(git URL, commit) for ``fork``, ``upstream`` or a git URL/path (which needs a commit)."""
    if variant in VARIANTS:
        url, pinned = VARIANTS[variant]
        return url, commit or pinned
    if "/" not in variant and not variant.endswith((".git", ".bundle")):
        raise ConfigError(f"The variant must be 'fork', 'upstream' or a git URL, but got "
                          f"{variant!r}.")
    if not commit:
        raise ConfigError(f"A git URL needs a pinned commit: pass commit= (--commit), the "
                          f"commit of {variant} to check out.")
    return variant, commit


def ensure_clone(url: str, commit: str, dest: Path) -> tuple[str, str]:
    """Clone ``url`` at ``commit`` (with submodules) into ``dest``, or reuse the clone there.

    A folder at ``dest`` that is not a clean clone at ``commit`` is refused, never deleted.
    The clone is made next to ``dest`` and renamed, so an interrupted one leaves nothing behind.
    Returns (what was done, the full commit id).
    """
    if dest.exists():
        return _reuse(dest, commit)
    partial = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # our own leftover from an interrupted run
    dest.parent.mkdir(parents=True, exist_ok=True)
    fix = "check the URL and that the machine reaches it."
    run(["git", "clone", "--quiet", "--no-checkout", url, str(partial)], f"git clone {url}", fix)
    run(["git", "-C", str(partial), "checkout", "--quiet", "--detach", commit],
        f"checking out {commit}", f"check that commit {commit} is in {url}.")
    run(["git", "-C", str(partial), "submodule", "update", "--quiet", "--init", "--recursive"],
        "git submodule update", fix)
    os.replace(partial, dest)
    return f"cloned {url} at {commit[:12]} into {dest}", _head(dest)


def _head(dest: Path) -> str:
    return run(["git", "-C", str(dest), "rev-parse", "HEAD"], f"reading the commit of {dest}",
               MOVE_AWAY).strip()


def _reuse(dest: Path, commit: str) -> tuple[str, str]:
    if not (dest / ".git").exists():
        raise ConfigError(f"{dest} exists and is not a git clone: {MOVE_AWAY}")
    head = _head(dest)
    if not head.startswith(commit.lower()):
        raise ConfigError(f"{dest} is a clone at commit {head[:12]}, not {commit[:12]}: pass "
                          f"commit={head[:12]} to use it as it is, or {MOVE_AWAY}")
    changed = run(["git", "-C", str(dest), "status", "--porcelain", "--untracked-files=no"],
                  f"git status in {dest}", MOVE_AWAY)
    if changed.strip():
        first = changed.splitlines()[0][3:]
        raise ConfigError(f"{dest} has local changes ({first} and maybe more): revert them "
                          f"(git -C {dest} checkout .) or {MOVE_AWAY}")
    return f"reusing {dest} at {head[:12]}", head
