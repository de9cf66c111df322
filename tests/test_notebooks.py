"""The notebooks: valid, stripped, thin, Colab-guarded; and executed for real by nbmake."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = ["00_install.ipynb", "01_meshhead_study.ipynb", "02_gazegaussian_study.ipynb",
         "03_analysis.ipynb"]
COLAB_ONLY = ("!pip", "drive.mount", "google.colab import")


def test_the_four_notebooks_exist_in_order():
    assert [p.name for p in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_valid_stripped_badged_and_thin(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs not stripped"
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
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and "#@param" in params[0].source


def test_nbmake_runs_all_four_in_order(tmp_path):
    """Real execution in a Jupyter kernel on the mini backend, shrunk through env variables."""
    results = tmp_path / "results"
    env = dict(os.environ, GG_RESULTS_DIR=str(results), GG_NOTEBOOK_TRIALS="4",
               GG_NOTEBOOK_EPOCHS="3", PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--nbmake", "--nbmake-timeout=600", *map(str, NOTEBOOKS)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout
    for stage in ("meshhead", "gazegaussian"):
        summary = json.loads((results / f"report_mini_{stage}" / "summary.json").read_text())
        assert summary["study_name"] == f"mini_{stage}"
        assert (results / f"report_mini_{stage}" / "best_config.yaml").exists()


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
                             repo=str(repo), quick_test=True)
    assert config.backend == "gazegaussian" and config.backend_options["repo"] == str(repo)
    assert config.study_name == "gazegaussian_gazegaussian_test" and config.n_trials == 5
    assert config.space["dit_depth"].choices == (4, 6, 8, 12)
    with pytest.raises(ConfigError):
        notebook_config("meshhead", results=tmp_path / "r", backend="gazegaussian",
                        repo=str(tmp_path / "missing"))
