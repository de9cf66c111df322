"""Find and read a GazeGaussian checkout (upstream or DiT fork); enter it in a trial's process.

Reading is safe anywhere: only the plain option classes in ``configs/*_options.py`` are executed.
:func:`enter` is for the trial's child process: it changes into the checkout, as its scripts
expect (their paths are relative to the repo root), and makes its packages importable.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...errors import ConfigError

OPTION_FILES = {"meshhead": "configs/meshhead_options.py",
                "gazegaussian": "configs/gazegaussian_options.py"}
REQUIRED_FILES = (*OPTION_FILES.values(), "trainer/meshhead_trainer.py",
                  "trainer/gazegaussian_trainer.py", "dataloader/eth_xgaze.py",
                  "losses/gazenerf_loss.py")
DIT_OPTIONS = ("neural_renderer_type", "dit_depth", "dit_num_heads", "dit_patch_size", "use_vae")
ORTHOGONALITY_OPTIONS = ("use_orthogonality_loss", "orthogonality_loss_importance")


@dataclass(frozen=True)
class Checkout:
    """A checkout's root and the default values of its two option classes."""

    root: Path
    meshhead: dict[str, Any]
    gazegaussian: dict[str, Any]

    @property
    def has_dit(self) -> bool:
        return all(name in self.gazegaussian for name in DIT_OPTIONS)

    @property
    def has_orthogonality(self) -> bool:
        return all(name in self.gazegaussian for name in ORTHOGONALITY_OPTIONS)

    @property
    def variant(self) -> str:
        """``fork`` (kram254/GazeGaussian: DiT renderer, orthogonality loss) or ``upstream``."""
        return "fork" if self.has_dit or self.has_orthogonality else "upstream"

    def options(self, stage: str) -> dict[str, Any]:
        return self.meshhead if stage == "meshhead" else self.gazegaussian


def repo_root(options: dict[str, Any]) -> Path:
    """The checkout path given as backend option ``repo``, made absolute."""
    repo = options.get("repo")
    if not repo:
        raise ConfigError("The gazegaussian backend needs a GazeGaussian checkout: pass "
                          "--backend-option repo=PATH (a clone of ucwxb/GazeGaussian or "
                          "kram254/GazeGaussian).")
    return Path(repo).expanduser().resolve()


def missing_files(root: Path) -> list[str]:
    """The files every GazeGaussian checkout has that ``root`` lacks."""
    return [name for name in REQUIRED_FILES if not (root / name).is_file()]


def inspect(root: Path) -> Checkout:
    """Read the checkout at ``root``; refuse a missing or incomplete one with one sentence."""
    if not root.is_dir():
        raise ConfigError(f"There is no GazeGaussian checkout at {root}: clone it there or fix "
                          "the repo= backend option.")
    missing = missing_files(root)
    if missing:
        raise ConfigError(f"{root} is not a complete GazeGaussian checkout ({missing[0]} is "
                          "missing): point repo= at the folder that holds train_gazegaussian.py.")
    return Checkout(root, read_options(root / OPTION_FILES["meshhead"]),
                    read_options(root / OPTION_FILES["gazegaussian"]))


def read_options(path: Path) -> dict[str, Any]:
    """The attributes of ``BaseOptions()`` in one options file, read without importing the repo."""
    spec = importlib.util.spec_from_file_location(f"_gg_checkout_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        return dict(vars(module.BaseOptions()))
    except Exception as e:  # noqa: BLE001 - any failure means the same thing to the user
        raise ConfigError(f"Could not read BaseOptions from {path} ({type(e).__name__}: {e}): "
                          "check that the checkout is intact.") from None


def source_function(path: Path, name: str, owner: str | None = None,
                    namespace: dict[str, Any] | None = None) -> Callable | None:
    """Compile one function (or ``owner`` class method) of a checkout file on its own.

    Lets a parent process call a small pure helper of the repo (a file-name rule, a loss) without
    importing the module's heavy or CUDA-only dependencies. None when it is not there.
    """
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return None
    body = tree.body
    if owner is not None:
        body = next((n.body for n in body if isinstance(n, ast.ClassDef) and n.name == owner), [])
    node = next((n for n in body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None:
        return None
    node.decorator_list = []
    scope = dict(namespace or {})
    exec(compile(ast.Module([node], type_ignores=[]), str(path), "exec"), scope)  # noqa: S102
    return scope[name]


_entered: list[Path] = []


def enter(root: Path) -> None:
    """Make the checkout importable as its scripts expect; call only in a trial's own process.

    Changes into ``root``, puts it first on ``sys.path`` (forgetting a previously entered
    checkout's modules), makes ``breakpoint()`` raise instead of pausing or silently continuing
    after the repo's own ``except: print(e); breakpoint()``, and restores numpy aliases
    (``np.int``) that upstream's dataloader still uses but numpy >= 1.24 removed.
    """
    for old in _entered:
        if old != root:
            _forget(old)
    _entered[:] = [root]
    os.chdir(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    os.environ["PYTHONBREAKPOINT"] = "0"
    sys.breakpointhook = _refuse_breakpoint
    import numpy as np

    for alias, value in (("int", int), ("float", float), ("bool", bool)):
        if alias not in np.__dict__:
            setattr(np, alias, value)


def _forget(root: Path) -> None:
    while str(root) in sys.path:
        sys.path.remove(str(root))
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), "")
        if where and Path(where).is_relative_to(root):
            del sys.modules[name]


def _refuse_breakpoint(*_args: Any, **_kwargs: Any) -> None:
    caught = sys.exc_info()[1]  # the repo calls breakpoint() inside its `except ... as e:`
    what = f"{type(caught).__name__}: {caught}" if caught else "an error (see the log)"
    raise RuntimeError(f"the GazeGaussian code caught {what} and called breakpoint(); the trial "
                       "stops instead of going on with broken state") from caught
