"""What the setup-repo tests and benchmark use in place of CUDA, Drive and the network:
pure-python stand-in packages built into wheels by the real ``pip wheel`` command, a fake
Drive folder holding data files under the checkout's names and ``config_models.zip``, and a
Python environment that lacks what a fresh Colab runtime lacks."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name

from gg_optuna_helpers.backends.gazegaussian.check import ASSETS
from gg_optuna_helpers.backends.gazegaussian.data import data_files
from gg_optuna_helpers.setup_repo import Package, Toolchain, build_wheel

ROOT = Path(__file__).resolve().parents[1]
THIRD_PARTY = ROOT.parent / "shared" / "third_party"  # the real repos as git bundles
BUNDLES = {"fork": THIRD_PARTY / "GazeGaussian-kram254-2308209.bundle",
           "upstream": THIRD_PARTY / "GazeGaussian-ucwxb-bb8fac9.bundle"}
CPU = Toolchain("2.13.0", None, "2.13.0+cpu", capability="7.5")  # a stand-in T4's sm75


def standin(folder: Path, module: str, version: str = "0.0.0", *, dist: str | None = None,
            requires: tuple[str, ...] = (), imports: tuple[str, ...] = ()) -> Path:
    """The source folder of a pure-python package (named ``dist``, default the module's
    top-level name) whose ``module`` imports; its metadata lists ``requires`` and its
    ``__init__`` imports ``imports`` when it loads."""
    top = module.split(".")[0]
    dist = dist or top
    src = folder / dist
    (src / top).mkdir(parents=True, exist_ok=True)
    (src / top / "__init__.py").write_text("".join(f"import {m}\n" for m in imports) +
                                           "STANDIN = True\n")
    if "." in module:
        (src / top / f"{module.split('.')[1]}.py").write_text("STANDIN = True\n")
    (src / "setup.py").write_text(f"from setuptools import setup\nsetup(name={dist!r}, "
                                  f"version={version!r}, packages=[{top!r}], "
                                  f"install_requires={list(requires)!r})\n")
    return src


HARNESS_STANDINS = ROOT / "tests" / "real_repo" / "standins"  # the real-repo tests' CPU code


def harness_standin(folder: Path, dist: str) -> Path:
    """The source folder of a package made of the real-repo harness's CPU stand-in ``dist``
    (the pure-torch rasterizer, simple-knn, kaolin or pytorch3d)."""
    src = folder / f"harness_{dist}"
    shutil.copytree(HARNESS_STANDINS / dist, src / dist, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (src / "setup.py").write_text("from setuptools import setup, find_packages\n"
                                  f"setup(name={dist!r}, version='0.0.0', packages=find_packages())\n")
    return src


class StandinBuilder:
    """A ``builder=`` for setup_repo: builds each package with the real ``pip wheel`` command
    instead of compiling CUDA, from the real-repo harness's CPU stand-in of it (an empty
    package where it has none); ``built`` lists what it built. With ``arch`` (a GPU's
    capability, "8.0"), each package records it as ``BUILT_FOR``, as a CUDA build holds
    kernels for that architecture only."""

    def __init__(self, folder: Path, arch: str | None = None):
        self.folder, self.built, self.arch = folder, [], arch

    def __call__(self, package: Package, root: Path, out: Path) -> Path:
        assert package.source is None or (root / package.source / "setup.py").is_file()
        self.built.append(package.dist)
        top = package.module.split(".")[0]
        if (HARNESS_STANDINS / package.dist).is_dir():
            src = harness_standin(self.folder, package.dist)
        else:
            src = standin(self.folder, package.module)
        if self.arch:
            with open(src / top / "__init__.py", "a") as f:
                f.write(f"BUILT_FOR = {self.arch!r}\n")
        return build_wheel(src, out)


def drive_folder(folder: Path, checkout: Path, subjects: int | None = 3) -> Path:
    """A fake Drive: the first ``subjects`` training and held-out files (None: all) under the
    names ``checkout`` opens, and ``gg_results/setup_cache/config_models.zip``."""
    drive = folder / "drive"
    for split, name in (("train", "ETH-XGaze"), ("val", "ETH-XGaze_test")):
        for path in data_files(checkout, drive / name, "eth_xgaze", split)[:subjects]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"h5" * 100)
    cache = drive / "gg_results" / "setup_cache"
    cache.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(cache / "config_models.zip", "w") as z:
        for asset in ASSETS:
            z.writestr(asset.removeprefix("configs/"), b"weights")
    return drive


def python_without(folder: Path, hidden: tuple[str, ...], extra: tuple[Path, ...] = ()) -> Path:
    """The python of a new venv (no system site-packages) that has every package of this
    interpreter's site-packages and of the ``extra`` folders, real ones through links, except
    the ``hidden`` distributions: a runtime that has most of what the repos import, as Colab
    does, but not, e.g., trimesh. pip comes along, and installs into the venv itself."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    sites = [Path(sysconfig.get_paths()["purelib"]), *extra]
    skip = {Path(str(f)).parts[0] for d in importlib.metadata.distributions(path=list(map(
        str, sites))) if canonicalize_name(d.metadata["Name"]) in hidden for f in d.files or []}
    base = folder / "base"
    base.mkdir()
    for site in sites:
        for entry in site.iterdir():
            if entry.name not in skip and not entry.name.endswith(".pth") \
                    and not (base / entry.name).exists():
                (base / entry.name).symlink_to(entry)
    python = folder / "bin" / "python"
    venv_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True, check=True)
    (Path(venv_site.stdout.strip()) / "base.pth").write_text(f"{base}\n")
    return python
