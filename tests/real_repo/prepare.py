"""Prepare a real GazeGaussian checkout that runs on this CPU-only machine, for the product's CLI.

    python tests/real_repo/prepare.py --repo {upstream,fork} --dest DIR

clones the pinned bundle from ``../shared/third_party`` into ``DIR/GazeGaussian`` (as a Colab
user clones GitHub), writes synthetic ETH-XGaze data and the stand-in model files next to it,
and prints ONE JSON line: ``{"repo", "backend_options", "env"}``, everything a caller needs to
run ``python -m gg_optuna_helpers`` against it. Nothing tracked in the clone is edited; sizes are
made CPU-small only through the repo's own options (``opt.NAME``) and the data.

What stands in for what no machine here has (see README.md beside this file): ``standins/``
(the CUDA rasterizer, simple-knn, kaolin, pytorch3d, ``.cuda()``), ``synthetic.py`` (the data),
``assets.py`` (downloaded weights, the tet grid).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
sys.path.insert(0, str(PROJECT))  # the product's own reading of a checkout names the data files

from gg_optuna_helpers.backends.gazegaussian.checkout import inspect  # noqa: E402
from gg_optuna_helpers.backends.gazegaussian.data import data_files, file_prefix  # noqa: E402
from gg_optuna_helpers.setup_repo.clone import VARIANTS  # noqa: E402

import synthetic  # noqa: E402  (beside this file)

THIRD_PARTY = PROJECT.parent / "shared" / "third_party"
BUNDLES = {variant: (f"GazeGaussian-{owner}-{commit[:7]}.bundle", commit)  # pinned as on Colab
           for variant, owner in (("upstream", "ucwxb"), ("fork", "kram254"))
           for commit in [VARIANTS[variant][1]]}
SITE = HERE / ".site"  # pure-Python packages the repos import, kept off the main environment
SITE_PACKAGES = ("lpips==0.1.4",)
FRAMES = {"train": 2, "val": 2}
CPU_SMALL = {  # repo options that make one iteration take about a second on 2 CPU cores
    "opt.geo_mlp": "[27,64,64,132]",  # MeshHead's SDF MLP (pre-trained 300 steps at start)
    "opt.featmap_size": "16",  # Gaussian feature map: the 64 px image / down_scale 4
    "opt.pred_img_size": "64",  # the neural renderer's output: the image size
    "opt.use_intermediate_gaze_training": "false",  # fork: 3 more passes every 5th iteration
    "num_workers": "0", "iters_per_epoch": "1", "val_samples": "2",
}


def missing_reason() -> str | None:
    """Why the real repos cannot be prepared here, or None."""
    for name, _ in BUNDLES.values():
        if not (THIRD_PARTY / name).is_file():
            return f"the GazeGaussian bundles are not in {THIRD_PARTY} (a clone without ../shared)"
    return None


def torchvision_pin() -> str:
    """The torchvision release built for the installed torch (2.X pairs with 0.(X+15))."""
    import torch

    major, minor = (int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    return f"torchvision=={major - 2}.{minor + 15}.0"


def ensure_site() -> None:
    """torchvision and lpips without their dependencies (they would pull another torch)."""
    stamp = SITE / ".installed"
    wanted = " ".join((torchvision_pin(), *SITE_PACKAGES))
    if stamp.is_file() and stamp.read_text() == wanted:
        return
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade",
                           "--target", str(SITE), *wanted.split()], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"Could not install {wanted} into {SITE}: {done.stderr.strip()[-500:]}")
    stamp.write_text(wanted)


def clone(variant: str, dest: Path) -> Path:
    name, commit = BUNDLES[variant]
    repo = dest / "GazeGaussian"
    if not repo.is_dir():
        subprocess.run(["git", "clone", "-q", str(THIRD_PARTY / name), str(repo)], check=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    if head != commit:
        raise SystemExit(f"{repo} is at {head}, not the pinned {commit}: use an empty --dest.")
    return repo


def frame_indices(repo: Path, dataset: str, val_subjects: int) -> dict[str, list[int]]:
    """Frames to write per split. Upstream's held-out set reads the frames its evaluation
    target list names (``configs/config_files/<prefix>evaluation_target_single_subject.txt``),
    as many as it takes subjects x frames."""
    indices = {split: list(range(n)) for split, n in FRAMES.items()}
    targets = (repo / "configs" / "config_files"
               / f"{file_prefix(repo, dataset)}evaluation_target_single_subject.txt")
    if targets.is_file():
        listed = [int(w) for w in targets.read_text().split()][:val_subjects * FRAMES["val"]]
        indices["val"] = sorted({*indices["val"], *listed})
    return indices


def environment(torch_home: Path) -> dict[str, str]:
    paths = [str(HERE / "standins"), str(SITE), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p), "TORCH_HOME": str(torch_home),
            "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}  # 1 thread: 2 cores, busy


def prepare(variant: str, dest: Path) -> dict:
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    ensure_site()
    repo = clone(variant, dest)
    data, val_data = dest / "data" / "ETH-XGaze", dest / "data" / "ETH-XGaze_test"
    checkout = inspect(repo)
    dataset = checkout.gazegaussian.get("dataset_name", "eth_xgaze")
    files = {"train": data_files(repo, data, dataset, "train"),
             "val": data_files(repo, val_data, dataset, "val")}
    if not all(p.is_file() for paths in files.values() for p in paths):
        synthetic.write_dataset(files, frame_indices(repo, dataset, len(files["val"])))
    env = environment(dest / "torch_home")
    subprocess.run([sys.executable, str(HERE / "assets.py"), str(repo), env["TORCH_HOME"]],
                   check=True, env={**os.environ, **env})
    known = {**checkout.meshhead, **checkout.gazegaussian}
    small = {k: v for k, v in CPU_SMALL.items() if not k.startswith("opt.") or k[4:] in known}
    options = {"repo": str(repo), "data": str(data), "val_data": str(val_data), **small}
    return {"repo": str(repo), "backend_options": options, "env": env}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", choices=sorted(BUNDLES), required=True)
    parser.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args()
    reason = missing_reason()
    if reason:
        raise SystemExit(f"Cannot prepare the real repo: {reason}.")
    print(json.dumps(prepare(args.repo, args.dest)))


if __name__ == "__main__":
    main()
