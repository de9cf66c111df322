"""The notebooks: valid, stripped, thin, one step per heading, pinned; executed for real (nbmake,
nbclient) with their parameters overridden papermill-style, never through the environment."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import ROOT
from nbparams import inject

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = ["00_install.ipynb", "01_meshhead_study.ipynb", "02_gazegaussian_study.ipynb",
         "03_analysis.ipynb"]
COLAB_ONLY = ("!pip", "drive.mount", "google.colab import")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
HARNESS = ROOT / "tests" / "real_repo"
SMALL = {"N_TRIALS": 2, "MAX_EPOCHS": 2, "TUNNEL": "none"}  # CI's small studies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def params_of(nb: nbformat.NotebookNode) -> str:
    [cell] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return cell.source


def test_the_four_notebooks_exist_in_order():
    assert [p.name for p in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_valid_stripped_badged_and_thin(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs not stripped"
    assert "widgets" not in nb.metadata, "widget state saved"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "colab.research.google.com" in first.source
    assert f"notebooks/{path.name}" in first.source and "colab-badge.svg" in first.source
    for cell in code:
        if any(marker in cell.source for marker in COLAB_ONLY):
            assert '"google.colab" in sys.modules' in cell.source, cell.source
        logic = [line for line in cell.source.splitlines()
                 if line.lstrip().startswith(("def ", "class ", "for ", "while ", "try:"))]
        assert not logic, f"notebook cells call the package, they hold no logic: {logic}"
    if path.name != "00_install.ipynb":
        assert "#@param" in params_of(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_heading_and_a_title_per_step_a_pinned_install_and_a_gpu_only_where_needed(path):
    nb = nbformat.read(path, as_version=4)
    for before, cell in zip(nb.cells, nb.cells[1:]):
        if cell.cell_type == "code":
            assert cell.source.startswith("#@title "), cell.source  # Colab shows a form title
            if "injected" not in str(cell.metadata):  # Colab's table of contents: one per step
                assert before.cell_type == "markdown" and re.match(r"#+ ", before.source)
    [install] = [c.source for c in nb.cells if "!pip install" in c.source]
    assert f'INSTALL_REF = "v{VERSION}"  #@param' in install
    assert "gg_optuna_helpers@{INSTALL_REF}" in install
    wants_gpu = path.name in ("01_meshhead_study.ipynb", "02_gazegaussian_study.ipynb")
    assert (nb.metadata.get("accelerator") == "GPU") == wants_gpu


def test_the_forms_offer_the_tunnel_the_meshhead_study_and_the_study_name():
    forms = {p.name: params_of(nbformat.read(p, as_version=4)) for p in NOTEBOOKS[1:]}
    for name in NAMES[1:3]:
        assert 'TUNNEL = "colab"  #@param ["colab", "ngrok", "none"]' in forms[name]
        assert 'RESULTS_DIR = ""' in forms[name] and "DASHBOARD_PORT = 8081" in forms[name]
    assert 'MESHHEAD_STUDY = ""' in forms[NAMES[2]] and "CHANGE_MESHHEAD = False" in forms[NAMES[2]]
    assert 'STUDY_NAME = ""' in forms[NAMES[3]] and 'RESULTS_DIR = ""' in forms[NAMES[3]]
    for path in NOTEBOOKS[1:3]:
        cells = nbformat.read(path, as_version=4).cells
        [at] = [i for i, c in enumerate(cells) if "setup_backend(" in c.source]
        assert "setup_backend(BACKEND," in cells[at].source  # a no-op unless gazegaussian
        assert cells[at - 1].source.startswith("## 4. Set up the real backend")
        settings = next(c.source for c in cells if c.source.startswith("## 2. Settings"))
        assert all(f"`{p}`" in settings for p in ("asha", "patient", "hyperband", "median", "curve"))


def test_the_real_backend_setup_cell_is_a_no_op_on_mini_and_refuses_in_one_sentence(tmp_path):
    from gg_optuna_helpers import ConfigError
    from gg_optuna_helpers.notebook import setup_backend

    options = {"repo": "/r", "data": "/d"}
    assert setup_backend("mini", options, variant="fork") == options
    assert not (tmp_path / "GazeGaussian").exists()
    with pytest.raises(ConfigError) as refused:
        setup_backend("gazegaussian", {"repo": str(tmp_path / "GazeGaussian")},
                      variant="not-a-variant")
    assert "\n" not in str(refused.value) and "not-a-variant" in str(refused.value)


def test_the_library_reads_no_environment_overrides_of_a_form(tmp_path, monkeypatch):
    """CI used to shrink studies through GG_NOTEBOOK_* variables that silently beat the form."""
    from gg_optuna_helpers.notebook import notebook_config, results_folder

    monkeypatch.setenv("GG_NOTEBOOK_TRIALS", "2")
    monkeypatch.setenv("GG_NOTEBOOK_EPOCHS", "2")
    monkeypatch.setenv("GG_RESULTS_DIR", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)
    assert results_folder() == tmp_path / "gg_results"
    assert results_folder(str(tmp_path / "form")) == tmp_path / "form"
    config = notebook_config("meshhead", results=tmp_path / "form", n_trials=7, max_epochs=9)
    assert (config.n_trials, config.max_epochs) == (7, 9)
    sources = "".join(p.read_text() for p in (ROOT / "gg_optuna_helpers").rglob("*.py"))
    assert "GG_NOTEBOOK" not in sources and "GG_RESULTS_DIR" not in sources


def test_nbmake_runs_all_four_in_order(tmp_path):
    """Real execution in a Jupyter kernel on the mini backend, shrunk by injected parameters."""
    results = tmp_path / "results"
    copies = [inject(p, tmp_path / p.name, RESULTS_DIR=str(results), **SMALL,
                     DASHBOARD_PORT=free_port()) if p.name.startswith(("01", "02"))
              else inject(p, tmp_path / p.name, RESULTS_DIR=str(results))
              if p.name.startswith("03") else tmp_path / p.name for p in NOTEBOOKS]
    copies[0].write_bytes(NOTEBOOKS[0].read_bytes())
    env = dict(os.environ, PYTHONPATH=str(ROOT), GG_OPTUNA_CHROME="none")  # Colab: no Chrome
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--nbmake", "--nbmake-timeout=600", "--overwrite", *map(str, copies)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout
    for stage in ("meshhead", "gazegaussian"):
        summary = json.loads((results / f"report_mini_{stage}" / "summary.json").read_text())
        assert summary["study_name"] == f"mini_{stage}"
        assert (results / f"report_mini_{stage}" / "best_config.yaml").exists()
    # 03 without Chrome: plotly's own renderer inline, the best config and a download link
    shown = json.dumps([c.get("outputs") for c in nbformat.read(copies[3], 4).cells])
    assert shown.count("plotly") > 10 and "open the HTML files" not in shown
    assert "Download best_config.yaml" in shown and "data:text/yaml;base64," in shown
    assert "python train_gazegaussian.py" in shown


def kernel_run(nb: nbformat.NotebookNode, cwd: Path, passes: list[list[int]]) -> None:
    """Execute the given cell indices in ONE kernel, pass after pass (Run all, again...)."""
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    with client.setup_kernel():
        for cells in passes:
            for i in cells:
                client.execute_cell(nb.cells[i], i)


def test_run_all_twice_after_an_interrupt_reuses_the_dashboard_and_never_names_an_error(
        tmp_path):
    """Pass 1 stops before the study cell (an interrupt) and still runs the status cell;
    pass 2 is Run all in the same kernel: the dashboard cell reuses its server."""
    copy = inject(NOTEBOOKS[1], tmp_path / "01.ipynb", RESULTS_DIR=str(tmp_path / "r"),
                  **SMALL, DASHBOARD_PORT=free_port())
    nb = nbformat.read(copy, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    [study_cell] = [i for i in code if "run_study(config)" in nb.cells[i].source]
    kernel_run(nb, tmp_path, [[i for i in code if i != study_cell], code])
    text = [("".join(o.get("text", "") for o in c.outputs), c.source) for c in nb.cells
            if c.cell_type == "code"]
    status = next(out for out, src in text if "show_status" in src)
    dash = next(out for out, src in text if "start_dashboard" in src)
    assert "already running at" in dash and "(reused)" in dash
    assert "Study 'mini_meshhead'" in status and "2 finished" in status


def test_02_refuses_a_missing_meshhead_study_in_one_sentence(tmp_path):
    copy = inject(NOTEBOOKS[2], tmp_path / "02.ipynb", RESULTS_DIR=str(tmp_path / "r"),
                  **SMALL, MESHHEAD_STUDY="my_meshhead")
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError):
        client.execute()
    [error] = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if o.output_type == "error"]
    assert error.ename == "ConfigError" and len(error.traceback) == 1  # no traceback
    assert error.evalue.startswith("No MeshHead study named 'my_meshhead' in this storage")
    assert "MESHHEAD_STUDY" in error.evalue


def test_the_notebook_setting_reaches_the_real_backend(tmp_path):
    """BACKEND="gazegaussian" in the form builds a config for a (contract-fixture) checkout."""
    import importlib.util

    from gg_optuna_helpers import ConfigError
    from gg_optuna_helpers.notebook import notebook_config

    spec = importlib.util.spec_from_file_location(
        "contract_build", ROOT / "tests/fixtures/gazegaussian_contract/build.py")
    contract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(contract)
    repo = contract.make_checkout(tmp_path / "repo", "fork")
    config = notebook_config("gazegaussian", results=tmp_path / "r", backend="gazegaussian",
                             options={"repo": str(repo)}, quick_test=True)
    assert config.backend == "gazegaussian" and config.backend_options["repo"] == str(repo)
    assert config.study_name == "gazegaussian_gazegaussian_test" and config.n_trials == 5
    assert config.meshhead_study == "gazegaussian_meshhead_test"
    assert config.space["dit_depth"].choices == (4, 6, 8, 12)
    with pytest.raises(ConfigError):
        notebook_config("meshhead", results=tmp_path / "r", backend="gazegaussian",
                        options={"repo": str(tmp_path / "missing")})


def test_backend_options_are_read_as_the_cli_reads_them_and_refused_in_one_sentence():
    from gg_optuna_helpers import ConfigError
    from gg_optuna_helpers.notebook import form_options
    from gg_optuna_helpers.values import parse_assignments

    items = ["opt.pred_img_size=256", "opt.use_intermediate_gaze_training=True",
             "val_samples=20", "opt.geo_mlp=[27, 64, 132]", "val_split=frames"]
    options = form_options(", ".join(items), repo=" /r ", data="/d", val_data="", subjects="3")
    assert options == {"repo": "/r", "data": "/d", "subjects": 3,
                       **parse_assignments(items, what="--backend-option")}
    assert options["opt.use_intermediate_gaze_training"] is True
    assert options["val_split"] == "frames"
    assert form_options("", subjects="[0, 3]") == {"subjects": [0, 3]} and form_options() == {}
    for text, words in [
            ("opt.pred_img_size", "BACKEND_OPTIONS takes key=value, key=value (e.g. "
                                  "opt.pred_img_size=256, val_samples=20), but got "
                                  "'opt.pred_img_size'."),
            ("val_samples=2, val_samples=3", "BACKEND_OPTIONS sets val_samples twice"),
            ("data=/x", "BACKEND_OPTIONS sets data, which the form field DATA_PATH sets"),
            ("subjects=3", "BACKEND_OPTIONS sets subjects, which the form field SUBJECTS sets"),
            ("opt.geo_mlp=[27, 64", "BACKEND_OPTIONS opens a [ it does not close")]:
        with pytest.raises(ConfigError) as refused:
            form_options(text)
        assert str(refused.value).startswith(words) and "\n" not in str(refused.value)


PRELUDE = """import functools, sys
from pathlib import Path
sys.path[:0] = [{tests!r}, {harness!r}]
from setup_standins import CPU
from wheels import StandinWheels
import gg_optuna_helpers.setup_repo as setup
# TEST STAND-INS: a CPU torch has no CUDA to build with, so the harness's CPU packages are the
# wheels, installed into a folder of their own; check-repo times {iters} iteration(s)
setup.setup_repo = functools.partial(setup.setup_repo, builder=StandinWheels(), toolchain=CPU,
                                     site=Path({site!r}), pypi=False, time_iters={iters})
"""


def _harness(dest: Path) -> dict:
    """The fork prepared by tests/real_repo/prepare.py (its checkout, data and environment)."""
    sys.path.insert(0, str(HARNESS))
    import prepare

    reason = prepare.missing_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-repo notebook test, but {reason}.")
        pytest.skip(f"the real-repo notebook test needs ../shared: {reason}.")
    done = subprocess.run([sys.executable, str(HARNESS / "prepare.py"), "--repo", "fork",
                           "--dest", str(dest)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _drive(prepared: dict, drive: Path) -> list[str]:
    """Move the harness's data to a Drive: the first 5 training subjects in the fork's Colab
    layout (ETH-XGaze/train) under upstream's names (xgaze_), the held-out ones one folder
    down in another folder; the training keys, in the split list's order."""
    options = prepared["backend_options"]
    split = json.loads((Path(prepared["repo"]) / "configs/dataset/eth_xgaze/"
                        "train_test_split.json").read_text())
    for key in split["train"][:5]:
        (drive / "ETH-XGaze/train").mkdir(parents=True, exist_ok=True)
        os.rename(Path(options["data"]) / key, drive / "ETH-XGaze/train" / f"xgaze_{key}")
    for key in split["val"]:
        (drive / "held_out/ETH-XGaze_test").mkdir(parents=True, exist_ok=True)
        os.rename(Path(options["val_data"]) / key, drive / "held_out/ETH-XGaze_test" / key)
    shutil.rmtree(Path(options["data"]).parent)  # where setup copies to: next to the checkout
    return split["train"]


@pytest.mark.slow
def test_the_form_reaches_the_real_backend_in_01_and_02(tmp_path):
    """01 then 02 under nbmake with BACKEND="gazegaussian" on the real-repo harness (the fork,
    its CPU stand-ins): VAL_DATA, SUBJECTS and BACKEND_OPTIONS reach setup (only the subset
    is copied, under the names the fork opens), check-repo (its estimate with MAX_EPOCHS and
    N_TRIALS) and the trials (their spec, the repo options they trained with, their log)."""
    prepared = _harness(tmp_path / "h")
    repo, drive, results = Path(prepared["repo"]), tmp_path / "drive", tmp_path / "results"
    keys = _drive(prepared, drive)
    extra = {k: v for k, v in prepared["backend_options"].items()
             if k not in ("repo", "data", "val_data")}
    params = dict(BACKEND="gazegaussian", REPO_PATH=str(repo), DATA_PATH=str(drive / "ETH-XGaze"),
                  VAL_DATA=str(drive / "held_out"), SUBJECTS="3",
                  BACKEND_OPTIONS=", ".join(f"{k}={v}" for k, v in extra.items()),
                  RESULTS_DIR=str(results), N_TRIALS=1, MAX_EPOCHS=1, TUNNEL="none")
    copies = [inject(p, tmp_path / p.name, **params, DASHBOARD_PORT=free_port(),
                     prelude=PRELUDE.format(tests=str(ROOT / "tests"), harness=str(HARNESS),
                                            site=str(tmp_path / "site"), iters=iters))
              for p, iters in zip(NOTEBOOKS[1:3], (1, 0))]  # 02: no second timing run
    env = {**os.environ, **prepared["env"], "GG_OPTUNA_CHROME": "none",
           "PYTHONPATH": os.pathsep.join([prepared["env"]["PYTHONPATH"], str(ROOT)])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--nbmake", "--nbmake-timeout=600", "--overwrite", *map(str, copies)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    local, subset = repo.parent / "data", keys[:3]
    setup = [_cell_text(copy, "setup_backend(") for copy in copies]
    assert ("3 linked under the names the checkout opens (e.g. subject0000.h5 -> "
            "train/xgaze_subject0000.h5)") in setup[0]
    assert f"{drive / 'held_out'} -> {local / 'ETH-XGaze_test'}: 15 files copied" in setup[0]
    assert "0 files copied (0.00B), 3 already there" in setup[1]  # 02, the same runtime
    assert all("READY: fork checkout" in out for out in setup)
    assert "(1 epochs of 1 iterations + 2 validation samples)" in setup[0]  # MAX_EPOCHS, and
    assert "study of 1 trials" in setup[0]  # N_TRIALS reach the estimate
    assert list((results / "setup_cache/wheels").iterdir())  # the wheels: in RESULTS_DIR
    assert sorted(p.name for p in (local / "ETH-XGaze/train").iterdir()) == [
        f"xgaze_{k}" for k in subset]
    for stage in ("meshhead", "gazegaussian"):
        _assert_trained_with(results / f"gazegaussian_{stage}" / "trial_0000", local, subset)


def _cell_text(path: Path, marker: str) -> str:
    [cell] = [c for c in nbformat.read(path, 4).cells if marker in c.source and
              c.cell_type == "code"]
    return "".join(o.get("text", "") for o in cell.outputs)


def _assert_trained_with(trial: Path, local: Path, subset: list[str]) -> None:
    """The trial got the form's options, trained on the subset and validated as asked."""
    options = json.loads((trial / "spec.json").read_text())["options"]
    assert options["data"] == str(local / "ETH-XGaze") and options["subjects"] == ",".join(subset)
    assert options["val_data"] == str(local / "ETH-XGaze_test") and options["val_samples"] == 2
    assert f"Training on 3 subjects in {local / 'ETH-XGaze'}: {' '.join(subset)}" in (
        trial / "worker.log").read_text()
    trained = json.loads((trial / "repo_options.json").read_text())  # BACKEND_OPTIONS' opt.*
    assert trained["img_dir"] == str(local / "ETH-XGaze")
    if "pred_img_size" in trained:  # stage 2 (the fork's defaults: 512, True)
        assert trained["pred_img_size"] == 64 and trained["use_intermediate_gaze_training"] is False
    else:
        assert trained["geo_mlp"] == [27, 64, 64, 132]
    epochs = [json.loads(line) for line in (trial / "metrics.jsonl").read_text().splitlines()]
    assert [e["parts"]["val_samples"] for e in epochs if e.get("event") == "epoch"] == [2.0]


def test_the_colab_tunnel_outside_colab_is_a_local_dashboard_with_one_line(tmp_path, capsys):
    from gg_optuna_helpers.notebook import start_dashboard

    with start_dashboard(tmp_path / "r", tunnel="colab", port=free_port()) as dash:
        assert dash.running and dash.public_url is None
    assert capsys.readouterr().out.startswith("Not running in Colab, so no Colab link")
    assert not (tmp_path / "r").exists()  # the dashboard only reads: it makes no folder


def test_03_analyses_a_custom_named_study_inline(tmp_path, monkeypatch):
    """STUDY_NAME picks any study; its plots show inline without Chrome (plotly's renderer)."""
    import optuna

    from gg_optuna_helpers import open_storage

    results = tmp_path / "r"
    storage = open_storage(str(results), study_name="my custom study")
    study = optuna.create_study(study_name="my custom study", storage=storage.rdb)
    study.optimize(lambda t: (t.suggest_float("lr", 1e-4, 1e-2, log=True) - 1e-3) ** 2,
                   n_trials=4)
    storage.snapshot(force=True)
    copy = inject(NOTEBOOKS[3], tmp_path / "03.ipynb", RESULTS_DIR=str(results),
                  STUDY_NAME="my custom study")
    nb = nbformat.read(copy, as_version=4)
    monkeypatch.setenv("GG_OPTUNA_CHROME", "none")  # the kernel inherits it: no Chrome, as Colab
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = json.dumps([c.get("outputs") for c in nb.cells])
    assert "### my custom study" in shown
    assert (results / "report_my custom study" / "summary.json").exists()
    assert shown.count("cdn.plot.ly") >= 2 and "No best configuration: " in shown
