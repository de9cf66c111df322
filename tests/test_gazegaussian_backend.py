"""The gazegaussian backend, called through the Backend/Trainer protocol.

Everything that imports on a CPU is tested for real; the trainer hooks run against the CONTRACT
FIXTURE in tests/fixtures/gazegaussian_contract (it mimics the real repo's API surface only).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gg_optuna_helpers.backends import TrainerContext, get_backend
from gg_optuna_helpers.backends.gazegaussian import check_repo
from gg_optuna_helpers.backends.gazegaussian import checkout as checkout_module
from gg_optuna_helpers.backends.gazegaussian.data import subset
from gg_optuna_helpers.backends.gazegaussian.options import configure, mlp_widths
from gg_optuna_helpers.backends.gazegaussian.probe import timed_iters
from gg_optuna_helpers.backends.gazegaussian.state import compact, expand
from gg_optuna_helpers.backends.gazegaussian.validation import GAZE_WEIGHT, objective, psnr, ssim
from gg_optuna_helpers.errors import ConfigError
from gg_optuna_helpers.setup_repo import SetupReport, _copy_data
from gg_optuna_helpers.spaces import GAZEGAUSSIAN, MESHHEAD

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "gazegaussian_contract_build", ROOT / "tests/fixtures/gazegaussian_contract/build.py")
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)

BACKEND = get_backend("gazegaussian")
FAST = {"iters_per_epoch": 3, "val_samples": 3}


@pytest.fixture(autouse=True)
def _restore_process(monkeypatch):
    """The adapter changes cwd, sys.path and the breakpoint hook, as a trial process may."""
    cwd, path, hook = os.getcwd(), list(sys.path), sys.breakpointhook
    monkeypatch.setenv("PYTHONBREAKPOINT", os.environ.get("PYTHONBREAKPOINT", ""))
    yield
    for root in list(checkout_module._entered):
        checkout_module._forget(root)
    checkout_module._entered.clear()
    os.chdir(cwd)
    sys.path[:] = path
    sys.breakpointhook = hook


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    base = tmp_path_factory.mktemp("contract")
    return {"fork": contract.make_checkout(base / "fork", "fork"),
            "upstream": contract.make_checkout(base / "upstream", "upstream"),
            "fixed": contract.make_checkout(base / "fixed", "fork", fixed_orthogonality=True)}


def _ctx(tmp_path, repo, stage, params=None, max_epochs=4, **options):
    trial_dir = tmp_path / f"trial_{stage}"
    trial_dir.mkdir(exist_ok=True)
    opts = {"repo": str(repo), **FAST, **options}
    return TrainerContext(stage=stage, params=params or BACKEND.defaults(stage, opts),
                          max_epochs=max_epochs, seed=7, device="cpu", trial_dir=trial_dir,
                          cache_dir=tmp_path / "cache", options=opts)


def _meshhead_checkpoint(tmp_path, repo, params=None, epochs=1):
    ctx = _ctx(tmp_path, repo, "meshhead", params)
    trainer = BACKEND.make_trainer(ctx)
    for epoch in range(1, epochs + 1):
        trainer.train_epoch(epoch)
    path = tmp_path / "meshhead_best.pt"
    torch.save({"format": 1, "params": ctx.params, "trainer": trainer.state_dict()}, path)
    return path, trainer


# --- import, limits and defaults -------------------------------------------------------------

def test_importing_the_backend_imports_no_checkout_code():
    code = ("import sys, gg_optuna_helpers.backends.gazegaussian as g; "
            "print(g.BACKEND.name, sorted(m for m in sys.modules if m.split('.')[0] in "
            "('configs', 'trainer', 'models', 'losses', 'dataloader')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout
    assert out.strip() == "gazegaussian []"


def test_upstream_limits_refuse_dit_and_orthogonality(repos):
    limits = BACKEND.limits("gazegaussian", {"repo": str(repos["upstream"])})
    assert limits.params == {"lr", "vgg_importance", "eye_loss_importance", "gaze_loss_importance"}
    assert limits.embed_dim is None
    with pytest.raises(ConfigError, match="dit_depth"):
        GAZEGAUSSIAN.validate(limits, "gazegaussian")
    small = GAZEGAUSSIAN.__class__("gazegaussian", tuple(
        p for p in GAZEGAUSSIAN.params if p.name in limits.params))
    small.validate(limits, "gazegaussian")
    assert BACKEND.defaults("gazegaussian", {"repo": str(repos["upstream"])}) == {
        "lr": 1e-4, "vgg_importance": 0.1, "eye_loss_importance": 1.0, "gaze_loss_importance": 0.1}


def test_fork_limits_follow_the_real_dit_and_the_broken_orthogonality_loss(repos):
    fork = BACKEND.limits("gazegaussian", {"repo": str(repos["fork"])})
    assert fork.embed_dim == 512 and fork.featmap_size == 16  # the fixture's feature map
    assert fork.choices == {"orthogonality_loss_importance": (0.0,)}
    with pytest.raises(ConfigError, match="orthogonality_loss_importance.*0.0"):
        GAZEGAUSSIAN.validate(fork, "gazegaussian")
    GAZEGAUSSIAN.replace(orthogonality_loss_importance=0.0).validate(fork, "gazegaussian")
    with pytest.raises(ConfigError, match="must divide the embedding dimension"):
        GAZEGAUSSIAN.replace(orthogonality_loss_importance=0.0, dit_num_heads=[8, 12]).validate(fork)
    assert BACKEND.defaults("gazegaussian", {"repo": str(repos["fork"])})[
        "orthogonality_loss_importance"] == 0.0
    fixed = {"repo": str(repos["fixed"])}
    assert BACKEND.limits("gazegaussian", fixed).choices == {}
    GAZEGAUSSIAN.validate(BACKEND.limits("gazegaussian", fixed), "gazegaussian")
    assert BACKEND.defaults("gazegaussian", fixed) == {
        "lr": 1e-4, "vgg_importance": 0.1, "eye_loss_importance": 1.0, "gaze_loss_importance": 0.1,
        "dit_depth": 6, "dit_num_heads": 8, "dit_patch_size": 8,
        "orthogonality_loss_importance": 0.01}


def test_patch_must_divide_the_feature_map_from_the_options(repos):
    options = {"repo": str(repos["fixed"]), "opt.featmap_size": "8"}
    with pytest.raises(ConfigError, match="dit_patch_size.*feature-map size \\(8\\)"):
        GAZEGAUSSIAN.validate(BACKEND.limits("gazegaussian", options), "gazegaussian")


def test_meshhead_limits_and_defaults(repos):
    options = {"repo": str(repos["upstream"])}
    limits = BACKEND.limits("meshhead", options)
    assert limits.choices == {"batch_size": (1,)}
    with pytest.raises(ConfigError, match="batch_size.*only \\[1\\]"):
        MESHHEAD.validate(limits)
    MESHHEAD.fitted(limits).validate(limits)
    assert BACKEND.defaults("meshhead", options) == {
        "lr": 1e-3, "batch_size": 1, "shape_mlp_hidden": 256, "pose_mlp_hidden": 128,
        "eye_mlp_hidden": 128}


@pytest.mark.parametrize("options, words", [
    ({}, "repo=PATH"),
    ({"repo": "/nonexistent/gg"}, "no GazeGaussian checkout at /nonexistent/gg"),
])
def test_missing_checkout_is_one_sentence(options, words):
    with pytest.raises(ConfigError) as info:
        BACKEND.limits("meshhead", options)
    assert words in str(info.value) and str(info.value).count(". ") == 0


def test_incomplete_checkout_names_the_missing_file(tmp_path):
    repo = contract.make_checkout(tmp_path / "repo", "upstream")
    (repo / "trainer/gazegaussian_trainer.py").unlink()
    with pytest.raises(ConfigError, match="trainer/gazegaussian_trainer.py is missing"):
        BACKEND.defaults("gazegaussian", {"repo": str(repo)})


# --- option mapping ----------------------------------------------------------------------------

def test_mlp_widths_scale_hidden_layers_and_keep_the_ends(repos):
    defaults = checkout_module.inspect(repos["upstream"]).meshhead
    assert mlp_widths(defaults, {"pose_mlp_hidden": 128}) == {
        "pose_color_mlp": [182, 128, 32], "pose_deform_mlp": [81, 256, 256, 3]}
    assert mlp_widths(defaults, {"pose_mlp_hidden": 64, "eye_mlp_hidden": 256}) == {
        "pose_color_mlp": [182, 64, 32], "pose_deform_mlp": [81, 128, 128, 3],
        "eye_color_mlp": [146, 256, 32], "eye_deform_mlp": [45, 256, 256, 3],
        "eye_deform_mlp_rotate": [45, 256, 256, 4]}


class _Opt:
    pass


def _configured(repo, stage, params, max_epochs=20, **options):
    checkout = checkout_module.inspect(repo)
    opt = _Opt()
    opt.__dict__.update(checkout.options(stage))
    configure(opt, stage, checkout, params, max_epochs=max_epochs, options=options)
    return opt


def test_meshhead_lr_sets_lr_net_and_keeps_the_landmark_ratio(repos):
    opt = _configured(repos["upstream"], "meshhead", {"lr": 5e-3, "shape_mlp_hidden": 128})
    assert opt.lr_net == 5e-3 and math.isclose(opt.lr_lmk, 5e-4)
    assert opt.shape_color_mlp == [272, 128, 128, 32]
    assert opt.shape_deform_mlp == [171, 128, 128, 128, 128, 128, 3]
    assert opt.geo_mlp == [27, 256, 256, 256, 256, 256, 132]  # not searched


def test_gazegaussian_options_dit_vae_orthogonality_and_loss_begin(repos):
    opt = _configured(repos["fixed"], "gazegaussian", {"dit_depth": 4, "vgg_importance": 0.3,
                                                       "orthogonality_loss_importance": 0.02})
    assert (opt.dit_depth, opt.vgg_importance, opt.neural_renderer_type) == (4, 0.3, "dit")
    assert opt.use_vae is False and opt.use_orthogonality_loss is True
    assert opt.vgg_loss_begin == opt.angular_loss_begin == 1  # 5 of 100 epochs -> 1 of 20
    assert _configured(repos["fork"], "gazegaussian", {}).use_orthogonality_loss is False
    assert _configured(repos["fork"], "gazegaussian", {}, loss_begin="0.5").vgg_loss_begin == 10


@pytest.mark.parametrize("repo, params, options, words", [
    ("upstream", {"dit_depth": 6}, {}, "'dit_depth'.*upstream checkout.*DiT fork"),
    ("fork", {"orthogonality_loss_importance": 0.01}, {}, "fails on the trainer's inputs"),
    ("fork", {}, {"opt.featmap_nc": "16"}, "featmap_nc must stay 32"),
    ("fork", {}, {"opt.use_vae": "true"}, "use_vae must stay False"),
    ("fork", {}, {"opt.no_such_option": "1"}, "names no option"),
    ("fork", {}, {"opt.lr": "fast"}, "opt.lr takes a float"),
])
def test_refusals_are_one_sentence(repos, repo, params, options, words):
    with pytest.raises(ConfigError, match=words) as info:
        _configured(repos[repo], "gazegaussian", params, **options)
    assert str(info.value).endswith(".") and str(info.value).count(". ") == 0


def test_repo_option_overrides_are_typed(repos):
    opt = _configured(repos["upstream"], "gazegaussian", {}, **{"opt.clip_grad": "true",
                                                                "opt.step_decay": "500"})
    assert opt.clip_grad is True and opt.step_decay == 500


# --- metric, state helpers -----------------------------------------------------------------

def test_metric_parts_and_formula():
    image = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim(image, image), torch.ones(2), atol=1e-5)
    assert (psnr(image, image) > 90).all()
    assert ssim(image, 1 - image).max() < 0.5
    assert objective({"ssim": 0.8}) == pytest.approx(0.2)
    assert objective({"ssim": 0.8, "gaze_error_deg": 5.0}) == pytest.approx(0.2 + 5 * GAZE_WEIGHT)


def test_sparse_rows_round_trip_exactly():
    table = torch.zeros(1000, 4)
    table[[3, 500]] = torch.randn(2, 4)
    state = {"offsets": table, "small": torch.ones(3), "nested": [table * 2, 5]}
    packed = compact(state, rows=1000)
    assert packed["offsets"]["values"].shape == (2, 4)
    back = expand(packed)
    assert torch.equal(back["offsets"], table) and torch.equal(back["nested"][0], table * 2)
    assert back["nested"][1] == 5 and torch.equal(back["small"], torch.ones(3))


def test_entering_a_checkout_makes_breakpoint_raise(repos):
    checkout_module.enter(repos["upstream"])
    assert Path.cwd() == repos["upstream"] and sys.path[0] == str(repos["upstream"])
    with pytest.raises(RuntimeError, match="breakpoint"):
        breakpoint()


def test_an_oom_the_repo_catches_before_breakpoint_is_still_an_oom(repos):
    """The real repo wraps its rasterizer calls in ``except Exception as e: print(e);
    breakpoint()``: the trial must still end as ``oom``, naming the caught error."""
    from gg_optuna_helpers.worker import _oom

    checkout_module.enter(repos["upstream"])
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(RuntimeError, match="caught OutOfMemoryError: CUDA out of memory") as e:
        try:
            raise oom
        except Exception:  # noqa: BLE001 - what the repo does
            breakpoint()
    assert _oom(e.value) is oom
    assert _oom(RuntimeError("shape mismatch")) is None


# --- trainers against the contract fixture -------------------------------------------------

def test_meshhead_trial_trains_virtual_epochs_and_validates(tmp_path, repos):
    trainer = BACKEND.make_trainer(_ctx(tmp_path, repos["upstream"], "meshhead"))
    stats = trainer.train_epoch(1)
    assert math.isfinite(stats["loss"]) and stats["loss"] == stats["loss_rgb"]
    assert trainer.stream.state_dict() == {"passes": 0, "position": 3}
    parts = trainer.validate()
    assert parts["val_samples"] == 3 and parts["value"] == pytest.approx(1 - parts["ssim"])
    assert set(parts) == {"value", "ssim", "psnr", "val_samples"}
    trainer.preview(tmp_path / "preview.png")
    assert (tmp_path / "preview.png").read_bytes().startswith(b"\x89PNG")
    for epoch in range(2, 8):  # 18 training frames: the stream wraps into a new pass
        trainer.train_epoch(epoch)
    assert trainer.stream.state_dict() == {"passes": 1, "position": 3}


def test_held_out_frames_are_never_trained_on(tmp_path, repos):
    trainer = BACKEND.make_trainer(_ctx(tmp_path, repos["fork"], "meshhead",
                                        val_split="frames", val_samples=4))
    held = set(trainer.val.indices)
    assert len(held) == 4 and held.isdisjoint(trainer.stream.indices)
    assert len(trainer.stream.indices) == 18 - 4


SPLIT_FILES = contract.SPLIT["train"]  # the contract checkout's .pt files
SPLIT = {"train": ["subject0000.h5", "subject0003.h5", "subject0004.h5", "subject0010.h5"],
         "val": ["subject0012.h5", "subject0022.h5"]}


@pytest.mark.parametrize("subjects, keys", [
    (2, ["subject0000.h5", "subject0003.h5"]),
    ("4", SPLIT["train"]),
    ([4, 0], ["subject0000.h5", "subject0004.h5"]),  # numbers, in the split list's order
    ("3,10", ["subject0003.h5", "subject0010.h5"]),  # --backend-option subjects=3,10
    ("10,", ["subject0010.h5"]), ([10], ["subject0010.h5"]),  # a list: subject 10
    (["subject0010", "xgaze_subject0003.h5"], ["subject0003.h5", "subject0010.h5"]),
    ("subject0004.h5, subject0000.h5", ["subject0000.h5", "subject0004.h5"]),
    ("all", SPLIT["train"]), ("", SPLIT["train"]),
])
def test_subjects_name_a_subset_of_the_training_split(subjects, keys):
    assert subset(SPLIT["train"], SPLIT["val"], subjects, "eth_xgaze") == keys


@pytest.mark.parametrize("subjects, words", [
    (0, "subjects=0 must be between 1 and 4, the training subjects of the eth_xgaze split"),
    (5, "subjects=5 must be between 1 and 4"),
    ([12], "names subject0012.h5, a held-out \\(val\\) subject .* never trained on"),
    ("subject0022.h5", "names subject0022.h5, a held-out"),
    ([7], "names 7, which is no training subject of the eth_xgaze split list"),
    (True, "takes a number N .* but got True"), ([], "but got \\[\\]"),
])
def test_a_bad_subject_subset_is_one_sentence(subjects, words):
    with pytest.raises(ConfigError, match=words) as refused:
        subset(SPLIT["train"], SPLIT["val"], subjects, "eth_xgaze")
    assert "\n" not in str(refused.value)


def test_a_subject_subset_is_checked_and_trained_on_alone(tmp_path, repos):
    """A data folder with only the subset passes the check (it fails without ``subjects``);
    the trial's training set is those subjects' frames, validation the held-out subjects."""
    repo = repos["upstream"]
    data = tmp_path / "ETH-XGaze"
    data.mkdir()
    (data / "xgaze_subject0004.pt").symlink_to(repo / "data/ETH-XGaze/xgaze_subject0004.pt")
    val = str(repo / "data/ETH-XGaze_test")
    options = {"data": str(data), "val_data": val, "subjects": [4]}
    report = check_repo(repo, options=options, time_iters=0)
    assert "OK      data: 1 training files in " + str(data) + " (subjects: 1 of 3)." in \
        report.lines(), report.lines()
    assert not check_repo(repo, options={**options, "subjects": None}, time_iters=0).ok
    trainer = BACKEND.make_trainer(_ctx(tmp_path, repo, "meshhead", **options))
    assert len(trainer.stream.dataset.subjects) == 1 and len(trainer.stream.indices) == 6
    assert len(trainer.val.dataset.subjects) == 2  # both held-out subjects, as without a subset
    with pytest.raises(ConfigError, match="names subject0012.pt, a held-out"):
        BACKEND.make_trainer(_ctx(tmp_path, repo, "meshhead", **{**options, "subjects": [12]}))


def test_the_copy_counts_only_the_subset_against_the_free_space(tmp_path, repos, mount_tmpfs):
    """Drive holds upstream's names (xgaze_subject0000.pt) for the fork's checkout: all three
    subjects do not fit a 64 kB disk and nothing is copied; one subject does, and is linked to
    the name the fork opens. Before the copy, check-repo says where the files are."""
    repo, drive = repos["fork"], tmp_path / "drive" / "ETH-XGaze"
    drive.mkdir(parents=True)
    for key in SPLIT_FILES:
        (drive / f"xgaze_{key}").write_bytes(b"x" * 30_000)
    [problem] = [p for p in _problems(check_repo(repo, options={"data": str(drive)}, time_iters=0))
                 if "training files" in p]
    assert "they are there as xgaze_subject0000.pt (another file-name scheme or one folder " \
           "down), which setup-repo links to subject0000.pt in its local copy" in problem
    small, report, said = mount_tmpfs("64k"), SetupReport(repo, "pinned"), []
    with pytest.raises(ConfigError, match=r"Copying 87.9kB to .* copy fewer subjects \(subj"):
        _copy_data(report, drive, None, None, {}, small, said.append)
    assert not list(small.rglob("*.pt"))
    _copy_data(report, drive, None, 1, {}, small, said.append)
    assert said == [f"{drive} -> {small / 'ETH-XGaze'}: 1 files copied (29.3kB), 0 already there; "
                    "1 linked under the names the checkout opens (e.g. subject0000.pt -> "
                    "xgaze_subject0000.pt)"]
    linked = small / "ETH-XGaze/subject0000.pt"
    assert linked.resolve() == small / "ETH-XGaze/xgaze_subject0000.pt"
    assert report.backend_options()["subjects"] == "subject0000.pt"


def _resume_matches(tmp_path, make):
    """Two epochs in one go == one epoch, checkpoint, new trainer, one more epoch."""
    straight = make("a")
    straight.train_epoch(1)
    straight.train_epoch(2)
    first = make("b")
    first.train_epoch(1)
    saved = tmp_path / "last.pt"
    torch.save({"trainer": first.state_dict()}, saved)
    resumed = make("c")
    resumed.load_state_dict(torch.load(saved, weights_only=False)["trainer"])
    resumed.train_epoch(2)
    assert resumed.stream.state_dict() == straight.stream.state_dict()
    assert resumed.validate() == pytest.approx(straight.validate())


def test_meshhead_resume_continues_exactly(tmp_path, repos):
    def make(name):
        return BACKEND.make_trainer(_ctx(tmp_path / name, repos["fork"], "meshhead"))

    for name in "abc":
        (tmp_path / name).mkdir()
    _resume_matches(tmp_path, make)


def test_gazegaussian_resume_continues_exactly(tmp_path, repos):
    checkpoint, _ = _meshhead_checkpoint(tmp_path, repos["fork"])

    def make(name):
        return BACKEND.make_trainer(_ctx(tmp_path / name, repos["fork"], "gazegaussian",
                                         meshhead_checkpoint=str(checkpoint)))

    for name in "abc":
        (tmp_path / name).mkdir()
    _resume_matches(tmp_path, make)


def test_stage_two_builds_meshhead_with_the_stage_one_widths(tmp_path, repos):
    widths = {"lr": 1e-3, "batch_size": 1, "shape_mlp_hidden": 128, "pose_mlp_hidden": 64,
              "eye_mlp_hidden": 256}
    checkpoint, meshhead = _meshhead_checkpoint(tmp_path, repos["upstream"], widths)
    trainer = BACKEND.make_trainer(_ctx(tmp_path, repos["upstream"], "gazegaussian",
                                        meshhead_checkpoint=str(checkpoint)))
    eyes = trainer.repo.net.fg_CD_predictor_eyes
    assert [layer.out_features for layer in eyes.pose_color_mlp.layers if hasattr(
        layer, "out_features")] == [64, 32]
    assert torch.equal(eyes.eye_color_mlp.layers[0].weight.cpu(),
                       meshhead.repo.meshhead.eye_color_mlp.layers[0].weight.cpu())
    stats = trainer.train_epoch(1)
    parts = trainer.validate()
    assert math.isfinite(stats["loss"]) and parts["gaze_error_deg"] >= 0
    assert parts["value"] == pytest.approx(1 - parts["ssim"] + GAZE_WEIGHT * parts["gaze_error_deg"])


def test_the_repo_alone_cannot_load_a_meshhead_of_other_widths(tmp_path, repos):
    """Why the coupling exists: the (mimicked) repo rebuilds MeshHead with default widths."""
    checkpoint, _ = _meshhead_checkpoint(tmp_path, repos["upstream"], {"shape_mlp_hidden": 128})
    ckpt = torch.load(checkpoint, weights_only=False)
    repo_format = tmp_path / "repo_format.pth"
    torch.save({"meshhead": ckpt["trainer"]["meshhead"]}, repo_format)
    checkout_module.enter(repos["upstream"])
    opt = importlib.import_module("configs.gazegaussian_options").BaseOptions()
    opt.load_meshhead_checkpoint = str(repo_format)
    trainer_module = importlib.import_module("trainer.gazegaussian_trainer")
    with pytest.raises(RuntimeError, match="size mismatch"):
        trainer_module.GazeGaussianTrainer(opt, None)


def test_gazegaussian_needs_the_meshhead_checkpoint(tmp_path, repos):
    with pytest.raises(ConfigError, match="meshhead_checkpoint=PATH"):
        BACKEND.make_trainer(_ctx(tmp_path, repos["fork"], "gazegaussian"))
    bad = tmp_path / "other.pt"
    torch.save({"format": 1, "params": {}, "trainer": {"net": {}}}, bad)
    with pytest.raises(ConfigError, match="not a MeshHead checkpoint"):
        BACKEND.make_trainer(_ctx(tmp_path, repos["fork"], "gazegaussian",
                                  meshhead_checkpoint=str(bad)))


def test_fork_dit_and_fixed_orthogonality_train(tmp_path, repos):
    checkpoint, _ = _meshhead_checkpoint(tmp_path, repos["fixed"])
    params = {**BACKEND.defaults("gazegaussian", {"repo": str(repos["fixed"])}),
              "dit_depth": 2, "dit_num_heads": 16, "dit_patch_size": 4}
    trainer = BACKEND.make_trainer(_ctx(tmp_path, repos["fixed"], "gazegaussian", params,
                                        meshhead_checkpoint=str(checkpoint)))
    assert len(trainer.repo.net.neural_render.blocks) == 2
    stats = trainer.train_epoch(1)
    assert stats["orthogonality_loss"] > 0 and math.isfinite(stats["loss"])


def test_missing_data_is_refused_before_training(tmp_path, repos):
    with pytest.raises(ConfigError, match="3 train data files are missing.*data=FOLDER"):
        BACKEND.make_trainer(_ctx(tmp_path, repos["fork"], "meshhead", data=str(tmp_path)))


# --- check_repo ----------------------------------------------------------------------------

def _problems(report):
    return [line for line in report.lines() if line.startswith("PROBLEM")]


def test_check_repo_on_a_missing_checkout(tmp_path):
    report = check_repo(tmp_path / "nope")
    assert not report.ok and len(report.lines()) == 1
    assert "does not exist" in report.lines()[0]


def test_check_repo_on_an_incomplete_checkout(tmp_path):
    repo = contract.make_checkout(tmp_path / "repo", "fork")
    for name in ("losses/gazenerf_loss.py", "trainer/meshhead_trainer.py"):
        (repo / name).unlink()
    problems = _problems(check_repo(repo))
    assert len(problems) == 2 and all("is missing" in p for p in problems)


def test_check_repo_on_missing_files_and_data(tmp_path):
    repo = contract.make_checkout(tmp_path / "repo", "upstream")
    (repo / "configs/config_models/tets_data.npz").unlink()
    (repo / "data/ETH-XGaze/xgaze_subject0003.pt").unlink()
    report = check_repo(repo)
    problems = _problems(report)
    assert len(problems) == 2 and not report.ok and not report.seconds  # nothing timed
    assert "tets_data.npz" in problems[0]
    assert "1 of 3 training files are missing" in problems[1]
    assert "xgaze_subject0003.pt" in problems[1]


def test_check_repo_on_a_complete_checkout_times_both_stages(repos):
    report = check_repo(repos["fork"], time_iters=1, epochs=5, trials=10)
    assert report.ok, report.lines()
    assert report.variant == "fork"
    assert set(report.hours_per_trial) == {"meshhead", "gazegaussian"}
    assert report.hours_per_study["meshhead"] == pytest.approx(10 * report.hours_per_trial["meshhead"])
    assert any(line.startswith("WARN") and "orthogonality" in line for line in report.lines())
    assert sum(line.startswith("OK      estimate") for line in report.lines()) == 2
    assert all("(5 epochs of 1000 iterations" in f.text and "study of 10 trials" in f.text
               for f in report.findings if f.topic == "estimate")


def test_the_estimate_defaults_to_a_studys_epochs_and_trials(repos):
    """It assumed 10 epochs while a study (and the notebooks) run StudyConfig.max_epochs."""
    from gg_optuna_helpers import StudyConfig

    report = check_repo(repos["upstream"], time_iters=1)
    [line] = [f.text for f in report.findings if f.topic == "estimate"][:1]
    assert f"({StudyConfig.max_epochs} epochs of" in line
    assert f"study of {StudyConfig.n_trials} trials" in line
    hours = report.hours_per_trial["meshhead"]
    assert hours == pytest.approx(StudyConfig.max_epochs * (
        1000 * report.seconds["meshhead"]["per_iter"]
        + 30 * report.seconds["meshhead"]["per_val_sample"]) / 3600)


def test_the_timing_run_has_the_repos_share_of_intermediate_gaze_iterations():
    """The fork adds intermediate-gaze passes where ``batch_index % intermediate_gaze_freq ==
    0`` (1 in 5); 3 timed iterations from batch 0 held one (1 in 3), now whole cycles."""
    from types import SimpleNamespace

    fork = SimpleNamespace(use_intermediate_gaze_training=True, intermediate_gaze_freq=5)
    for asked in (1, 3, 5, 7):
        n = timed_iters(fork, asked)
        assert n >= asked and sum(i % 5 == 0 for i in range(n)) / n == 1 / 5
    assert timed_iters(SimpleNamespace(use_intermediate_gaze_training=False,
                                       intermediate_gaze_freq=5), 3) == 3
    assert timed_iters(SimpleNamespace(), 3) == 3  # upstream: no intermediate-gaze training


def test_check_repo_reports_a_failing_stage_in_one_line(tmp_path):
    repo = contract.make_checkout(tmp_path / "repo", "upstream")
    path = repo / "models/gaze_gaussian.py"
    path.write_text(path.read_text().replace("def forward(self, data):",
                                             "def forward(self, data):\n        raise "
                                             "ValueError('renderer exploded')"))
    problems = _problems(check_repo(repo, time_iters=1))
    assert problems == ["PROBLEM timing: the gazegaussian stage failed: ValueError: renderer "
                        "exploded"]


@pytest.mark.parametrize("options, words", [
    ({"iters_per_epoch": "lots"}, "iters_per_epoch must be a whole number >= 1, but got 'lots'"),
    ({"val_samples": "0"}, "val_samples must be a whole number >= 1"),
    ({"val_split": "people"}, "val_split must be one of subjects, frames"),
])
def test_bad_backend_options_are_one_sentence(tmp_path, repos, options, words):
    with pytest.raises(ConfigError, match=words):
        BACKEND.make_trainer(_ctx(tmp_path, repos["upstream"], "meshhead", **options))


def _clamped_sqrt_quaternion(m):
    """A quaternion from a rotation matrix through sqrt(clamp(x, 0)): NaN gradients at 0 parts."""
    parts = torch.stack([1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2],
                         1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                         1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                         1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    q = torch.sqrt(torch.clamp(parts, min=0.0)) / 2
    signs = torch.stack([torch.ones_like(m[..., 0, 0]), torch.sign(m[..., 2, 1] - m[..., 1, 2]),
                         torch.sign(m[..., 0, 2] - m[..., 2, 0]),
                         torch.sign(m[..., 1, 0] - m[..., 0, 1])], -1)
    return q * signs


def test_quaternion_repair_keeps_values_and_makes_gradients_finite(tmp_path):
    from gg_optuna_helpers.backends.gazegaussian import repairs

    torch.manual_seed(0)
    rotations = torch.linalg.qr(torch.randn(64, 3, 3))[0]
    rotations = rotations * torch.det(rotations)[:, None, None]  # proper rotations
    rotations = torch.cat([rotations, torch.eye(3)[None]])  # and the identity: zero parts
    assert torch.allclose(repairs.matrix_to_quaternion(rotations),
                          _clamped_sqrt_quaternion(rotations))
    assert repairs.nan_gradient(_clamped_sqrt_quaternion)
    assert not repairs.nan_gradient(repairs.matrix_to_quaternion)
    module = tmp_path / "broken_module.py"  # a checkout's module, loaded as the trainer would
    module.write_text("import torch\n" + inspect.getsource(_clamped_sqrt_quaternion).replace(
        "_clamped_sqrt_quaternion", "matrix_to_quaternion"))
    sys.path.insert(0, str(tmp_path))
    try:
        loaded = importlib.import_module("broken_module")
        assert repairs.repair_checkout(tmp_path) == ["broken_module.matrix_to_quaternion"]
        assert loaded.matrix_to_quaternion is repairs.matrix_to_quaternion
        assert repairs.repair_checkout(tmp_path) == []  # once repaired, left alone
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("broken_module", None)


def test_default_space_drops_what_the_checkout_lacks_but_refuses_an_explicit_edit(repos):
    from gg_optuna_helpers import StudyConfig

    upstream = {"repo": str(repos["upstream"])}
    resolved = StudyConfig(stage="gazegaussian", backend="gazegaussian",
                           backend_options=upstream).resolved()
    assert not any(name.startswith("dit_") for name in resolved.space.names)
    assert "lr" in resolved.space.names and "dit_depth" in GAZEGAUSSIAN.names
    with pytest.raises(ConfigError, match="'dit_depth' is not supported"):
        StudyConfig(stage="gazegaussian", backend="gazegaussian", backend_options=upstream,
                    edits={"dit_depth": [4, 6]}).resolved()
