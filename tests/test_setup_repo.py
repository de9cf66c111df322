"""setup_repo against the real GazeGaussian repos (git bundles in ../shared/third_party as the
remote), a fake Drive folder in tmp_path, and real pip wheel builds of small CPU stand-in
packages in place of the CUDA build (the one thing that needs a GPU)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gg_optuna_helpers.backends.gazegaussian.check import ASSETS
from gg_optuna_helpers.errors import ConfigError
from gg_optuna_helpers.setup_repo import VARIANTS, Toolchain, build_wheel, setup_repo
from gg_optuna_helpers.setup_repo.files import copy_tree, fetch, place_model_files, place_weights
from gg_optuna_helpers.setup_repo._step import error_lines
from gg_optuna_helpers.setup_repo.imports import (dist_of, failing_imports, pip_install_command,
                                                  third_party, wheel_requires)
from gg_optuna_helpers.setup_repo.index import fetch_wheel, no_wheel, page_url
from gg_optuna_helpers.setup_repo.packages import (KAOLIN, PYTORCH3D, SIMPLE_KNN, WHEEL_MODULES,
                                                   Package, packages_for)
from gg_optuna_helpers.setup_repo.wheels import (build_command, build_copy, build_env,
                                                 default_builder, ensure_wheels,
                                                 install_command, store)

from setup_standins import (BUNDLES, CPU, ROOT, THIRD_PARTY, StandinBuilder, drive_folder,
                            python_without, standin)

needs_bundles = pytest.mark.skipif(
    not all(p.is_file() for p in BUNDLES.values()),
    reason=f"the GazeGaussian bundles are not in {THIRD_PARTY} (a clone without ../shared)")
COLAB = Toolchain("2.5.1", "12.1", "2.5.1+cu121", "312", capability="7.5")  # a T4
PYPI_WHEELS = ("trimesh==5.2.0", "lpips==0.1.4", "ninja==1.13.2", "cython==0.29.37",
               "setuptools==75.8.2")  # real wheels from PyPI, served offline to the tests


@pytest.fixture(scope="module")
def fork_clone(tmp_path_factory):
    if not BUNDLES["fork"].is_file():
        pytest.skip(f"the GazeGaussian bundles are not in {THIRD_PARTY} (no ../shared here)")
    dest = tmp_path_factory.mktemp("ref") / "GazeGaussian"
    subprocess.run(["git", "clone", "-q", str(BUNDLES["fork"]), str(dest)], check=True)
    return dest


@pytest.fixture(scope="module")
def upstream_clone(tmp_path_factory):
    if not BUNDLES["upstream"].is_file():
        pytest.skip(f"the GazeGaussian bundles are not in {THIRD_PARTY} (no ../shared here)")
    dest = tmp_path_factory.mktemp("up") / "GazeGaussian"
    subprocess.run(["git", "clone", "-q", str(BUNDLES["upstream"]), str(dest)], check=True)
    return dest


@pytest.fixture(scope="session")
def pypi_wheels(tmp_path_factory):
    """A local index (a find-links folder) of the real PyPI wheels the tests install."""
    folder = tmp_path_factory.mktemp("pypi")
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                           "--dest", str(folder), *PYPI_WHEELS], capture_output=True, text=True)
    assert done.returncode == 0, f"PyPI is needed for these wheels: {done.stderr[-500:]}"
    return folder


@pytest.fixture(scope="session")
def torchvision_site():
    """torchvision (Colab has one; this machine's CPU torch has none on its path) and lpips,
    installed without dependencies by the real-repo harness into its own folder."""
    sys.path.insert(0, str(ROOT / "tests" / "real_repo"))
    import prepare

    prepare.ensure_site()
    return prepare.SITE


def offline(monkeypatch, *folders: Path) -> None:
    """pip (in the setup's child processes) installs from ``folders`` alone, no index."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", " ".join(map(str, folders)))


@pytest.fixture(scope="module")
def standin_wheels(tmp_path_factory, fork_clone):
    """The fork's packages as stand-in wheels, built once for the tests not about building."""
    folder = tmp_path_factory.mktemp("wheels")
    builder = StandinBuilder(folder / "src")
    for package in packages_for(fork_clone):
        builder(package, fork_clone, folder)
    return folder


# -- command lines (what would run on Colab) ---------------------------------------------------

def test_build_and_install_command_lines_never_touch_torch(tmp_path):
    build = build_command(tmp_path / "submodules/simple-knn", tmp_path / "out")
    assert build[1:] == ["-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--quiet",
                         "--wheel-dir", str(tmp_path / "out"),
                         str(tmp_path / "submodules/simple-knn")]
    install = install_command([tmp_path / "a.whl"])
    assert install[1:] == ["-m", "pip", "install", "--no-deps", "--force-reinstall", "--quiet",
                           str(tmp_path / "a.whl")]
    assert "--target" in install_command([tmp_path / "a.whl"], tmp_path / "site")
    pinned = pip_install_command(["lpips", "trimesh"], tmp_path / "pin.txt", COLAB)
    assert pinned == [sys.executable, "-m", "pip", "install", "--quiet", "--constraint",
                      str(tmp_path / "pin.txt"), "lpips", "trimesh"]
    assert build_env("8.0")["TORCH_CUDA_ARCH_LIST"] == "8.0"
    assert build_env(None).get("TORCH_CUDA_ARCH_LIST") == os.environ.get("TORCH_CUDA_ARCH_LIST")
    # source builds follow a release tag, never a default branch (both tags exist upstream)
    assert KAOLIN.from_source.endswith("kaolin.git@v0.18.0")
    assert PYTORCH3D.from_source.endswith("pytorch3d.git@v0.7.9")


def test_wheel_pages_and_cache_key_follow_torch_cuda_python_and_the_gpu():
    assert page_url(KAOLIN, COLAB) == ("https://nvidia-kaolin.s3.us-east-2.amazonaws.com/"
                                       "torch-2.5.1_cu121.html")
    assert page_url(PYTORCH3D, COLAB) == ("https://dl.fbaipublicfiles.com/pytorch3d/packaging/"
                                          "wheels/py312_cu121_pyt251/download.html")
    assert COLAB.key(VARIANTS["fork"][1]) == "torch2.5.1-cu121-py312-sm75-2308209fcf98"
    a100 = dataclasses.replace(COLAB, capability="8.0")
    assert a100.key(VARIANTS["fork"][1]) == "torch2.5.1-cu121-py312-sm80-2308209fcf98"


def test_bad_input_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="The variant must be 'fork', 'upstream' or a git URL"):
        setup_repo("forked", dest=tmp_path / "g", cache=tmp_path)
    with pytest.raises(ConfigError, match="needs a pinned commit"):
        setup_repo("https://example.org/x.git", dest=tmp_path / "g", cache=tmp_path)
    with pytest.raises(ConfigError, match="has no CUDA"):
        default_builder(CPU)
    with pytest.raises(ConfigError, match="torch sees no GPU: .* switch to a GPU runtime"):
        default_builder(dataclasses.replace(COLAB, capability=None))
    with pytest.raises(ConfigError, match="There is no folder"):
        copy_tree(tmp_path / "nope", tmp_path / "dst")


def test_imports_are_checked_in_a_fresh_interpreter_with_the_install_folder(tmp_path):
    site = standin(tmp_path / "src", "simple_knn._C")
    broken = failing_imports(["json", "simple_knn._C", "no_such_module"], site)
    assert broken == {"no_such_module": "ModuleNotFoundError: No module named 'no_such_module'"}


# -- wheel index pages (file:// stands in for the network) -----------------------------------

def test_index_page_picks_an_installable_wheel_or_says_what_it_found(tmp_path):
    wheel = build_wheel(standin(tmp_path / "src", "kaolin", "0.17.0"), tmp_path)
    page = tmp_path / "torch-2.13.0_cucpu.html"
    page.write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n'
                    '<a href="kaolin-0.18.0-cp39-cp39-win_amd64.whl">old</a>\n')
    listing = tmp_path / "bucket.xml"
    listing.write_text("<Key>torch-2.4.0_cu121.html</Key><Key>torch-2.5.1_cu124.html</Key>")
    package = Package("kaolin", "kaolin", page=f"file://{tmp_path}/torch-{{torch}}_cu{{cu}}.html",
                      listing=listing.as_uri(), from_source="git+https://example.org/kaolin.git")
    out = tmp_path / "out"
    out.mkdir()
    assert fetch_wheel(package, CPU, out) == out / wheel.name
    page.write_text(f'<a href="gone/{wheel.name}">{wheel.name}</a>\n')  # listed, not there
    (out / wheel.name).unlink()
    with pytest.raises(ConfigError, match=r"^Downloading .* failed"):
        fetch_wheel(package, CPU, out)
    assert list(out.iterdir()) == []  # no partial wheel is left to be taken for a whole one
    page.write_text('<a href="kaolin-0.18.0-cp39-cp39-win_amd64.whl">old</a>')
    assert fetch_wheel(package, CPU, out) is None
    assert "its page" in no_wheel(package, CPU) and "cp39" in no_wheel(package, CPU)
    page.unlink()
    message = no_wheel(package, CPU)
    assert message.startswith("No kaolin wheel matches torch 2.13.0, CUDA None")
    assert "there is no page" in message and "--build-from-source" in message
    assert "(published: torch-2.4.0_cu121, torch-2.5.1_cu124)" in message
    offline = Package("kaolin", "kaolin", page="http://127.0.0.1:9/torch-{torch}.html")
    with pytest.raises(ConfigError, match="Could not reach .*: check the runtime's internet"):
        fetch_wheel(offline, CPU, out)


# -- the whole setup -------------------------------------------------------------------------

@needs_bundles
@pytest.mark.slow
def test_fresh_setup_then_a_new_runtime_installs_from_the_cache(tmp_path, fork_clone, capsys):
    drive = drive_folder(tmp_path, fork_clone)
    commit = VARIANTS["fork"][1]
    builder = StandinBuilder(tmp_path / "standins")
    kwargs = dict(dest=tmp_path / "vm1/GazeGaussian", data=drive / "ETH-XGaze",
                  cache=drive / "gg_results/setup_cache", pypi=False, time_iters=0,
                  builder=builder, toolchain=CPU, site=tmp_path / "vm1/site")
    first = setup_repo(str(BUNDLES["fork"]), commit, **kwargs)
    assert builder.built == ["diff_gaussian_rasterization", "simple_knn", "kaolin"]
    cached = sorted(p.name for p in (drive / "gg_results/setup_cache/wheels" /
                                     CPU.key(commit)).glob("*.whl"))
    assert [n.split("-")[0] for n in cached] == ["diff_gaussian_rasterization", "kaolin",
                                                  "simple_knn"]
    assert first.data == tmp_path / "vm1/data/ETH-XGaze"
    assert first.val_data == tmp_path / "vm1/data/ETH-XGaze_test"
    assert sorted(p.name for p in first.data.iterdir()) == sorted(
        p.name for p in (drive / "ETH-XGaze").iterdir())
    assert all((first.repo / a).read_bytes() == b"weights" for a in ASSETS)
    assert first.backend_options() == {"repo": str(first.repo), "data": str(first.data),
                                       "val_data": str(first.val_data)}
    out = capsys.readouterr().out
    assert "simple_knn._C, kaolin import" in out and out.count(": built, installed") == 2
    assert "kaolin 0.0.0: fetched, installed" in out
    assert out.count("not in the cache, compiling it") == 2
    assert "kaolin: not in the cache, fetching it" in out

    # a disconnect: a new VM (new local disk and site-packages), the same Drive
    kwargs.update(dest=tmp_path / "vm2/GazeGaussian", site=tmp_path / "vm2/site")
    second = setup_repo(str(BUNDLES["fork"]), commit, **kwargs)
    assert builder.built == ["diff_gaussian_rasterization", "simple_knn", "kaolin"]  # no rebuild
    out = capsys.readouterr().out
    assert out.count(": cached, installed") == 3 and "kaolin import" in out
    assert "config_models.zip from the cache" in out
    # the same VM again, the commit given short: nothing to do
    again = setup_repo(str(BUNDLES["fork"]), commit[:7], **kwargs)
    out = capsys.readouterr().out
    assert out.count("already installed") == 3 and "reusing" in out
    assert "0 files copied" in out and "model files already in place" in out
    assert second.summary == again.summary and again.commit == commit


@needs_bundles
@pytest.mark.slow
def test_check_repo_line_says_ready_or_what_is_missing(tmp_path, fork_clone, standin_wheels):
    drive = drive_folder(tmp_path, fork_clone)
    cache = drive / "gg_results/setup_cache"
    shutil.copytree(standin_wheels, cache / "wheels" / CPU.key(VARIANTS["fork"][1]))
    kwargs = dict(dest=tmp_path / "GazeGaussian", data=drive / "ETH-XGaze", cache=cache,
                  pypi=False, time_iters=0, builder=StandinBuilder(tmp_path / "s"),
                  toolchain=CPU, site=tmp_path / "site")
    report = setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], **kwargs)
    # the fake Drive holds 3 subjects per split, the fork's split list many more
    assert not report.ready
    assert report.summary.startswith("NOT READY: ") and "files are missing from" in report.summary
    assert report.summary.endswith(f"check-repo {report.repo} --data {report.data} lists them)")
    drive_folder(tmp_path, fork_clone, subjects=None)
    report = setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], **kwargs)
    assert report.ready and report.summary.startswith("READY: fork checkout at ")
    assert kwargs["builder"].built == []


@needs_bundles
def test_a_clone_at_another_commit_or_with_changes_is_refused_not_deleted(tmp_path, fork_clone):
    dest = tmp_path / "GazeGaussian"
    subprocess.run(["git", "clone", "-q", str(BUNDLES["fork"]), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", "HEAD~1"], check=True)
    kwargs = dict(dest=dest, cache=tmp_path / "cache", builder=StandinBuilder(tmp_path / "s"),
                  toolchain=CPU, site=tmp_path / "site", pypi=False, time_iters=0)
    with pytest.raises(ConfigError, match=r"is a clone at commit \w{12}, not 2308209fcf98"):
        setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], **kwargs)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", VARIANTS["fork"][1]], check=True)
    (dest / "train_meshhead.py").write_text("# edited\n")
    with pytest.raises(ConfigError, match="has local changes \\(train_meshhead.py"):
        setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], **kwargs)
    assert (dest / "train_meshhead.py").read_text() == "# edited\n"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain/x").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a git clone"):
        setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], **{**kwargs,
                                                                 "dest": tmp_path / "plain"})


@needs_bundles
def test_upstream_also_needs_pytorch3d_the_fork_does_not(tmp_path, fork_clone):
    dest = tmp_path / "up"
    subprocess.run(["git", "clone", "-q", str(BUNDLES["upstream"]), str(dest)], check=True)
    assert [p.dist for p in packages_for(dest)][-1] == "pytorch3d"
    assert "pytorch3d" not in [p.dist for p in packages_for(fork_clone)]


def test_a_different_wheel_of_the_same_version_is_installed_over_the_old_one(tmp_path):
    cache, site = tmp_path / "cache", tmp_path / "site"
    store(build_wheel(standin(tmp_path / "a", "simple_knn._C"), tmp_path), cache)
    builder, said = StandinBuilder(tmp_path / "never"), []
    ensure_wheels([SIMPLE_KNN], tmp_path, cache, builder, site, said.append)
    ensure_wheels([SIMPLE_KNN], tmp_path, cache, builder, site, said.append)
    assert said == ["simple_knn 0.0.0: cached, installed",
                    "simple_knn 0.0.0: cached, already installed"]
    other = standin(tmp_path / "b", "simple_knn._C")
    (other / "simple_knn/_C.py").write_text("OTHER_BUILD = True\n")
    store(build_wheel(other, tmp_path / "b"), cache)
    ensure_wheels([SIMPLE_KNN], tmp_path, cache, builder, site, said.append)
    assert said[-1] == "simple_knn 0.0.0: cached, installed"
    assert "OTHER_BUILD" in (site / "simple_knn/_C.py").read_text() and builder.built == []


# -- what the checkout imports, what its wheels require: from PyPI, torch pinned ---------------

@needs_bundles
def test_the_pypi_packages_come_from_the_checkouts_own_imports(fork_clone, upstream_clone):
    upstream = third_party(upstream_clone, WHEEL_MODULES)
    fork = third_party(fork_clone, WHEEL_MODULES)
    # both import trimesh at the top of trainer/gazegaussian_trainer.py and utils/recorder.py
    assert "trimesh" in upstream and "trimesh" in fork
    assert upstream == ["PIL", "cv2", "einops", "h5py", "imageio", "kornia", "lpips",
                        "matplotlib", "mpl_toolkits", "numpy", "pandas", "plyfile", "setuptools",
                        "skimage", "tensorboardX", "torchvision", "tqdm", "trimesh", "wandb",
                        "yaml"]
    # the fork adds a Colab cell file (IPython, read past its %cd line) and Optuna scripts
    assert fork == sorted([*upstream, "IPython", "optuna", "plotly"])
    # its own modules (models/ imports `dit_block`, models/dit_block.py), the standard
    # library, torch and what is installed as a wheel are not PyPI packages
    assert not {"dit_block", "models", "configs", "utils", "os", "torch", "kaolin", "pytorch3d",
                "simple_knn", "diff_gaussian_rasterization"} & {*upstream, *fork}
    assert [dist_of(m) for m in ("cv2", "PIL", "skimage", "yaml", "mpl_toolkits", "trimesh")] == [
        "opencv-python-headless", "Pillow", "scikit-image", "PyYAML", "matplotlib", "trimesh"]


@needs_bundles
@pytest.mark.slow
def test_a_runtime_without_trimesh_gets_it_because_the_checkout_imports_it(
        tmp_path, fork_clone, pypi_wheels, torchvision_site, monkeypatch, capsys):
    """A venv with this machine's packages but trimesh and lpips (what a Colab runtime lacks of
    the fork's imports) is set up: the fork's imports are read, those two found missing and
    installed into it from their real PyPI wheels, and nothing else is asked for."""
    python = python_without(tmp_path / "venv", ("trimesh", "lpips"), (torchvision_site,))
    assert set(failing_imports(["trimesh", "lpips", "cv2"], python=str(python))) == {
        "trimesh", "lpips"}
    offline(monkeypatch, pypi_wheels)
    drive = drive_folder(tmp_path, fork_clone)
    kwargs = dict(dest=tmp_path / "GazeGaussian", cache=drive / "gg_results/setup_cache",
                  time_iters=0, builder=StandinBuilder(tmp_path / "s"),
                  toolchain=dataclasses.replace(CPU, executable=str(python)))
    setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], **kwargs)
    out = capsys.readouterr().out
    assert ("installed from PyPI with torch pinned at 2.13.0+cpu (the repo imports lpips, "
            "trimesh)") in out
    assert failing_imports(["trimesh"], python=str(python)) == {}
    venv_site = next((tmp_path / "venv/lib").glob("python3*/site-packages"))
    assert (venv_site / "trimesh-5.2.0.dist-info").is_dir()  # the venv's own, not this one's
    setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], **kwargs)
    assert "every PyPI package the repo imports and its wheels require is installed" in (
        capsys.readouterr().out)


KAOLIN_LIKE = ("pygltflib", "warp-lang>=1.0", "numpy<2.0", "tqdm>=4.51.0",
               'ipython<8.13; python_version < "3.9"', 'pytest; extra == "test"')
"""The forms kaolin 0.18's Requires-Dist take (its tools/requirements.txt): absent packages
it imports when it loads (kaolin/io/gltf.py: pygltflib; kaolin/physics: warp), present ones,
a marker that does not hold, an extra."""


def kaolin_like_builder(folder: Path) -> StandinBuilder:
    """Stand-ins for the fork's packages; kaolin's wheel requires and imports as kaolin does."""
    builder = StandinBuilder(folder)

    def build(package: Package, root: Path, out: Path) -> Path:
        if package.dist != "kaolin":
            return builder(package, root, out)
        return build_wheel(standin(folder, "kaolin", "0.18.0", requires=KAOLIN_LIKE,
                                   imports=("pygltflib", "warp")), out)

    return build


@needs_bundles
@pytest.mark.slow
def test_kaolins_own_requirements_are_installed_so_that_it_imports(
        tmp_path, fork_clone, torchvision_site, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(  # all the repo imports is there
        filter(None, [str(torchvision_site), os.environ.get("PYTHONPATH")])))
    index = tmp_path / "index"  # PyPI's stand-in: two small wheels of the absent packages
    index.mkdir()
    build_wheel(standin(tmp_path / "dists", "pygltflib", "1.16.5"), index)
    build_wheel(standin(tmp_path / "dists", "warp", "1.9.0", dist="warp-lang"), index)
    offline(monkeypatch, index)
    wheel = kaolin_like_builder(tmp_path / "k")(KAOLIN, fork_clone, tmp_path)
    assert [str(r) for r in wheel_requires(wheel)] == ["pygltflib", "warp-lang>=1.0",
                                                       "numpy<2.0", "tqdm>=4.51.0"]
    drive = drive_folder(tmp_path, fork_clone)
    kwargs = dict(dest=tmp_path / "GazeGaussian", cache=drive / "gg_results/setup_cache",
                  time_iters=0, builder=kaolin_like_builder(tmp_path / "k"), toolchain=CPU,
                  site=tmp_path / "site")
    setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], pypi=False, **kwargs)
    out = capsys.readouterr().out  # what `pip install --no-deps` of kaolin alone leaves
    assert "import kaolin fails (ModuleNotFoundError: No module named 'pygltflib')" in out
    setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], **kwargs)
    out = capsys.readouterr().out
    assert "kaolin requires pygltflib, warp-lang>=1.0)" in out  # numpy, tqdm: already there
    import numpy  # kaolin 0.17 asks numpy<2: the runtime's numpy 2 is kept, and said so
    assert f"kept as installed: numpy {numpy.__version__} (asks <2.0)" in out
    assert not list((tmp_path / "site").glob("numpy*"))
    assert "simple_knn._C, kaolin import" in out
    done = subprocess.run([sys.executable, "-c", "import kaolin, warp; print(kaolin.STANDIN)"],
                          env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")),
                          capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


# -- the GPU architecture --------------------------------------------------------------------

@needs_bundles
@pytest.mark.slow
def test_a_wheel_cached_for_another_gpu_is_never_installed(tmp_path, fork_clone, capsys):
    """A T4 runtime fills the Drive cache, an A100 runtime on the same Drive builds its own."""
    drive = drive_folder(tmp_path, fork_clone)
    cache = drive / "gg_results/setup_cache"
    t4, a100 = CPU, dataclasses.replace(CPU, capability="8.0")
    builders = {"7.5": StandinBuilder(tmp_path / "s75", "7.5"),
                "8.0": StandinBuilder(tmp_path / "s80", "8.0")}

    def runtime(vm: str, toolchain: Toolchain) -> Path:
        setup_repo(str(BUNDLES["fork"]), VARIANTS["fork"][1], dest=tmp_path / vm / "GG",
                   cache=cache, pypi=False, time_iters=0, toolchain=toolchain,
                   builder=builders[toolchain.capability], site=tmp_path / vm / "site")
        return (tmp_path / vm / "site/simple_knn/__init__.py").read_text()

    assert "BUILT_FOR = '7.5'" in runtime("t4", t4)
    assert "BUILT_FOR = '8.0'" in runtime("a100", a100)  # the T4's wheels are not taken
    assert builders["8.0"].built == ["diff_gaussian_rasterization", "simple_knn", "kaolin"]
    assert sorted(p.name.split("-")[3] for p in (cache / "wheels").iterdir()) == ["sm75", "sm80"]
    assert capsys.readouterr().out.count(": cached, installed") == 0


# -- the real builder on this CPU machine: repaired copies, build tools, error lines ---------

@needs_bundles
def test_simple_knn_is_repaired_in_a_build_copy_and_the_checkouts_stay_clean(
        tmp_path, fork_clone, upstream_clone):
    knn = "submodules/simple-knn"
    up = build_copy(upstream_clone / knn, tmp_path / "up", SIMPLE_KNN.repairs)
    lines = (up / "simple_knn.cu").read_text().splitlines()
    assert lines[0] == "#include <cfloat>" and lines.count("#include <cfloat>") == 1
    assert lines[1:] == (upstream_clone / knn / "simple_knn.cu").read_text().splitlines()
    fork = build_copy(fork_clone / knn, tmp_path / "fork", SIMPLE_KNN.repairs)  # has it
    assert (fork / "simple_knn.cu").read_bytes() == (fork_clone / knn / "simple_knn.cu"
                                                     ).read_bytes()
    for clone in (upstream_clone, fork_clone):
        assert subprocess.run(["git", "-C", str(clone), "status", "--porcelain",
                               "--untracked-files=all"], capture_output=True, text=True,
                              check=True).stdout == ""


@needs_bundles
@pytest.mark.slow
def test_a_failed_cuda_build_shows_its_error_lines_not_pips_last(tmp_path, upstream_clone,
                                                                 pypi_wheels, monkeypatch):
    """The real builder on upstream's simple-knn: ninja into the build's tools folder, a
    repaired copy, the real ``pip wheel``, which fails here (no CUDA): the error is named."""
    offline(monkeypatch, pypi_wheels)
    build = default_builder(dataclasses.replace(CPU, cuda="12.1"))  # claims a CUDA torch
    with pytest.raises(ConfigError) as failed:
        build(SIMPLE_KNN, upstream_clone, tmp_path)
    message = str(failed.value)
    assert message.startswith(f"building a wheel of {upstream_clone}/submodules/simple-knn "
                              "failed (")  # the checkout's folder is named, not the copy
    assert "OSError: CUDA_HOME environment variable is not set" in message
    assert "See above" not in message and "subprocess-exited-with-error" not in message
    assert subprocess.run(["git", "-C", str(upstream_clone), "status", "--porcelain",
                           "--untracked-files=all"], capture_output=True, text=True,
                          check=True).stdout == ""  # built in a copy: no build/ left there


def test_error_lines_skip_pips_framing():
    nvcc = """  error: subprocess-exited-with-error
  × python setup.py bdist_wheel did not run successfully.
  │ exit code: 1
  ╰─> [4 lines of output]
      simple_knn.cu(90): error: identifier "FLT_MAX" is undefined
      simple_knn.cu(91): error: identifier "FLT_MAX" is undefined
      RuntimeError: Error compiling objects for extension
  note: This error originates from a subprocess, and is likely not a problem with pip.
  ERROR: Failed building wheel for simple_knn
hint: See above for details."""
    assert error_lines(nvcc) == ['simple_knn.cu(90): error: identifier "FLT_MAX" is undefined',
                                 'simple_knn.cu(91): error: identifier "FLT_MAX" is undefined',
                                 "RuntimeError: Error compiling objects for extension"]
    assert error_lines("fatal: not a git repository\n") == ["fatal: not a git repository"]
    assert error_lines("error a\nerror b\nerror c", limit=2) == ["error a", "error b",
                                                                  "... 1 more"]


KAOLIN_LIKE_SETUP = """from pkg_resources import parse_version  # as kaolin 0.18's setup.py
import json, os, shutil
import Cython, setuptools
from torch.utils.cpp_extension import is_ninja_available
seen = {"ninja": shutil.which("ninja"), "torch_finds_ninja": is_ninja_available(),
        "setuptools": setuptools.__version__, "cython": Cython.__version__,
        **{k: os.environ.get(k) for k in ("MAX_JOBS", "TORCH_CUDA_ARCH_LIST", "IGNORE_TORCH_VER")}}
with open("kaolin/seen.json", "w") as f:
    json.dump(seen, f)
setuptools.setup(name="kaolin", version="0.18.0", packages=["kaolin"],
                 package_data={"kaolin": ["seen.json"]})
"""


@pytest.mark.slow
def test_a_source_build_gets_ninja_and_its_own_build_tools_leaving_the_environment_as_is(
        tmp_path, pypi_wheels, monkeypatch):
    """kaolin's setup.py imports pkg_resources (this machine's setuptools 84 has none) and
    Cython: its declared build requirements and ninja go into the build's own tools folder,
    and the source build (of a stand-in that records what it saw) runs with them."""
    offline(monkeypatch, pypi_wheels)
    src = standin(tmp_path / "src", "kaolin", "0.18.0")
    (src / "setup.py").write_text(KAOLIN_LIKE_SETUP)
    kaolin = dataclasses.replace(KAOLIN, page=(tmp_path / "no-page.html").as_uri(),
                                 listing=None, from_source=str(src))
    build = default_builder(dataclasses.replace(CPU, cuda="12.1"), from_source=True)
    with zipfile.ZipFile(build(kaolin, tmp_path, tmp_path)) as wheel:
        seen = json.loads(wheel.read("kaolin/seen.json"))
    assert seen.pop("ninja").endswith("/tools/bin/ninja")  # pip's, not /usr/bin's
    assert seen == {"torch_finds_ninja": True, "setuptools": "75.8.2", "cython": "0.29.37",
                    "MAX_JOBS": str(os.cpu_count()), "TORCH_CUDA_ARCH_LIST": "7.5",
                    "IGNORE_TORCH_VER": "1"}
    assert "pkg_resources" in failing_imports(["pkg_resources"])  # this setuptools is as it was


# -- copies and model files ------------------------------------------------------------------

def test_copy_skips_same_size_files_and_recopies_changed_ones(tmp_path):
    src = tmp_path / "drive/data"
    (src / "sub").mkdir(parents=True)
    (src / "a.h5").write_bytes(b"a" * 10)
    (src / "sub/b.h5").write_bytes(b"b" * 20)
    assert "2 files copied" in copy_tree(src, tmp_path / "local")
    (src / "a.h5").write_bytes(b"a" * 11)
    assert "1 files copied" in copy_tree(src, tmp_path / "local")
    assert (tmp_path / "local/a.h5").read_bytes() == b"a" * 11
    assert (tmp_path / "local/sub/b.h5").read_bytes() == b"b" * 20


def test_copy_to_a_too_small_disk_is_refused_before_copying(tmp_path, mount_tmpfs):
    src = tmp_path / "drive/data"
    src.mkdir(parents=True)
    (src / "a.h5").write_bytes(b"a" * 200_000)
    small = mount_tmpfs("64k")
    with pytest.raises(ConfigError, match=r"Copying 195kB to .* needs more than the [\d.]+kB"):
        copy_tree(src, small / "data")
    assert not any((small / "data").iterdir())


def test_model_archive_is_downloaded_once_then_reused(tmp_path):
    archive_src = tmp_path / "hf/config_models.zip"
    archive_src.parent.mkdir()
    with zipfile.ZipFile(archive_src, "w") as z:
        z.writestr("config_models/tets_data.npz", b"tets")
    calls = []

    def download(url, target):  # the network's stand-in: the real fetch of a file:// URL
        calls.append(url)
        fetch(archive_src.as_uri(), target)

    root = tmp_path / "repo"
    cache = tmp_path / "drive/cache/config_models.zip"
    needed = ["configs/config_models/tets_data.npz"]
    assert "downloaded from https://huggingface.co/ucwxb/GazeGaussian" in place_model_files(
        root, cache, needed, download)
    (root / needed[0]).unlink()
    assert "from the cache" in place_model_files(root, cache, needed, download)
    assert len(calls) == 1 and (root / needed[0]).read_bytes() == b"tets"
    with pytest.raises(ConfigError, match="has no epoch_60_512_ckpt.pth.tar"):
        place_model_files(root, cache, [*needed, "configs/config_models/epoch_60_512_ckpt.pth.tar"])
    cache.write_bytes(b"not a zip")
    (root / needed[0]).unlink()
    with pytest.raises(ConfigError, match="is not a zip archive"):
        place_model_files(root, cache, needed)


def test_weights_file_or_archive_lands_in_config_models(tmp_path):
    root = tmp_path / "repo"
    weights = tmp_path / "drive/epoch_60_512_ckpt.pth.tar"
    weights.parent.mkdir()
    weights.write_bytes(b"w" * 1000)
    assert place_weights(weights, root).endswith("configs/config_models/epoch_60_512_ckpt.pth.tar")
    assert "already in" in place_weights(weights, root)
    archive = tmp_path / "drive/mine.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("gazegaussian_ckp.pth", b"ckpt")
    assert "1 files unzipped" in place_weights(archive, root)
    assert (root / "configs/config_models/gazegaussian_ckp.pth").read_bytes() == b"ckpt"
    with pytest.raises(ConfigError, match="There is no weights file"):
        place_weights(tmp_path / "drive/missing.pth", root)


# -- the command ------------------------------------------------------------------------------

@needs_bundles
@pytest.mark.skipif(__import__("torch").version.cuda is not None,
                    reason="this torch has CUDA; the test is about refusing a CPU torch")
def test_cli_clones_then_refuses_a_cpu_torch_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "gg_optuna_helpers", "setup-repo", "--variant",
         str(BUNDLES["fork"]), "--commit", VARIANTS["fork"][1], "--dest", str(tmp_path / "g"),
         "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "[1/5]" in done.stdout and (tmp_path / "g/train_meshhead.py").is_file()
    assert done.stderr.strip().count("\n") == 0 and "has no CUDA" in done.stderr
