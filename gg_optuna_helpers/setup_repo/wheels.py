"""Steps 2-3: build each package into a wheel once per toolchain, GPU architecture and repo
commit, keep the wheels on Drive, install them without dependencies (the installed torch is
never touched; what their metadata requires is installed afterwards, torch pinned)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from packaging.utils import canonicalize_name, parse_wheel_filename

from ..errors import ConfigError
from ._step import run
from .imports import installed, pip_install
from .index import fetch_wheel, no_wheel
from .packages import Package
from .toolchain import Toolchain

Builder = Callable[[Package, Path, Path], Path]
"""``builder(package, repo_root, out_dir) -> wheel``: one wheel of ``package`` in ``out_dir``."""


BUILD_TOOLS = ("ninja",)  # without it torch builds one file at a time and ignores MAX_JOBS


def build_command(source: str | os.PathLike, out: Path,
                  python: str = sys.executable) -> list[str]:
    """``pip wheel`` against the torch already installed (no isolation, no dependencies)."""
    return [python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
            "--quiet", "--wheel-dir", str(out), str(source)]


def install_command(wheels: list[Path], target: Path | None = None,
                    python: str = sys.executable) -> list[str]:
    """``pip install --no-deps`` of wheel files (into ``target`` instead of site-packages);
    forced, as another build of the same version must replace the installed one."""
    where = ["--target", str(target), "--upgrade"] if target else []
    return [python, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--quiet",
            *where, *map(str, wheels)]


def build_env(capability: str | None, tools: Path | None = None) -> dict[str, str]:
    """Compile for this GPU only (minutes less than every architecture) with all cores, with
    the build tools in ``tools`` (ninja, a package's own) first on PATH and PYTHONPATH."""
    env = dict(os.environ, MAX_JOBS=str(os.cpu_count() or 1))
    if capability:
        env["TORCH_CUDA_ARCH_LIST"] = capability
    if tools:
        for name, first in (("PATH", tools / "bin"), ("PYTHONPATH", tools)):
            env[name] = os.pathsep.join(filter(None, [str(first), os.environ.get(name, "")]))
    return env


def build_tools(package: Package, toolchain: Toolchain, tools: Path) -> Path:
    """Install ninja and the package's own build requirements into ``tools``, for that build
    only: the environment keeps its own versions (kaolin's build wants an older setuptools)."""
    pip_install([*BUILD_TOOLS, *package.build_requires], toolchain, tools)
    return tools


def build_copy(source: Path, dest: Path, repairs: tuple[tuple[str, str], ...] = ()) -> Path:
    """A copy of ``source`` to build from, with each (file, line) repair applied to it: the
    line is put first in the file when no line of it is that line. The checkout stays as is
    (a changed tracked file would stop the clone's reuse)."""
    copy = Path(shutil.copytree(source, dest / source.name, symlinks=True))
    for name, line in repairs:
        text = (copy / name).read_text()
        if line not in (raw.strip() for raw in text.splitlines()):
            (copy / name).write_text(f"{line}\n{text}")
    return copy


def build_wheel(source: str | os.PathLike, out: Path, env: dict[str, str] | None = None,
                python: str = sys.executable, shown: str | os.PathLike | None = None) -> Path:
    """Run :func:`build_command` in a fresh folder and move its one wheel into ``out``;
    a failure names ``shown`` (default ``source``: a build copy names its original)."""
    shown = shown or source
    with tempfile.TemporaryDirectory(prefix="gg_wheel_") as tmp:
        run(build_command(source, Path(tmp), python), f"building a wheel of {shown}",
            f"`pip wheel --no-build-isolation --no-deps {shown}` in a terminal shows the whole "
            "log.", env=env)
        wheel = next(Path(tmp).glob("*.whl"))
        return Path(shutil.move(wheel, out / wheel.name))


def default_builder(toolchain: Toolchain, *, from_source: bool = False) -> Builder:
    """The real builder: compile the checkout's CUDA submodules (from a repaired copy), fetch
    kaolin/pytorch3d wheels from their index pages (or build them from source when asked)."""
    if toolchain.cuda is None:
        raise ConfigError(f"torch {toolchain.torch_full} here has no CUDA: the GazeGaussian "
                          "extensions need a CUDA torch (a Colab GPU runtime has one).")
    if toolchain.capability is None:
        raise ConfigError("torch sees no GPU: the extensions are built for this GPU's "
                          "architecture; switch to a GPU runtime (Runtime > Change runtime "
                          "type) and re-run.")

    def compiled(package: Package, source: str | os.PathLike, out: Path, **extra: str) -> Path:
        with tempfile.TemporaryDirectory(prefix="gg_tools_") as tmp:
            tools = build_tools(package, toolchain, Path(tmp) / "tools")
            copy = source  # a checkout's folder is built from a repaired copy of it
            if package.source:
                copy = build_copy(Path(source), Path(tmp), package.repairs)
            env = dict(build_env(toolchain.capability, tools), **extra)
            return build_wheel(copy, out, env, toolchain.executable, shown=source)

    def build(package: Package, root: Path, out: Path) -> Path:
        if package.source:
            return compiled(package, root / package.source, out)
        wheel = fetch_wheel(package, toolchain, out)
        if wheel is None and from_source:
            wheel = compiled(package, package.from_source, out, IGNORE_TORCH_VER="1")
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


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_wheels(packages: list[Package], root: Path, cache: Path, builder: Builder,
                  target: Path | None = None, say: Callable[[str], None] = print,
                  python: str = sys.executable) -> list[Path]:
    """Take each package's wheel from the cache, building it first on a miss; install in one
    ``pip`` call those not installed from that very file (by hash: versions say nothing, the
    CUDA submodules are all 0.0.0). ``say`` gets one line per package as it goes."""
    wheels, todo = [], []
    have = installed(target, python)
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
        sha = have.get(canonicalize_name(package.dist), (None, None))[1]
        done = sha is not None and sha == sha256(wheel)
        say(f"{package.dist} {version}: {how}, {'already installed' if done else 'installed'}")
        wheels.append(wheel)
        todo += [] if done else [wheel]
    if todo:
        run(install_command(todo, target, python), f"installing {', '.join(w.name for w in todo)}",
            f"delete the wheels in {cache} so that the next run rebuilds them.")
    return wheels
