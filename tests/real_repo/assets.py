"""Stand-ins for the files the real GazeGaussian code downloads or ships in config_models.zip.

TEST STAND-INS, random-initialised, so nothing downloads (no machine here reaches those hosts):

- ``configs/config_models/tets_data.npz``: a coarse tetrahedral grid (Freudenthal split of a
  cubic grid over MeshHead's bounding box) in place of the repo's 128^3 DMTet grid;
- ``configs/config_models/epoch_60_512_ckpt.pth.tar``: the gaze estimator's checkpoint
  (``{"model_state": ...}`` of the repo's VGG16 ``gaze_network``), random weights;
- ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``: torchvision's VGG16 ImageNet weights,
  which the gaze estimator and LPIPS load; random convolutions, and a classifier stored as one
  broadcast zero (neither repo uses it), so the file stays small.

Run in the harness environment (torchvision importable): ``python assets.py REPO TORCH_HOME``.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import torch

GRID = 12  # cubes per side; the repo's grid has 128
BOX = 1.6  # half side: MeshHead pre-trains a unit sphere inside it
VGG16_FILE = "vgg16-397923af.pth"
GAZE_FILE = "configs/config_models/epoch_60_512_ckpt.pth.tar"
TETS_FILE = "configs/config_models/tets_data.npz"


def tet_grid(n: int = GRID, half: float = BOX) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and tetrahedra (T, 4) of an n^3 cubic grid, 6 tets per cube."""
    axis = np.linspace(-half, half, n + 1, dtype=np.float32)
    verts = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    corner = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    tets = []
    for order in itertools.permutations(range(3)):  # the 6 monotone paths from 000 to 111
        steps = np.zeros((4, 3), np.int64)
        for k, ax in enumerate(order):
            steps[k + 1:, ax] += 1
        ijk = corner + steps[None]
        tets.append(ijk[..., 0] * (n + 1) ** 2 + ijk[..., 1] * (n + 1) + ijk[..., 2])
    return verts, np.concatenate(tets).astype(np.int64)


def vgg16_weights() -> dict[str, torch.Tensor]:
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.vgg16().state_dict()
    return {k: (v if k.startswith("features") else torch.zeros(1).expand(v.shape))
            for k, v in state.items()}


def gaze_checkpoint(vgg: dict[str, torch.Tensor]) -> dict:
    torch.manual_seed(1)
    state = {f"vgg16.{k[len('features.'):]}": v for k, v in vgg.items() if k.startswith("features")}
    for name, (n_in, n_out) in {"FC1": (512, 64), "FC2": (64, 64), "FC3": (64, 4)}.items():
        layer = torch.nn.Linear(n_in, n_out)
        state[f"{name}.weight"], state[f"{name}.bias"] = layer.weight.data, layer.bias.data
    return {"model_state": state}


def write(repo: Path, torch_home: Path) -> None:
    (repo / TETS_FILE).parent.mkdir(parents=True, exist_ok=True)
    verts, tets = tet_grid()
    np.savez(repo / TETS_FILE, tet_verts=verts, tets=tets)
    vgg = vgg16_weights()
    hub = torch_home / "hub" / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    torch.save(vgg, hub / VGG16_FILE)
    torch.save(gaze_checkpoint(vgg), repo / GAZE_FILE)


if __name__ == "__main__":
    write(Path(sys.argv[1]), Path(sys.argv[2]))
