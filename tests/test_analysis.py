"""Analysis on real SQLite studies: exact summary numbers, each diagnostic, plots, exports."""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import struct
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from gg_optuna_helpers.analysis import (
    diagnose,
    export_best_config,
    export_plots,
    format_summary,
    summarize,
    write_report,
)
from gg_optuna_helpers.cli import build_parser
from gg_optuna_helpers.errors import ConfigError
from gg_optuna_helpers.spaces import parse_edit

CHROMIUM = "/usr/bin/chromium"
DISTS = {"lr": FloatDistribution(1e-5, 1e-2, log=True),
         "vgg_importance": FloatDistribution(0.05, 0.5),
         "dit_depth": CategoricalDistribution([4, 6, 8])}
MESH_DISTS = {"lr": FloatDistribution(1e-5, 1e-2, log=True),
              "batch_size": CategoricalDistribution([1, 2]),
              "shape_mlp_hidden": CategoricalDistribution([128, 256, 384]),
              "pose_mlp_hidden": CategoricalDistribution([64, 128, 256]),
              "eye_mlp_hidden": CategoricalDistribution([64, 128, 256])}

optuna.logging.set_verbosity(optuna.logging.ERROR)


def new_study(tmp_path: Path, name: str = "study", *, stage: str = "gazegaussian",
              backend: str = "mini") -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                direction="minimize")
    for key, value in {"stage": stage, "backend": backend, "max_epochs": 10}.items():
        study.set_user_attr(key, value)
    return study


def add(study: optuna.Study, state: TrialState = TrialState.COMPLETE, value: float | None = None,
        *, lr: float = 1e-3, w: float = 0.2, depth: int = 6, epochs: int = 10,
        speed: float = 60.0, **attrs) -> None:
    """One finished trial as the runner records it (params, per-epoch reports, user attrs)."""
    curve = {e: (value if value is not None else 1.0) + 1.0 / e for e in range(1, epochs + 1)}
    study.add_trial(create_trial(
        state=state, value=value, params={"lr": lr, "vgg_importance": w, "dit_depth": depth},
        distributions=DISTS, intermediate_values=curve,
        user_attrs={"epochs": epochs, "seconds_per_epoch": speed, "max_epochs": 10, **attrs}))


def mixed_study(tmp_path: Path) -> optuna.Study:
    """Baseline, a better trial, a pruned, an early-stopped, an OOM and a diverged trial."""
    study = new_study(tmp_path, "mixed")
    add(study, value=1.0, baseline=True)
    add(study, value=0.8, lr=9.9e-3)
    add(study, TrialState.PRUNED, epochs=3, pruned_at=3)
    add(study, TrialState.FAIL, epochs=1, speed=120.0, depth=8, failure="oom")
    add(study, value=0.9, w=0.3, epochs=6, early_stopped_at=6)
    add(study, TrialState.FAIL, epochs=2, lr=5e-3, failure="diverged")
    return study


def healthy_study(tmp_path: Path) -> optuna.Study:
    """Clear gain over the baseline, best inside its ranges, one pruned trial, no failures."""
    study = new_study(tmp_path, "healthy")
    add(study, value=1.0, baseline=True)
    add(study, value=0.7, lr=1e-3, w=0.25, depth=6)
    add(study, value=0.85, lr=3e-4, w=0.15, depth=4)
    add(study, value=0.9, lr=2e-4, w=0.35, depth=6)
    add(study, value=0.95, lr=5e-5, w=0.4, depth=4)
    add(study, TrialState.PRUNED, lr=1e-4, w=0.45, epochs=4, pruned_at=4)
    return study


def codes(study: optuna.Study) -> list[str]:
    return [f.code for f in diagnose(study)]


# --- summarize -------------------------------------------------------------------------------

def test_summarize_counts_gain_and_gpu_time_exactly(tmp_path):
    s = summarize(mixed_study(tmp_path))
    assert (s["trials"], s["finished"]) == (6, 4)
    assert s["states"] == {"complete": 3, "pruned": 1, "fail": 2}
    assert s["failures"] == {"oom": 1, "diverged": 1}
    assert s["best"] == {"number": 1, "value": 0.8,
                         "params": {"lr": 9.9e-3, "vgg_importance": 0.2, "dit_depth": 6}}
    assert s["baseline"] == {"number": 0, "value": 1.0, "state": "complete"}
    assert s["improvement"] == pytest.approx(0.2)
    # Trained 10+10+3+1+6+2 = 32 epochs; the pruned (3) and early-stopped (6) trials would have
    # run 10 each, failures count as trained: 10+10+10+1+10+2 = 43.
    gpu = s["gpu"]
    assert (gpu["epochs_trained"], gpu["epochs_if_full"]) == (32, 43)
    assert gpu["epochs_saved_fraction"] == round(1 - 32 / 43, 4)
    # Seconds: 31 epochs x 60 s + 1 epoch x 120 s = 1980; full: 42 x 60 + 120 = 2640.
    assert gpu["hours_trained"] == round(1980 / 3600, 4)
    assert gpu["hours_if_full"] == round(2640 / 3600, 4)
    assert gpu["hours_saved"] == round(660 / 3600, 4)
    json.dumps(s)  # plain JSON


def test_gpu_time_of_a_resumed_retry_counts_only_what_is_left(tmp_path):
    """An attempt interrupted after 4 epochs; its retry resumes at 5 and is pruned at 7 of 10."""
    study = new_study(tmp_path)
    add(study, TrialState.FAIL, epochs=4, failure="interrupted")
    study.add_trial(create_trial(  # the retry: inherited reports 1..7, 3 epochs trained itself
        state=TrialState.PRUNED, params={"lr": 1e-3, "vgg_importance": 0.2, "dit_depth": 6},
        distributions=DISTS, intermediate_values={e: 1.0 for e in range(1, 8)},
        user_attrs={"epochs": 3, "pruned_at": 7, "start_epoch": 5, "seconds_per_epoch": 60.0}))
    gpu = summarize(study)["gpu"]
    assert (gpu["epochs_trained"], gpu["epochs_if_full"]) == (7, 10)
    assert gpu["hours_saved"] == round(3 * 60 / 3600, 4)


def test_summarize_study_without_completed_trials(tmp_path):
    study = new_study(tmp_path)
    add(study, TrialState.FAIL, epochs=1, failure="crashed", baseline=True)
    s = summarize(study)
    assert s["best"] is None and s["improvement"] is None
    assert s["baseline"]["state"] == "fail"
    assert "No completed trial yet." in format_summary(s)


def test_a_failure_without_a_reason_is_shown_as_disconnected(tmp_path):
    """The runtime died before recording why: one name for it, in status and report alike."""
    study = new_study(tmp_path)
    add(study, value=1.0, baseline=True)
    add(study, TrialState.FAIL, epochs=1)
    s = summarize(study)
    assert s["failures"] == {"disconnected": 1} and (s["trials"], s["finished"]) == (2, 1)
    assert "failures: disconnected 1" in format_summary(s)


def test_baseline_is_the_completed_retry_of_trial_0(tmp_path):
    """A heartbeat retry copies user attrs: the completed copy is the baseline."""
    study = new_study(tmp_path)
    add(study, TrialState.FAIL, epochs=2, failure="interrupted", baseline=True)
    add(study, value=0.5)
    add(study, value=2.0, baseline=True)
    s = summarize(study)
    assert s["baseline"] == {"number": 2, "value": 2.0, "state": "complete"}
    assert s["improvement"] == pytest.approx(0.75)


def test_format_summary_is_short_and_human(tmp_path):
    text = format_summary(summarize(mixed_study(tmp_path)))
    assert "Best: trial 1, value 0.8 (+20.0% vs baseline trial 0: 1)" in text
    assert "32 of 43 epochs trained (26% saved" in text
    assert "failures: oom 1, diverged 1" in text
    assert len(text.splitlines()) <= 6


# --- diagnose --------------------------------------------------------------------------------

def test_healthy_study_has_no_findings(tmp_path):
    assert diagnose(healthy_study(tmp_path)) == []


def test_most_trials_pruned(tmp_path):
    study = new_study(tmp_path)
    add(study, value=1.0, baseline=True)
    add(study, value=0.5, lr=1e-3, w=0.25)
    for i in range(4):
        add(study, TrialState.PRUNED, lr=1e-4 * (i + 1), epochs=2, pruned_at=2)
    found = {f.code: f.message for f in diagnose(study)}
    assert "mostly_pruned" in found
    assert "4 of 6 finished trials were pruned" in found["mostly_pruned"]
    assert "n_warmup_steps" in found["mostly_pruned"]


def test_out_of_memory_names_the_shared_cause(tmp_path):
    study = healthy_study(tmp_path)
    add(study, TrialState.FAIL, depth=8, epochs=0, failure="oom")
    add(study, TrialState.FAIL, depth=8, w=0.3, epochs=1, failure="oom")
    msg = {f.code: f.message for f in diagnose(study)}["oom"]
    assert msg.startswith("2 trial(s) ran out of GPU memory (each had dit_depth>=8)")
    assert "batch_size" in msg


def test_best_at_the_edge_of_a_log_range(tmp_path):
    study = healthy_study(tmp_path)
    add(study, value=0.1, lr=9.8e-3, w=0.25)
    found = [f for f in diagnose(study) if f.code == "edge_of_range"]
    assert len(found) == 1
    assert "lr=0.0098 sits at the upper edge" in found[0].message
    assert "space.replace(lr=(1e-05, 0.1))" in found[0].message


def test_best_at_the_lower_edge_of_a_linear_range(tmp_path):
    study = healthy_study(tmp_path)
    add(study, value=0.1, lr=1e-3, w=0.06)
    found = [f for f in diagnose(study) if f.code == "edge_of_range"]
    assert [f.message.split(" sits")[0] for f in found] == ["The best vgg_importance=0.06"]
    assert "space.replace(vgg_importance=(0, 0.5))" in found[0].message


def test_no_gain_over_the_baseline(tmp_path):
    study = new_study(tmp_path)
    add(study, value=1.0, baseline=True)
    add(study, value=1.2, lr=2e-3, w=0.3)
    add(study, value=1.1, lr=5e-4, w=0.15)
    assert codes(study) == ["no_gain"]


def test_few_trials_say_nothing_about_ranges_or_gain(tmp_path):
    study = new_study(tmp_path)
    add(study, value=1.0, baseline=True, lr=9.9e-3)
    add(study, value=1.1, lr=2e-3)
    assert diagnose(study) == []


def test_diverged_trials_lower_the_lr_ceiling(tmp_path):
    study = healthy_study(tmp_path)
    add(study, TrialState.FAIL, lr=8e-3, epochs=2, failure="diverged")
    add(study, TrialState.FAIL, lr=4e-3, epochs=1, failure="diverged")
    msg = {f.code: f.message for f in diagnose(study)}["diverged"]
    assert "2 trial(s) diverged" in msg and "lr=0.004" in msg
    assert "space.replace(lr=(1e-05, 0.002))" in msg


def test_the_suggested_lr_ceiling_keeps_the_best_trial(tmp_path):
    study = new_study(tmp_path)
    add(study, value=0.5, lr=1e-4)
    add(study, value=0.3, lr=5e-3)  # the best trial ran above the smallest lr that diverged
    add(study, TrialState.FAIL, lr=4e-3, epochs=1, failure="diverged")
    msg = {f.code: f.message for f in diagnose(study)}["diverged"]
    assert "space.replace(lr=(1e-05, 0.005))" in msg


def test_each_finding_is_one_sentence(tmp_path):
    for f in diagnose(mixed_study(tmp_path)):
        assert f.message.endswith(".") and ". " not in f.message[:-1], f.message


# --- plots -----------------------------------------------------------------------------------

def png_size(path: str) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                    reason="needs Debian chromium at /usr/bin/chromium (apt-get install chromium)")
def test_plots_as_html_and_real_png_images(tmp_path):
    result = export_plots(healthy_study(tmp_path), tmp_path / "plots", chrome=CHROMIUM)
    names = {"history", "importances", "parallel_coordinate", "intermediate_values", "contour",
             "timeline"}
    assert set(result["html"]) == names and set(result["png"]) == names
    assert result["skipped"] == {} and result["note"] is None
    assert set(result["importances"]) == set(DISTS)
    for name in names:
        assert "Plotly.newPlot" in Path(result["html"][name]).read_text()
        width, height = png_size(result["png"][name])
        assert width > 100 and height > 100
        assert Path(result["png"][name]).stat().st_size > 5_000
    assert (tmp_path / "plots" / "plotly.min.js").stat().st_size > 1_000_000  # offline HTML


def test_html_only_with_one_clear_line_when_chrome_is_hidden(tmp_path, monkeypatch):
    monkeypatch.setenv("GG_OPTUNA_CHROME", "none")
    result = export_plots(healthy_study(tmp_path), tmp_path / "plots")
    assert result["png"] == {} and len(result["html"]) == 6
    assert not list((tmp_path / "plots").glob("*.png"))
    assert "\n" not in result["note"] and "apt-get install chromium" in result["note"]
    assert "plotly_get_chrome -y" in result["note"]


def test_a_wrong_chrome_path_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="No executable Chrome at"):
        export_plots(healthy_study(tmp_path), tmp_path, chrome=tmp_path / "nochrome")


def test_few_trials_skip_importances_with_a_reason(tmp_path):
    study = new_study(tmp_path)
    add(study, value=1.0, baseline=True)
    add(study, TrialState.PRUNED, epochs=2, pruned_at=2)
    result = export_plots(study, tmp_path / "plots", chrome=False)
    assert "too few completed trials (1)" in result["skipped"]["importances"]
    assert "slice" in result["html"] and "contour" not in result["html"]
    assert result["skipped"]["parallel_coordinate"].startswith("no parameter varied")


def test_empty_study_writes_nothing_and_says_why(tmp_path):
    result = export_plots(new_study(tmp_path), tmp_path / "plots", chrome=False)
    assert result["html"] == {} and result["png"] == {}
    assert result["skipped"]["timeline"] == "the study has no trials"


# --- best configuration ----------------------------------------------------------------------

def upstream_parser(defaults: dict) -> argparse.ArgumentParser:
    """GazeGaussian's train_*.py ``auto_argparse_from_class`` (upstream, commit bb8fac9)."""
    parser = argparse.ArgumentParser()
    for attribute, value in defaults.items():
        if isinstance(value, bool):
            action = "store_true" if not value else "store_false"
            parser.add_argument(f"--{attribute}", action=action)
        elif isinstance(value, list):
            parser.add_argument(f"--{attribute}", type=type(value[0]), nargs="+", default=value)
        else:
            parser.add_argument(f"--{attribute}", type=type(value), default=value)
    return parser


def test_meshhead_command_parses_with_the_repo_parser(tmp_path):
    study = new_study(tmp_path, "mesh", stage="meshhead")
    params = {"lr": 0.0012345678, "batch_size": 2, "shape_mlp_hidden": 384,
              "pose_mlp_hidden": 64, "eye_mlp_hidden": 256}
    study.add_trial(create_trial(value=0.5, params=params, distributions=MESH_DISTS))
    paths = export_best_config(study, tmp_path / "out")
    command = Path(paths["command"]).read_text().splitlines()[0]
    words = shlex.split(command)
    assert words[:2] == ["python", "train_meshhead.py"]
    defaults = {"lr_net": 1e-3, "lr_lmk": 1e-4, "batch_size": 1,
                "shape_color_mlp": [272, 256, 256, 32],
                "shape_deform_mlp": [171, 256, 256, 256, 256, 256, 3],
                "pose_color_mlp": [182, 128, 32], "pose_deform_mlp": [81, 256, 256, 3],
                "eye_color_mlp": [146, 128, 32], "eye_deform_mlp": [45, 128, 128, 3],
                "eye_deform_mlp_rotate": [45, 128, 128, 4]}
    opt = upstream_parser(defaults).parse_args(words[2:])  # no 'lr', no unknown flag
    assert opt.lr_net == 0.0012345678 and opt.lr_lmk == pytest.approx(0.00012345678)
    assert opt.batch_size == 1
    # Hidden widths scale by value / default, as the gazegaussian backend trains them.
    assert opt.shape_color_mlp == [272, 384, 384, 32]
    assert opt.shape_deform_mlp == [171, 384, 384, 384, 384, 384, 3]
    assert opt.pose_color_mlp == [182, 64, 32] and opt.pose_deform_mlp == [81, 128, 128, 3]
    assert opt.eye_deform_mlp_rotate == [45, 256, 256, 4]
    text = Path(paths["command"]).read_text()
    assert "only runs batch_size 1" in text and "opt.lr_net = 0.0012345678" in text
    config = yaml.safe_load(Path(paths["yaml"]).read_text())
    assert config["params"] == params and config["repo_options"]["lr_net"] == 0.0012345678


def test_gazegaussian_command_names_options_one_to_one(tmp_path):
    study = healthy_study(tmp_path)
    command = Path(export_best_config(study, tmp_path, repo_script="tools/train.py")["command"])
    words = shlex.split(command.read_text().splitlines()[0])
    defaults = {"lr": 1e-4, "vgg_importance": 0.1, "dit_depth": 6, "use_vae": True,
                "neural_renderer_type": "dit"}  # the DiT fork's defaults
    opt = upstream_parser(defaults).parse_args(words[2:])
    assert words[1] == "tools/train.py"
    assert (opt.lr, opt.vgg_importance, opt.dit_depth, opt.use_vae) == (1e-3, 0.25, 6, False)
    assert opt.neural_renderer_type == "dit"


def test_mini_export_also_says_how_to_train_it_again_on_mini(tmp_path):
    study = healthy_study(tmp_path)
    text = Path(export_best_config(study, tmp_path)["command"]).read_text()
    assert text.startswith("python train_gazegaussian.py")  # the real run's starting point
    assert "# Found on the embedded mini backend" in text
    [line] = [x for x in text.splitlines() if "train it again on the mini backend" in x]
    words = shlex.split(line.split(": ", 1)[1])
    assert words[:3] == ["python", "-m", "gg_optuna_helpers"]
    args = build_parser().parse_args(words[3:])
    assert (args.command, args.backend, args.stage) == ("run", "mini", "gazegaussian")
    assert dict(parse_edit(e) for e in args.set) == study.best_trial.params  # each one fixed


def test_no_best_config_without_a_completed_trial(tmp_path):
    with pytest.raises(ConfigError, match="no completed trial yet"):
        export_best_config(new_study(tmp_path), tmp_path)


# --- the whole report ------------------------------------------------------------------------

def test_report_for_a_study_with_failures_pruned_and_few_trials(tmp_path):
    mixed_study(tmp_path)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    path = write_report(storage, "mixed", tmp_path / "report", chrome=False)
    out = tmp_path / "report"
    assert path == out / "summary.json"
    summary = json.loads(path.read_text())
    assert [f["code"] for f in summary["findings"]] == ["oom", "edge_of_range", "diverged"]
    assert summary["gpu"]["epochs_trained"] == 32
    markdown = (out / "summary.md").read_text()
    assert "**oom**" in markdown and "python train_gazegaussian.py --lr 0.0099" in markdown
    assert (out / "best_config.yaml").exists() and (out / "best_command.txt").exists()
    assert (out / "plots" / "history.html").exists()


def test_report_accepts_a_storage_object_and_an_unfinished_study(tmp_path):
    study = new_study(tmp_path, "fresh")
    add(study, TrialState.FAIL, epochs=1, failure="oom", baseline=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    path = write_report(storage, "fresh", tmp_path / "r", chrome=False)
    summary = json.loads(path.read_text())
    assert summary["best_config"] is None and summary["findings"][0]["code"] == "oom"
    assert not (tmp_path / "r" / "best_command.txt").exists()
    assert "has no completed trial yet" in (tmp_path / "r" / "summary.md").read_text()


def test_report_reads_a_results_folder_and_refuses_what_is_no_storage(tmp_path):
    folder = tmp_path / "gg_results"
    (folder / "healthy").mkdir(parents=True)
    healthy_study(folder / "healthy")  # <folder>/<study>/optuna.db, the folder layout
    path = write_report(folder, "healthy", tmp_path / "r", chrome=False)
    assert json.loads(path.read_text())["best"]["value"] == 0.7
    with pytest.raises(ConfigError, match="A storage must be a results folder"):
        write_report(42, "healthy", tmp_path / "r")


def test_analysis_knows_no_backend_and_backends_import_one_way():
    """analysis asks the registry; gazegaussian never imports mini; spaces imports no backend."""
    package = Path(__file__).parents[1] / "gg_optuna_helpers"

    def imported(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        return {"." * n.level + (n.module or "") for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom)}

    for file in (package / "analysis").glob("*.py"):
        assert {m for m in imported(file) if "backends" in m} <= {"..backends"}, file
    for file in (package / "backends" / "gazegaussian").glob("*.py"):
        assert not any("mini" in m for m in imported(file)), file
    assert not any("backends" in m for m in imported(package / "spaces.py"))


def test_report_for_an_unknown_study_name(tmp_path):
    new_study(tmp_path, "real-name")
    with pytest.raises(ConfigError, match="No study named 'typo'"):
        write_report(f"sqlite:///{tmp_path / 'optuna.db'}", "typo", tmp_path / "r")
