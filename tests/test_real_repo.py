"""The real GazeGaussian code, both repos and both stages, driven through the product's CLI.

Each repo is cloned from its pinned bundle in ``../shared/third_party`` by
``tests/real_repo/prepare.py`` (synthetic ETH-XGaze data, stand-in weights) and run on the CPU
stand-ins in ``tests/real_repo/standins`` for its CUDA parts (see tests/real_repo/README.md).
Everything else is the repos' own code, exactly as a user runs it: ``check-repo``, a MeshHead
study killed with SIGKILL mid-trial and resumed, a GazeGaussian study from its best MeshHead,
and the exported best command read back by the repo's own argument parser.

Without ``../shared`` (a clone on its own) these tests are skipped with one line; under CI they
fail instead, so CI never passes without running them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch

from gg_optuna_helpers.backends.gazegaussian import check_repo
from gg_optuna_helpers.backends.gazegaussian.checkout import inspect
from gg_optuna_helpers.backends.gazegaussian.data import file_prefix, spellings, split_subjects
from gg_optuna_helpers.backends.gazegaussian.export import TRIAL_ONLY
from gg_optuna_helpers.backends.gazegaussian.options import REPO_OPTIONS
from gg_optuna_helpers.backends._images import image_grid, write_png
from gg_optuna_helpers.protocol import BEST, METRICS, PREVIEW
from gg_optuna_helpers.backends.gazegaussian.probe import timed_iters
from gg_optuna_helpers.records import metrics
from gg_optuna_helpers.setup_repo import SetupReport, _copy_data

HARNESS = Path(__file__).parent / "real_repo"
sys.path.insert(0, str(HARNESS))
import prepare  # noqa: E402  (the harness beside this file)
import synthetic  # noqa: E402

pytestmark = pytest.mark.slow
STUDY_ARGS = ["--backend", "gazegaussian", "--n-trials", "2", "--max-epochs", "2",
              "--heartbeat-interval", "2", "--quiet"]
DIT_SPACE = ["--set", "dit_depth=2,4", "--set", "dit_num_heads=4,16",  # none is a repo default
             "--set", "dit_patch_size=4,16"]


class RealRepo:
    """One prepared checkout and the CLI run against it, as a user runs it."""

    def __init__(self, variant: str, prepared: dict, results: Path) -> None:
        self.variant, self.results = variant, results
        self.repo = Path(prepared["repo"])
        self.options = prepared["backend_options"]
        self.env = {**os.environ, **prepared["env"], "GG_OPTUNA_LOCAL_DIR": str(results / "live"),
                    "PYTHONPATH": os.pathsep.join([prepared["env"]["PYTHONPATH"],
                                                   str(Path(__file__).parents[1])])}

    def option_args(self) -> list[str]:
        return [w for k, v in self.options.items() for w in ("--backend-option", f"{k}={v}")]

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gg_optuna_helpers", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, cwd=self.results)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "gg_optuna_helpers", *args], env=self.env,
                                cwd=self.results, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run_args(self, stage: str, study: str, *extra: str) -> list[str]:
        return ["run", "--stage", stage, "--study-name", study, "--storage",
                str(self.results / "store"), *STUDY_ARGS, *self.option_args(), *extra]

    def succeed(self, *args: str, timeout: float = 300) -> str:
        """Run the CLI; it must exit 0. Its output."""
        done = self.cli(*args, timeout=timeout)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    def study(self, name: str) -> optuna.Study:
        return optuna.load_study(study_name=name,
                                 storage=f"sqlite:///{self.results / 'store' / name / 'optuna.db'}")

    def finished(self, name: str, count: int = 2) -> list[optuna.trial.FrozenTrial]:
        """The study's completed trials, which must be ``count``."""
        trials = self.study(name).trials
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(done) == count, [(t.number, t.state, t.user_attrs.get("failure_log"))
                                    for t in trials]
        return done


def _need_bundles() -> None:
    reason = prepare.missing_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-repo tests, but {reason}.")
        pytest.skip(f"real-repo tests need ../shared: {reason}.")


@pytest.fixture(scope="module", params=["fork", "upstream"])
def real(request, tmp_path_factory) -> RealRepo:
    _need_bundles()
    dest = tmp_path_factory.mktemp(f"real_{request.param}")
    done = subprocess.run([sys.executable, str(HARNESS / "prepare.py"), "--repo", request.param,
                           "--dest", str(dest)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    prepared = json.loads(done.stdout.strip().splitlines()[-1])  # the harness's one JSON line
    return RealRepo(request.param, prepared, dest)


def test_check_repo_is_green(real):
    out = real.succeed("check-repo", str(real.repo), *real.option_args(), "--time-iters", "1")
    assert "PROBLEM" not in out
    for stage in ("meshhead", "gazegaussian"):
        assert f"estimate: {stage}:" in out, out


def epoch_values(trial_dir: Path) -> dict[int, float]:
    path = trial_dir / METRICS
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return {e["epoch"]: e["value"] for e in events if e.get("event") == "epoch"}


def kill_after_first_epoch(trial_dir: Path, child: subprocess.Popen, timeout: float = 240):
    """SIGKILL the study (its whole process group) once the trial has finished epoch 1."""
    deadline = time.monotonic() + timeout
    try:
        while not epoch_values(trial_dir):
            assert child.poll() is None, "the study ended before its first epoch was killed"
            assert time.monotonic() < deadline, f"no epoch finished in {trial_dir}"
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


@pytest.fixture(scope="module")
def meshhead_study(real) -> str:
    """A MeshHead study of 2 trials x 3 epochs whose first trial is SIGKILLed mid-trial, then
    resumed by running the same command again."""
    args = real.run_args("meshhead", "mh", "--max-epochs", "3")
    trial_dir = real.results / "store" / "mh" / "trial_0000"
    kill_after_first_epoch(trial_dir, real.start(*args))
    real.before_kill = epoch_values(trial_dir)
    real.succeed(*args)
    return "mh"


def test_meshhead_study_resumes_after_sigkill(real, meshhead_study):
    resumed = [t for t in real.finished(meshhead_study) if Path(t.user_attrs["trial_dir"]).name == "trial_0000"]
    assert len(resumed) == 1 and resumed[0].number != 0  # the retry of the killed trial 0
    trial, before = resumed[0], real.before_kill
    assert trial.user_attrs["start_epoch"] == max(before) + 1 <= 3, (before, trial.user_attrs)
    assert set(trial.intermediate_values) == {1, 2, 3}
    for epoch, value in before.items():  # what was trained before the kill is kept, not redone
        assert trial.intermediate_values[epoch] == pytest.approx(value)


@pytest.fixture(scope="module")
def gazegaussian_study(real, meshhead_study) -> str:
    dit = DIT_SPACE if real.variant == "fork" else []
    real.succeed(*real.run_args("gazegaussian", "gg", "--meshhead-study", meshhead_study, *dit),
                 timeout=600)
    return "gg"


def test_gazegaussian_study_trains_from_the_best_meshhead(real, gazegaussian_study, tmp_path):
    finished = real.finished(gazegaussian_study)
    for trial in finished:
        parts = metrics(trial)
        assert 0 < parts["ssim"] <= 1 and parts["gaze_error_deg"] >= 0
        _assert_preview_is_the_best_epochs(Path(trial.user_attrs["trial_dir"]), tmp_path)
    if real.variant == "fork":  # the DiT the trial trained is the one it drew
        for trial in finished:
            trained = json.loads((Path(trial.user_attrs["trial_dir"]) / REPO_OPTIONS).read_text())
            for name in ("dit_depth", "dit_num_heads", "dit_patch_size"):
                assert trained[name] == trial.params[name]
            assert trained["use_vae"] is False and trained["shape_coeffs_dim"] == 144


def _assert_preview_is_the_best_epochs(trial_dir: Path, tmp_path: Path) -> None:
    """``preview.png`` shows the samples ``best.pt`` holds (the best epoch's validation)."""
    samples = torch.load(trial_dir / BEST, map_location="cpu", weights_only=False)[
        "trainer"]["preview_samples"]
    assert samples and all(max(image.shape[-2:]) <= 128 for pair in samples for image in pair)
    expected = tmp_path / f"{trial_dir.name}.png"
    write_png(expected, image_grid([list(column) for column in zip(*samples)], scale=1))
    assert (trial_dir / PREVIEW).read_bytes() == expected.read_bytes()


def repo_parser_reads(real: RealRepo, command: str) -> dict:
    """``command`` (``python train_*.py --flag ...``) parsed by that script's own parser."""
    code = ("import json, shlex, sys; words = shlex.split(sys.argv[1]); "
            "script = __import__(words[1][:-3]); "
            "parser = script.auto_argparse_from_class(script.BaseOptions()); "
            "print(json.dumps(vars(parser.parse_args(words[2:]))))")
    done = subprocess.run([sys.executable, "-c", code, command], env=real.env, cwd=real.repo,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def defaults(real: RealRepo, stage: str) -> dict:
    code = (f"import json; from configs.{stage}_options import BaseOptions; "
            "print(json.dumps(vars(BaseOptions())))")
    done = subprocess.run([sys.executable, "-c", code], env=real.env, cwd=real.repo,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("stage", ["meshhead", "gazegaussian"])
def test_exported_command_is_what_the_trial_trained(real, gazegaussian_study, stage):
    name = {"meshhead": "mh", "gazegaussian": gazegaussian_study}[stage]
    out = real.results / f"report_{stage}"
    real.succeed("report", "--storage", str(real.results / "store"), "--study-name", name,
                 "--out", str(out))
    command = (out / "best_command.txt").read_text().splitlines()[0]
    parsed = repo_parser_reads(real, command)
    best = real.study(name).best_trial
    trained = {**defaults(real, stage),
               **json.loads((Path(best.user_attrs["trial_dir"]) / REPO_OPTIONS).read_text())}
    differ = {k: (parsed.get(k), v) for k, v in trained.items()
              if k not in TRIAL_ONLY and parsed.get(k) != v}
    assert not differ, differ
    if stage == "meshhead" and "early_stopping" in trained:
        assert parsed["early_stopping"] is False  # the fork's early-stopping path crashes
    if stage == "gazegaussian":  # a MeshHead file in the repo's own format
        weights = torch.load(parsed["load_meshhead_checkpoint"], map_location="cpu")["meshhead"]
        assert "landmarks_3d_neutral" in weights


# --- the data as the repos name it, and a subject subset (a bare clone: no study) ------------

@pytest.fixture(scope="module", params=["fork", "upstream"])
def clone(request, tmp_path_factory) -> tuple[str, Path]:
    _need_bundles()
    return request.param, prepare.clone(request.param, tmp_path_factory.mktemp("clone"))


def test_the_two_repos_open_differently_named_files(clone):
    """The fork's dataset_name_parser returns "" for eth_xgaze (since its commit 34a742d),
    upstream's "xgaze_": the same subject is subject0000.h5 in one, xgaze_subject0000.h5 in
    the other; the copy looks for both."""
    variant, repo = clone
    source = (repo / "dataloader/eth_xgaze.py").read_text()
    own = {"fork": "", "upstream": "xgaze_"}[variant]
    assert f'if dataset_name == "eth_xgaze":\n        return "{own}"' in source
    assert file_prefix(repo, "eth_xgaze") == own
    names = spellings(repo, "eth_xgaze", "train")
    assert len(names) == 80 and names[f"{own}subject0000.h5"] == list(dict.fromkeys(
        [f"{own}subject0000.h5", "subject0000.h5", "xgaze_subject0000.h5"]))


def test_only_the_fork_adds_intermediate_gaze_passes_1_in_5(clone):
    variant, repo = clone
    options = SimpleNamespace(**inspect(repo).gazegaussian)
    trainer = (repo / "trainer/gazegaussian_trainer.py").read_text()
    if variant == "upstream":
        assert "intermediate" not in trainer and timed_iters(options, 3) == 3
        return
    assert "if batch_index % self.opt.intermediate_gaze_freq == 0:" in trainer
    assert options.use_intermediate_gaze_training and options.intermediate_gaze_freq == 5
    assert timed_iters(options, 3) == 5  # one intermediate-gaze iteration in five timed


def test_a_subset_under_the_other_names_one_folder_down_is_copied_checked_and_read(
        clone, tmp_path):
    """Drive in the fork's Colab layout (ETH-XGaze/train, ETH-XGaze_test/ETH-XGaze_test) with
    the OTHER repo's file names: setup copies only the 3 subjects asked for and the held-out
    ones, links the names this checkout opens, check-repo accepts it, a second run copies
    nothing, and the repo's own dataloader reads exactly the subset through the links."""
    variant, repo = clone
    other = {"fork": "xgaze_", "upstream": ""}[variant]
    train, val = (split_subjects(repo, "eth_xgaze", split) for split in ("train", "val"))
    drive = tmp_path / "drive"
    synthetic.write_dataset(
        {"train": [drive / "ETH-XGaze/train" / f"{other}{k}" for k in train[:5]],
         "val": [drive / "ETH-XGaze_test/ETH-XGaze_test" / f"{other}{k}" for k in val]},
        prepare.frame_indices(repo, "eth_xgaze", len(val)))
    report, said = SetupReport(repo, "pinned"), []
    _copy_data(report, drive / "ETH-XGaze", None, 3, {}, tmp_path / "local", said.append)
    name = file_prefix(repo, "eth_xgaze") + train[0]
    assert "3 files copied (" in said[0] and said[0].endswith(
        f"0 already there; 3 linked under the names the checkout opens (e.g. {name} -> "
        f"train/{other}{train[0]})"), said
    assert "15 files copied" in said[1] and "15 linked" in said[1]
    assert sorted(p.name for p in (report.data / "train").iterdir()) == sorted(
        f"{other}{k}" for k in train[:3])  # 2 more on Drive, not copied
    assert report.subjects == train[:3] and not set(report.subjects) & set(val)
    checked = check_repo(repo, options=report.backend_options(), time_iters=0)
    assert [f.text for f in checked.findings if f.topic == "data"] == [
        f"3 training files in {report.data} (subjects: 3 of 80).",
        f"15 held-out (val) files in {report.val_data}."]
    _copy_data(report, drive / "ETH-XGaze", None, 3, {}, tmp_path / "local", said.append)
    assert "0 files copied (0.00B), 3 already there; 3 linked" in said[2], said[2]
    read = _repo_reads(repo, report, tmp_path)
    assert read["files"] == [str(report.data / f"{file_prefix(repo, 'eth_xgaze')}{k}")
                             for k in train[:3]]
    assert read["frames"] == 3 * prepare.FRAMES["train"] and read["val"] > 0


def _repo_reads(repo: Path, report, tmp_path: Path) -> dict:
    """What the repo's own GazeDataset opens for the report's subset (harness environment)."""
    prepare.ensure_site()
    env = {**os.environ, **prepare.environment(tmp_path / "torch_home")}
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(Path(__file__).parents[1])])
    code = ("import importlib, json, sys; from pathlib import Path; "
            "from gg_optuna_helpers.backends.gazegaussian.checkout import enter; "
            "from gg_optuna_helpers.backends.gazegaussian.data import train_set; "
            "root, data, val, keys = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]; "
            "enter(root); eth = importlib.import_module('dataloader.eth_xgaze'); "
            "opt = importlib.import_module('configs.gazegaussian_options').BaseOptions(); "
            "ds = train_set(eth, opt, Path(data), 'eth_xgaze', keys.split(',')); item = ds[0]; "
            "v = eth.get_val_loader(opt, data_dir=val, batch_size=1, num_val_images=2, "
            "dataset_name='eth_xgaze', num_workers=0, evaluate=None).dataset; "
            "print(json.dumps({'files': ds.file_path_list, 'frames': len(ds), 'val': len(v)}))")
    done = subprocess.run([sys.executable, "-c", code, str(repo), str(report.data),
                           str(report.val_data), ",".join(report.subjects)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
