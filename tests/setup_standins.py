"""What the setup-repo tests and benchmark use in place of CUDA, Drive and the network:
pure-python stand-in packages built into wheels by the real ``pip wheel`` command, and a
fake Drive folder holding data files under the checkout's names and ``config_models.zip``."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from gg_optuna_helpers.backends.gazegaussian.check import ASSETS
from gg_optuna_helpers.backends.gazegaussian.data import data_files
from gg_optuna_helpers.setup_repo import Package, Toolchain, build_wheel

ROOT = Path(__file__).resolve().parents[1]
THIRD_PARTY = ROOT.parent / "shared" / "third_party"  # the real repos as git bundles
BUNDLES = {"fork": THIRD_PARTY / "GazeGaussian-kram254-2308209.bundle",
           "upstream": THIRD_PARTY / "GazeGaussian-ucwxb-bb8fac9.bundle"}
CPU = Toolchain("2.13.0", None, "2.13.0+cpu")


def standin(folder: Path, module: str, version: str = "0.0.0") -> Path:
    """The source folder of a pure-python package whose ``module`` imports."""
    dist = module.split(".")[0]
    src = folder / dist
    (src / dist).mkdir(parents=True, exist_ok=True)
    (src / dist / "__init__.py").write_text("STANDIN = True\n")
    if "." in module:
        (src / dist / f"{module.split('.')[1]}.py").write_text("STANDIN = True\n")
    (src / "setup.py").write_text(f"from setuptools import setup\nsetup(name={dist!r}, "
                                  f"version={version!r}, packages=[{dist!r}])\n")
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
    package where it has none); ``built`` lists what it built."""

    def __init__(self, folder: Path):
        self.folder, self.built = folder, []

    def __call__(self, package: Package, root: Path, out: Path) -> Path:
        assert package.source is None or (root / package.source / "setup.py").is_file()
        self.built.append(package.dist)
        if (HARNESS_STANDINS / package.dist).is_dir():
            return build_wheel(harness_standin(self.folder, package.dist), out)
        return build_wheel(standin(self.folder, package.module), out)


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
