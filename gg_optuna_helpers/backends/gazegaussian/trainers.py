"""Trial trainers that drive the checkout's own MeshHead and GazeGaussian trainers.

One epoch here is a "virtual epoch" of ``iters_per_epoch`` iterations (a real pass over 80
subjects is far too long between pruning decisions): the repo's training loop is handed a
:class:`~.data.Window` of that many batches instead of its DataLoader, and a recorder that
keeps the logged losses instead of writing TensorBoard files and checkpoints.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ...errors import ConfigError
from ..base import TrainerContext
from .._images import image_grid, write_png
from .checkout import Checkout, enter
from .coupling import load_meshhead, meshhead_options
from .data import (TrainStream, data_files, fixed_random, split_keys, split_subjects,
                   train_set, validation_set)
from .options import DATA_DEFAULTS, REPO_OPTIONS, configure, positive_int
from .repairs import repair_checkout
from .state import compact, expand, rng_state, set_rng_state
from .validation import Means, masked, objective, psnr, ssim

ITERS_PER_EPOCH = 1000
PREVIEW_SAMPLES, PREVIEW_SIZE = 4, 128
OFFSETS = ("iden_offset", "expr_offset", "delta_EulurAngles", "delta_Tvecs")
MLP_SUFFIXES = ("_mlp", "_mlp_rotate")  # MeshHead MLPs whose weights stage 2 copies


class Recorder:
    """Stands in for the repo's recorder: keeps the per-iteration losses, writes no files."""

    def __init__(self) -> None:
        self.means = Means()

    def log(self, log: dict[str, Any]) -> None:
        losses = log.get("loss_dict") or {k: v for k, v in log.items() if k.startswith("loss_")}
        for name, value in losses.items():
            self.means.add(name, value)

    def print_info(self, info: str) -> None:
        print(info, flush=True)

    def take(self) -> dict[str, float]:
        """The mean of each loss since the last call."""
        means, self.means = self.means.means(), Means()
        return means


class RepoTrial:
    """What both stages share: options, data, the epoch loop, validation, checkpoints."""

    stage = ""

    def __init__(self, ctx: TrainerContext, checkout: Checkout) -> None:
        options = ctx.options
        self.ctx, self.checkout = ctx, checkout
        self.iters = positive_int(options, "iters_per_epoch", ITERS_PER_EPOCH)
        self.cache_dir = Path(ctx.cache_dir).resolve()
        repo = {**DATA_DEFAULTS, **checkout.options(self.stage)}
        data = Path(options.get("data") or checkout.root / repo["img_dir"]).expanduser().resolve()
        val_data = Path(options.get("val_data") or f"{data}_test").expanduser().resolve()
        dataset = options.get("dataset", repo["dataset_name"])
        keys = split_subjects(checkout.root, dataset, "train", options.get("subjects"))
        self._check_data(data, val_data, dataset, options.get("val_split", "subjects"), keys)
        if not Path(ctx.trial_dir).is_absolute() and Path.cwd().resolve() != checkout.root:
            raise ConfigError(f"The trial folder {ctx.trial_dir} must be an absolute path: the "
                              "gazegaussian backend changes into the repo folder.")

        enter(checkout.root)
        random.seed(ctx.seed)
        np.random.seed(ctx.seed % 2**32)
        torch.manual_seed(ctx.seed)
        self.eth_xgaze = importlib.import_module("dataloader.eth_xgaze")
        self.opt = importlib.import_module(f"configs.{self.stage}_options").BaseOptions()
        configure(self.opt, self.stage, checkout, ctx.params, max_epochs=ctx.max_epochs,
                  options=options)
        self.opt.img_dir, self.opt.dataset_name = str(data), dataset
        self.opt.num_workers = int(options.get("num_workers", getattr(self.opt, "num_workers", 0)))
        self.opt.logdir = str(Path(ctx.trial_dir).resolve() / "work_dirs")
        self.opt.load_meshhead_checkpoint = ""

        train = train_set(self.eth_xgaze, self.opt, data, dataset, keys)
        print(f"Training on {len(keys)} subjects in {data}: {' '.join(keys)}", flush=True)
        subjects = len(split_keys(checkout.root, dataset).get("val", []))
        self.val, held = validation_set(self.eth_xgaze, self.opt, train, options, val_data, subjects)
        self.stream = TrainStream(train, seed=ctx.seed, num_workers=self.opt.num_workers,
                                  exclude=held)
        self.recorder = Recorder()
        self.rows = len(train)
        self.repo = self._build(train)
        for name in repair_checkout(checkout.root):
            print(f"Repaired in memory: {name} (NaN gradients where a quaternion part is 0; "
                  "see docs/gazegaussian.md)", flush=True)
        self.samples: list[tuple[torch.Tensor, torch.Tensor]] = []
        record_options(Path(ctx.trial_dir), self.opt, checkout.options(self.stage))

    def _check_data(self, data: Path, val_data: Path, dataset: str, val_split: str,
                    keys: list[str]) -> None:
        needed = {"train": data, **({"val": val_data} if val_split == "subjects" else {})}
        for split, folder in needed.items():
            missing = [p for p in data_files(self.checkout.root, folder, dataset, split, keys)
                       if not p.is_file()]
            if missing:
                option = "data" if split == "train" else "val_data"
                raise ConfigError(f"{len(missing)} {split} data files are missing, e.g. "
                                  f"{missing[0]}: pass --backend-option {option}=FOLDER.")

    # --- the Trainer protocol ---------------------------------------------------------------

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self._train(self.stream.window(self.iters), epoch - 1)  # the repo counts from 0
        return self._train_stats(self.recorder.take())

    def validate(self) -> dict[str, float]:
        means, self.samples = Means(), []
        self._eval(True)
        try:
            with torch.no_grad(), fixed_random():
                for batch in DataLoader(self.val, batch_size=1, num_workers=0):
                    pred, truth, mask, data = self._render(batch)
                    if pred.shape[-2:] != truth.shape[-2:]:
                        pred = F.interpolate(pred, size=truth.shape[-2:], mode="bilinear")
                    pred, truth = masked(pred.clamp(0, 1), mask), masked(truth, mask)
                    means.add("ssim", ssim(pred, truth))
                    means.add("psnr", psnr(pred, truth))
                    for name, value in self._extra(pred, truth, data).items():
                        means.add(name, value)
                    if len(self.samples) < PREVIEW_SAMPLES:
                        self.samples.append((_shrink(truth[0].cpu()), _shrink(pred[0].cpu())))
        finally:
            self._eval(False)
        parts = means.means()
        return {"value": objective(parts), **parts, "val_samples": float(len(self.val))}

    def state_dict(self) -> dict[str, Any]:
        # the preview samples too: the worker renders the BEST epoch's preview from best.pt
        return {**self._model_state(), "stream": self.stream.state_dict(), "rng": rng_state(),
                "preview_samples": self.samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._load_model_state(state)
        self.stream.load_state_dict(state["stream"])
        set_rng_state(state["rng"])
        self.samples = state.get("preview_samples", [])  # none in checkpoints of older versions

    def preview(self, path: Path) -> None:
        if self.samples:
            write_png(path, image_grid([list(column) for column in zip(*self.samples)], scale=1))

    # --- per stage ----------------------------------------------------------------------------

    def _build(self, train: Any) -> Any:
        raise NotImplementedError

    def _train(self, window: Any, epoch: int) -> None:
        raise NotImplementedError

    def _train_stats(self, losses: dict[str, float]) -> dict[str, float]:
        raise NotImplementedError

    def _render(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """(render, ground truth, head mask, prepared batch) for one validation batch."""
        raise NotImplementedError

    def _extra(self, pred: torch.Tensor, truth: torch.Tensor, data: dict) -> dict[str, Any]:
        return {}

    def _eval(self, on: bool) -> None:
        raise NotImplementedError

    def _model_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_model_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


class MeshHeadTrial(RepoTrial):
    """Stage 1: the repo's ``MeshHeadTrainer.train`` run on one window per epoch."""

    stage = "meshhead"

    def _build(self, train: Any) -> Any:
        module = importlib.import_module("trainer.meshhead_trainer")
        return module.MeshHeadTrainer(self.opt, self.recorder, train.init_landmarks_3d_neutral)

    def _train(self, window: Any, epoch: int) -> None:
        self.repo.train(window, n_epochs=1)

    def _train_stats(self, losses: dict[str, float]) -> dict[str, float]:
        finite = all(map(math.isfinite, losses.values()))
        return {"loss": losses.get("loss_rgb", math.nan) if finite else math.nan, **losses}

    def _render(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        device = self.repo.device
        truth = batch["image"].to(device)
        mask = batch["face_mask"].to(device) >= 0.5
        meshhead = self.repo.meshhead
        data = meshhead.reconstruct(meshhead_batch(batch, meshhead, device))
        data = self.repo.camera.render(data, truth.shape[-1])
        pred = data["render_images"][:, 0, :, :, :3].permute(0, 3, 1, 2)
        return pred, truth, mask, data

    def _eval(self, on: bool) -> None:
        self.repo.meshhead.train(not on)

    def _model_state(self) -> dict[str, Any]:
        return {"meshhead": self.repo.meshhead.state_dict(),
                "optimizer": self.repo.optimizer.state_dict(),
                "repo_options": dict(vars(self.opt))}  # stage 2 rebuilds MeshHead from them

    def _load_model_state(self, state: dict[str, Any]) -> None:
        self.repo.meshhead.load_state_dict(state["meshhead"])
        self.repo.optimizer.load_state_dict(state["optimizer"])


def meshhead_batch(batch: dict, meshhead: Any, device: Any) -> dict:
    """A validation batch prepared the way the repo's MeshHead training loop prepares one."""
    data = dict(batch)
    for key in ("image", "face_mask"):
        data[key] = batch[key].to(device).unsqueeze(1)
    codes = {k: v.to(device) if torch.is_tensor(v) else v
             for k, v in batch["nl3dmm_para_dict"].items()}
    for key in ("intrinsics", "extrinsics"):
        codes[key] = codes[key].unsqueeze(1)
    codes["shape_code"] = torch.cat([codes["expr_code"], codes["iden_code"]], -1).float()
    data["nl3dmm_para_dict"] = codes
    data["landmarks_3d_neutral"] = meshhead.get_landmarks()[None].repeat(len(batch["image"]), 1, 1)
    return data


class GazeGaussianTrial(RepoTrial):
    """Stage 2: the repo's ``GazeGaussianTrainer.train_epoch`` run on one window per epoch."""

    stage = "gazegaussian"

    def _build(self, train: Any) -> Any:
        path, meshhead = load_meshhead(self.ctx.options, self.checkout, self.cache_dir)
        self.opt.load_meshhead_checkpoint = str(path)
        self.opt.load_gazegaussian_checkpoint = ""
        for name, value in meshhead.items():  # the Gaussian model's MLPs receive MeshHead's weights
            if name.endswith(MLP_SUFFIXES) and hasattr(self.opt, name):
                setattr(self.opt, name, list(value))
        module = importlib.import_module("trainer.gazegaussian_trainer")
        with meshhead_options(meshhead):
            repo = module.GazeGaussianTrainer(self.opt, self.recorder)
        repo.prepare_optimizer_opt(len(train))
        estimator = getattr(repo.loss_utils, "gaze_loss_func", None)
        if estimator is None:
            losses = importlib.import_module("losses.gazenerf_loss")
            estimator = losses.GazePerceptualLoss(resize=True, device=repo.device).to(repo.device)
        self.estimator = estimator
        return repo

    def _train(self, window: Any, epoch: int) -> None:
        self.repo.train_epoch(window, epoch)

    def _train_stats(self, losses: dict[str, float]) -> dict[str, float]:
        return {"loss": losses.pop("total_loss", math.nan), **losses}

    def _render(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        data = self.repo.build_code_and_cam(-1, self.repo.prepare_data(batch))  # no offsets
        data = self.repo.net(data)
        return data["total_render_dict"]["merge_img_pro"], data["image"], data["face_mask"] >= 0.5, data

    def _extra(self, pred: torch.Tensor, truth: torch.Tensor, data: dict) -> dict[str, Any]:
        return {"gaze_error_deg": self.estimator(pred, truth, data["cam_ind"], data["ldms"])}

    def _eval(self, on: bool) -> None:
        self.repo.net.train(not on)

    def _model_state(self) -> dict[str, Any]:
        repo = self.repo
        state = {"net": repo.net.state_dict(), "optimizer": repo.optimizer.state_dict(),
                 "offsets": {name: getattr(repo, name).detach() for name in OFFSETS}}
        if getattr(repo, "discriminator", None) is not None:
            state["discriminator"] = repo.discriminator.state_dict()
            state["discriminator_optimizer"] = repo.discriminator_optimizer.state_dict()
        return {"gazegaussian": compact(state, self.rows)}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        repo, state = self.repo, expand(state["gazegaussian"])
        repo.net.load_state_dict(state["net"])
        with torch.no_grad():
            for name, value in state["offsets"].items():
                getattr(repo, name).copy_(value)
        repo.optimizer.load_state_dict(state["optimizer"])
        if "discriminator" in state:
            repo.discriminator.load_state_dict(state["discriminator"])
            repo.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])


TRIALS = {"meshhead": MeshHeadTrial, "gazegaussian": GazeGaussianTrial}


def record_options(trial_dir: Path, opt: Any, defaults: dict[str, Any]) -> None:
    """Write ``repo_options.json``: every repo option this trial trains with that differs from
    the checkout's default, so the exported command reproduces the trained configuration."""
    changed = {k: v for k, v in vars(opt).items() if k not in defaults or defaults[k] != v}
    path = trial_dir / REPO_OPTIONS
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(changed, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _shrink(image: torch.Tensor) -> torch.Tensor:
    scale = PREVIEW_SIZE / max(image.shape[-2:])
    if scale >= 1:
        return image
    size = [max(1, round(s * scale)) for s in image.shape[-2:]]
    return F.interpolate(image[None], size=size, mode="area")[0]
