"""The embedded mini backend: real (small) training through the Backend/Trainer protocol."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch

from gg_optuna_helpers.backends import TrainerContext, get_backend
from gg_optuna_helpers.backends.mini import data, gaze_estimator, meshhead
from gg_optuna_helpers.backends.mini.cache import atomic_save
from gg_optuna_helpers.backends.mini.faults import CRASH_EXIT_CODE
from gg_optuna_helpers.backends.mini.losses import PerceptualLoss, orthogonality
from gg_optuna_helpers.errors import ConfigError
from gg_optuna_helpers.spaces import SPACES

ROOT = Path(__file__).resolve().parents[1]
BACKEND = get_backend("mini")
SMALL_MESHHEAD = {"shape_mlp_hidden": 128, "pose_mlp_hidden": 64, "eye_mlp_hidden": 64}

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the module: the gaze estimator and baseline MeshHead are trained once."""
    return tmp_path_factory.mktemp("mini_cache")


def make(stage: str, cache: Path, tmp: Path, seed: int = 0, options: dict | None = None,
         device: str = "cpu", **params):
    ctx = TrainerContext(stage=stage, params={**BACKEND.defaults(stage, {}), **params},
                         max_epochs=10, seed=seed, device=device, trial_dir=tmp, cache_dir=cache,
                         options=options or {})
    return BACKEND.make_trainer(ctx)


def run(trainer, epochs: int, first: int = 1) -> list[tuple[float, float]]:
    """(training loss, validation value) per epoch."""
    return [(trainer.train_epoch(e)["loss"], trainer.validate()["value"])
            for e in range(first, first + epochs)]


def test_data_is_fast_deterministic_and_split_by_subject():
    data.load_split.cache_clear()
    start = time.perf_counter()
    train, val = data.load_split("train"), data.load_split("val")
    assert time.perf_counter() - start < 2.0
    assert train.images.shape == (len(train), 3, data.IMAGE_SIZE, data.IMAGE_SIZE)
    assert val.masks.shape == (len(val), 1, data.IMAGE_SIZE, data.IMAGE_SIZE)
    assert 0 <= train.images.min() and train.images.max() <= 1
    assert 0.02 < train.masks.mean() < 0.2  # eye masks cover the eyes, not the face
    assert not set(train.subject.tolist()) & set(val.subject.tolist())
    data.load_split.cache_clear()
    assert torch.equal(data.load_split("train").images, train.images)


def test_the_iris_follows_the_gaze():
    one_look = {"skin": [0.8, 0.6, 0.5], "iris": [0.1, 0.3, 0.6], "hair": [0.2, 0.15, 0.1],
                "half_width": 0.3, "half_height": 0.15, "separation": 0.48, "height": 0.0,
                "iris_radius": 0.12}
    look = {name: torch.tensor([value, value]) for name, value in one_look.items()}
    left_right = torch.tensor([[0.0, -0.4], [0.0, 0.4]])  # (pitch, yaw)
    images, masks = data.render(look, torch.zeros(2, 3), left_right)
    darkness = (1 - images.mean(1)) * masks[:, 0]  # the iris and pupil inside the eyes
    columns = torch.arange(data.IMAGE_SIZE, dtype=torch.float)
    centroid_x = (darkness.sum(1) * columns).sum(1) / darkness.sum((1, 2))
    assert centroid_x[1] - centroid_x[0] > 2.0  # pixels: positive yaw looks to the right


def test_limits_and_defaults_are_the_spaces_and_the_real_repo_defaults():
    for stage, space in SPACES.items():
        limits = BACKEND.limits(stage, {})
        assert limits.params == frozenset(space.names)
        space.fitted(limits).validate(limits, "mini")
    assert BACKEND.limits("meshhead", {}).choices == {"batch_size": (1, 2)}
    assert BACKEND.limits("gazegaussian", {}).embed_dim % 16 == 0
    assert BACKEND.limits("gazegaussian", {}).featmap_size % 16 == 0
    assert BACKEND.defaults("meshhead", {}) == {
        "lr": 1e-3, "batch_size": 1, "shape_mlp_hidden": 256, "pose_mlp_hidden": 128,
        "eye_mlp_hidden": 128}
    assert BACKEND.defaults("gazegaussian", {}) == {
        "lr": 1e-4, "dit_depth": 6, "dit_num_heads": 8, "dit_patch_size": 8,
        "vgg_importance": 0.1, "eye_loss_importance": 1.0, "gaze_loss_importance": 0.1,
        "orthogonality_loss_importance": 0.01}
    with pytest.raises(ConfigError, match="stage"):
        BACKEND.limits("nerf", {})


def test_meshhead_widths_are_the_searched_hidden_widths():
    model = meshhead.build({"shape_mlp_hidden": 384, "pose_mlp_hidden": 64, "eye_mlp_hidden": 256})
    assert (model.shape_mlp.point_in.out_features, model.pose_mlp.point_in.out_features,
            model.eye_mlp.point_in.out_features) == (384, 64, 256)
    batch = data.make_batch(data.load_split("val"), torch.tensor([0, 1]), torch.tensor([2, 3]))
    features, rgb = model.render(batch.source, batch.source_gaze, batch.pose, batch.target_gaze)
    assert features.shape == (2, meshhead.FEATURES, 32, 32) and rgb.shape == (2, 3, 32, 32)


@pytest.mark.parametrize("stage, params", [
    ("meshhead", {**SMALL_MESHHEAD, "batch_size": 2}),
    ("gazegaussian", {"lr": 1e-3, "dit_depth": 4, "dit_num_heads": 16, "dit_patch_size": 4}),
])
def test_same_seed_same_results_and_a_resumed_trial_continues_exactly(stage, params, cache_dir,
                                                                      tmp_path):
    straight = make(stage, cache_dir, tmp_path, **params)
    expected = run(straight, 3)
    assert all(math.isfinite(loss) and math.isfinite(value) for loss, value in expected)

    first = make(stage, cache_dir, tmp_path, **params)
    assert run(first, 1) == expected[:1]
    path = tmp_path / "last.pt"
    torch.save({"trainer": first.state_dict()}, path)
    resumed = make(stage, cache_dir, tmp_path, seed=0, **params)
    resumed.load_state_dict(torch.load(path, weights_only=True)["trainer"])
    assert run(resumed, 2, first=2) == expected[1:]
    assert "momentum_buffer" in str(first.state_dict()["optimizer"]["state"][0])


def test_validation_metrics_do_not_depend_on_the_loss_weights(cache_dir, tmp_path):
    plain = make("gazegaussian", cache_dir, tmp_path).validate()
    weighted = make("gazegaussian", cache_dir, tmp_path, vgg_importance=0.5,
                    eye_loss_importance=2.0, gaze_loss_importance=0.5,
                    orthogonality_loss_importance=0.1).validate()
    assert plain == weighted
    assert set(plain) >= {"value", "psnr", "gaze_error_deg", "l1"}
    assert plain["value"] == pytest.approx(plain["l1"] + 0.005 * plain["gaze_error_deg"])


@pytest.mark.parametrize("stage, good, bad, epochs", [
    ("meshhead", {"lr": 3e-3}, {"lr": 1e-5}, 3),
    ("gazegaussian", {"lr": 1e-3, "dit_depth": 4, "dit_patch_size": 16}, {"lr": 1e-5}, 4),
])
def test_a_good_configuration_beats_a_bad_one(stage, good, bad, epochs, cache_dir, tmp_path):
    """Best validation value after a few epochs, as the study sees it."""
    good_value = min(value for _, value in run(make(stage, cache_dir, tmp_path, **good), epochs))
    bad_value = min(value for _, value in run(make(stage, cache_dir, tmp_path, **bad), epochs))
    assert good_value < 0.9 * bad_value


@pytest.mark.parametrize("stage, lr", [("meshhead", 1e-2), ("gazegaussian", 5e-3)])
def test_the_top_of_the_lr_range_diverges(stage, lr, cache_dir, tmp_path):
    losses = [make(stage, cache_dir, tmp_path, lr=lr).train_epoch(1)["loss"]]
    assert not math.isfinite(losses[0])


def test_stage_two_uses_the_stage_one_checkpoint_or_a_cached_baseline(cache_dir, tmp_path):
    stage1 = make("meshhead", cache_dir, tmp_path, **SMALL_MESHHEAD)
    stage1.train_epoch(1)
    checkpoint = tmp_path / "best.pt"
    atomic_save({"format": 1, "params": {**BACKEND.defaults("meshhead", {}), **SMALL_MESHHEAD},
                 "trainer": stage1.state_dict()}, checkpoint)
    stage2 = make("gazegaussian", cache_dir, tmp_path,
                  options={"meshhead_checkpoint": str(checkpoint)})
    head = stage2.model.meshhead
    assert head.shape_mlp.point_in.out_features == 128
    assert torch.equal(head.to_rgb.weight, stage1.model.to_rgb.weight)
    assert not any(p.requires_grad for p in head.parameters())

    baseline = cache_dir / meshhead.BASELINE_CACHE_NAME
    make("gazegaussian", cache_dir, tmp_path)
    stamp = baseline.stat().st_mtime_ns
    again = make("gazegaussian", cache_dir, tmp_path).model.meshhead
    assert baseline.stat().st_mtime_ns == stamp  # loaded, not trained again
    assert again.shape_mlp.point_in.out_features == 256  # the default MeshHead
    assert not list(cache_dir.glob(".*.tmp"))

    with pytest.raises(ConfigError, match="does not exist"):
        make("gazegaussian", cache_dir, tmp_path,
             options={"meshhead_checkpoint": str(tmp_path / "missing.pt")})


def test_the_frozen_gaze_estimator_is_a_meaningful_judge(cache_dir):
    estimator = gaze_estimator.load_frozen(cache_dir, "cpu")
    val = data.load_split("val")
    batch = data.make_batch(val, *data.fixed_pairs(val, 48))
    with torch.no_grad():
        on_targets = gaze_estimator.angular_error(estimator(batch.target), batch.target_gaze)
        on_sources = gaze_estimator.angular_error(estimator(batch.source), batch.target_gaze)
    assert on_targets.rad2deg().mean() < 6 < 15 < on_sources.rad2deg().mean()


def test_loss_helpers():
    images = data.load_split("val").images[:4]
    perceptual = PerceptualLoss()
    assert perceptual(images, images) == 0
    assert perceptual(images, images.flip(-1)) > perceptual(images, (images + 0.02).clamp(0, 1))
    codes = torch.eye(4)
    assert orthogonality(codes, codes.roll(1, 0)) == 0
    assert orthogonality(codes, 3 * codes) == pytest.approx(1.0)


@pytest.mark.parametrize("stage", ["meshhead", "gazegaussian"])
def test_preview_is_a_valid_png(stage, cache_dir, tmp_path):
    path = tmp_path / "preview.png"
    make(stage, cache_dir, tmp_path).preview(path)
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    width, height, depth, colour = struct.unpack(">IIBB", raw[16:26])
    columns = 3 if stage == "meshhead" else 4
    cell = data.IMAGE_SIZE * 3 + 2  # scale 3, 1-pixel border
    assert (width, height, depth, colour) == (columns * cell, 4 * cell, 8, 2)
    idat_length = struct.unpack(">I", raw[33:37])[0]
    assert raw[37:41] == b"IDAT"
    assert len(zlib.decompress(raw[41:41 + idat_length])) == height * (1 + 3 * width)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("stage", ["meshhead", "gazegaussian"])
def test_training_runs_on_cuda(stage, tmp_path):
    trainer = make(stage, tmp_path / "cache", tmp_path, device="cuda")
    (loss, value), = run(trainer, 1)
    assert math.isfinite(loss) and math.isfinite(value)
    assert all(p.is_cuda for p in trainer.model.parameters())
    trainer.preview(tmp_path / "preview.png")


def test_nan_fault_makes_the_real_loss_nan(cache_dir, tmp_path):
    trainer = make("meshhead", cache_dir, tmp_path, options={"fault": {"kind": "nan", "epoch": 2}},
                   **SMALL_MESHHEAD)
    assert math.isfinite(trainer.train_epoch(1)["loss"])
    assert math.isnan(trainer.train_epoch(2)["loss"])


def test_a_malformed_fault_is_refused(cache_dir, tmp_path):
    with pytest.raises(ConfigError, match="fault"):
        make("meshhead", cache_dir, tmp_path, options={"fault": {"kind": "segfault", "epoch": 1}})


_CHILD = """
import sys, torch
from pathlib import Path
from gg_optuna_helpers.backends import TrainerContext, get_backend
torch.set_num_threads(1)
backend = get_backend("mini")
params = {**backend.defaults("meshhead", {}), **SMALL}
ctx = TrainerContext("meshhead", params, 3, 0, "cpu", Path(sys.argv[2]), Path(sys.argv[2]),
                     {"fault": {"kind": sys.argv[1], "epoch": 2}})
trainer = backend.make_trainer(ctx)
trainer.train_epoch(1)
print("epoch 2", flush=True)
trainer.train_epoch(2)
print("survived", flush=True)
""".replace("SMALL", repr(SMALL_MESHHEAD))


def test_oom_crash_and_hang_faults_fail_the_process_for_real(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    children = {kind: subprocess.Popen([sys.executable, "-c", _CHILD, kind, str(tmp_path)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env=env) for kind in ("oom", "crash", "hang")}
    try:
        for kind in ("oom", "crash"):
            out, err = children[kind].communicate(timeout=60)
            assert "epoch 2" in out and "survived" not in out
            if kind == "oom":
                assert children[kind].returncode == 1 and "OutOfMemoryError" in err
            else:
                assert children[kind].returncode == CRASH_EXIT_CODE
        hang = children["hang"]
        assert hang.stdout.readline() == "epoch 2\n"
        with pytest.raises(subprocess.TimeoutExpired):
            hang.wait(timeout=2)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
            child.communicate()
