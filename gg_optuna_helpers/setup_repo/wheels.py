"""Steps 2-3: build each package into a wheel once per toolchain and repo commit, keep the
wheels on Drive, install them without dependencies (the installed torch is never touched)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from packaging.utils import canonicalize_name, parse_wheel_filename

from ..errors import ConfigError
from ._step import run
from .index import fetch_wheel, no_wheel
from .packages import Package
from .toolchain import Toolchain

Builder = Callable[[Package, Path, Path], Path]
"""``builder(package, repo_root, out_dir) -> wheel``: one wheel of ``package`` in ``out_dir``."""


def build_command(source: str | os.PathLike, out: Path) -> list[str]:
    """``pip wheel`` against the torch already installed (no isolation, no dependencies)."""
    return [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
            "--quiet", "--wheel-dir", str(out), str(source)]


def install_command(wheels: list[Path], target: Path | None = None) -> list[str]:
    """``pip install --no-deps`` of wheel files (into ``target`` instead of site-packages);
    forced, as another build of the same version must replace the installed one."""
    where = ["--target", str(target), "--upgrade"] if target else []
    return [sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--quiet",
            *where, *map(str, wheels)]


def build_env(gpu_capability: tuple[int, int] | None) -> dict[str, str]:
    """Compile for this GPU only (minutes less than every architecture) with all cores."""
    env = dict(os.environ, MAX_JOBS=str(os.cpu_count() or 1))
    if gpu_capability:
        env["TORCH_CUDA_ARCH_LIST"] = "{}.{}".format(*gpu_capability)
    return env


def build_wheel(source: str | os.PathLike, out: Path, env: dict[str, str] | None = None) -> Path:
    """Run :func:`build_command` in a fresh folder and move its one wheel into ``out``."""
    with tempfile.TemporaryDirectory(prefix="gg_wheel_") as tmp:
        run(build_command(source, Path(tmp)), f"building a wheel of {source}",
            f"`pip wheel --no-build-isolation --no-deps {source}` in a terminal shows the whole "
            "log.", env=env)
        wheel = next(Path(tmp).glob("*.whl"))
        return Path(shutil.move(wheel, out / wheel.name))


def default_builder(toolchain: Toolchain, *, from_source: bool = False) -> Builder:
    """The real builder: compile the checkout's CUDA submodules, fetch kaolin/pytorch3d wheels
    from their index pages (or build them from source when asked)."""
    if toolchain.cuda is None:
        raise ConfigError(f"torch {toolchain.torch_full} here has no CUDA: the GazeGaussian "
                          "extensions need a CUDA torch (a Colab GPU runtime has one).")
    import torch

    env = build_env(torch.cuda.get_device_capability() if torch.cuda.is_available() else None)

    def build(package: Package, root: Path, out: Path) -> Path:
        if package.source:
            return build_wheel(root / package.source, out, env)
        wheel = fetch_wheel(package, toolchain, out)
        if wheel is None and from_source:
            wheel = build_wheel(package.from_source, out, dict(env, IGNORE_TORCH_VER="1"))
        if wheel is None:
            raise ConfigError(no_wheel(package, toolchain))
        return wheel

    return build


def cached_wheel(cache: Path, package: Package) -> Path | None:
    """The wheel of ``package`` in the cache folder, if one was stored."""
    return next((p for p in sorted(cache.glob("*.whl"))
                 if parse_wheel_filename(p.name)[0] == canonicalize_name(package.dist)), None)


def store(wheel: Path, cache: Path) -> Path:
    """Copy ``wheel`` into the cache under a temporary name, then rename (Drive-safe)."""
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".{wheel.name}.partial"
    shutil.copyfile(wheel, partial)
    os.replace(partial, cache / wheel.name)
    return cache / wheel.name


def installed_hash(dist: str, target: Path | None = None) -> str | None:
    """The sha256 of the wheel file ``dist`` was installed from (pip records it in
    ``direct_url.json``), in ``target`` or this interpreter; None when not installed so."""
    found = importlib.metadata.distributions(**({"path": [str(target)]} if target else {}))
    for d in found:
        if canonicalize_name(d.metadata["Name"] or "") == canonicalize_name(dist):
            record = json.loads(d.read_text("direct_url.json") or "{}")
            return record.get("archive_info", {}).get("hashes", {}).get("sha256")
    return None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_wheels(packages: list[Package], root: Path, cache: Path, builder: Builder,
                  target: Path | None = None, say: Callable[[str], None] = print) -> list[Path]:
    """Take each package's wheel from the cache, building it first on a miss; install in one
    ``pip`` call those not installed from that very file (by hash: versions say nothing, the
    CUDA submodules are all 0.0.0). ``say`` gets one line per package as it goes."""
    wheels, todo = [], []
    for package in packages:
        wheel = cached_wheel(cache, package)
        how = "cached"
        if wheel is None:
            say(f"{package.dist}: not in the cache, " + ("compiling it (minutes) ..."
                                                         if package.source else "fetching it ..."))
            with tempfile.TemporaryDirectory(prefix="gg_build_") as tmp:
                wheel = store(builder(package, root, Path(tmp)), cache)
            how = "built" if package.source else "fetched"
        version = str(parse_wheel_filename(wheel.name)[1])
        installed = installed_hash(package.dist, target)  # a fresh runtime: none, no read
        done = installed is not None and installed == sha256(wheel)
        say(f"{package.dist} {version}: {how}, {'already installed' if done else 'installed'}")
        wheels.append(wheel)
        todo += [] if done else [wheel]
    if todo:
        run(install_command(todo, target), f"installing {', '.join(w.name for w in todo)}",
            f"delete the wheels in {cache} so that the next run rebuilds them.")
    return wheels
