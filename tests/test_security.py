"""Secrets stay secret: no token, generated password or database password in logs, notebook
outputs or files; no public tunnel without authentication. (Loopback-only listening and the ngrok
options themselves are tested in tests/test_dashboard.py.)"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from pyngrok import conf

import tunnel_standin

from conftest import ROOT, cli
from nbparams import inject
from gg_optuna_helpers.dashboard import serve_dashboard

# Shaped like a real ngrok authtoken (a digit, letters and digits, an underscore, more).
TOKEN = "2abcDEFghiJKLmnoPQRstuVWXyz0123456789_ABCdefGHIjk42"
# Anything shaped like a token: 30+ word characters mixing upper case, lower case and digits
# (uuids, hashes and hex digests are lower case, so they do not count; nor do the progress
# bar's widget ids, IPY_MODEL_<hex>).
TOKEN_LIKE = re.compile(r"(?<!\w)(?!IPY_MODEL_)(?=\w*[A-Z])(?=\w*[a-z])(?=\w*\d)\w{30,}(?!\w)")
TEXT_SUFFIXES = {".log", ".jsonl", ".json", ".txt", ".md", ".yaml", ".html", ".ipynb"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leaks(text: str, secret: str) -> list[str]:
    """The secret itself, or anything shaped like a token, found in ``text``."""
    return ([secret] if secret in text else []) + TOKEN_LIKE.findall(text)


def scan_tree(root: Path, secret: str) -> dict[str, list[str]]:
    """Every file under ``root``: the secret anywhere (binary files too), and token-shaped strings
    in the text files we write (logs, metrics, specs, reports, plots' HTML, notebooks)."""
    found = {}
    for path in root.rglob("*"):
        if secret in str(path):
            found[str(path)] = ["(in the path)"]
        if not path.is_file():
            continue
        data = path.read_bytes()
        hits = [secret] if secret.encode() in data else []
        if path.suffix in TEXT_SUFFIXES:
            hits += TOKEN_LIKE.findall(data.decode("utf-8", errors="replace"))
        if hits:
            found[str(path)] = hits
    return found


@contextlib.contextmanager
def dashboard_command(storage: str, *args: str, cwd: Path):
    """``python -m gg_optuna_helpers dashboard`` until it serves; yields [output until then,
    the rest], filled in when Ctrl-C has stopped it (exit 0)."""
    proc = subprocess.Popen([sys.executable, "-m", "gg_optuna_helpers", "dashboard", "--storage",
                             storage, *args], cwd=cwd, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    output = []
    try:
        lines = ""
        while "Ctrl-C" not in lines:
            line = proc.stdout.readline()
            assert line, lines
            lines += line
        output.append(lines)
        yield output
        proc.send_signal(signal.SIGINT)
        output.append(proc.communicate(timeout=20)[0])
        assert proc.returncode == 0, output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """All text a reader of the saved notebook sees: sources and text outputs (not images)."""
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("evalue", ""))
            parts.extend(out.get("traceback", []))
            data = out.get("data", {})
            parts.extend(v for k, v in data.items() if k.startswith("text/"))
    return "\n".join(map(str, parts))


@pytest.mark.slow
def test_no_token_or_password_in_the_saved_notebook_its_widget_state_or_any_file(tmp_path,
                                                                                monkeypatch):
    """A real study, then notebook 01 executed in a real kernel with TUNNEL="ngrok" against the
    tunnel STAND-IN (tests/tunnel_standin.py; ngrok's service is unreachable here), saved with
    its widget state as Colab saves it; then a report and the dashboard command. The saved
    .ipynb as a whole (outputs, metadata.widgets), the results folder and every log hold
    neither the token nor the generated password."""
    results, home = tmp_path / "drive", tmp_path / "home"
    home.mkdir()
    for key, value in {"NGROK_AUTHTOKEN": TOKEN, "HOME": str(home),
                       "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}.items():
        monkeypatch.setenv(key, value)  # the kernel and every command inherit them
    captured = []

    run = cli("run", "--stage", "meshhead", "--storage", str(results), "--n-trials", "1",
              "--max-epochs", "2", "--quiet")
    assert run.returncode == 0, run.stdout + run.stderr
    captured += [run.stdout, run.stderr]

    # notebook 01 finishes the study (trial 1) and serves its dashboard through the stand-in
    copy = inject(ROOT / "notebooks" / "01_meshhead_study.ipynb", tmp_path / "01.ipynb",
                  prelude="import tunnel_standin\ntunnel_standin.install()",
                  RESULTS_DIR=str(results), N_TRIALS=2, MAX_EPOCHS=2, TUNNEL="ngrok",
                  DASHBOARD_PORT=free_port())
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = tmp_path / "executed.ipynb"
    nbformat.write(nb, saved)
    assert "widgets" in nb.metadata  # the progress bar's widget state was saved and scanned
    text = notebook_text(nb)
    [link] = [line for line in text.splitlines() if line.startswith("Public link: ")]
    credentials = home / ".config" / "gg_optuna_helpers" / "dashboard_password"
    assert f"the password is in {credentials}" in link
    assert credentials.stat().st_mode & 0o777 == 0o600
    password = credentials.read_text().strip()
    assert len(password) >= 16 and "Study 'mini_meshhead'" in text and "2 finished" in text

    report = cli("report", "--storage", str(results), "--study-name", "mini_meshhead")
    assert report.returncode == 0, report.stdout + report.stderr
    captured += [report.stdout, report.stderr]

    port = free_port()
    with dashboard_command(str(results), "--port", str(port), "--tunnel", "ngrok",
                           cwd=tmp_path) as output:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as r:
            assert "mini_meshhead" in r.read().decode()
    captured += output
    assert "No ngrok tunnel:" in output[0]  # the real pyngrok, offline: one line

    raw = saved.read_text()
    for secret in (TOKEN, password):
        assert leaks("\n".join(captured), secret) == []
        assert leaks(raw, secret) == []  # the whole file: outputs, metadata, widget state
        assert scan_tree(results, secret) == {}  # studies, trial folders, worker logs, reports
    # and the token nowhere at all: the live database, HOME, pyngrok's config
    assert scan_tree(tmp_path, TOKEN) == {}
    assert list(results.rglob("worker.log"))  # the worker logs were among the files scanned


def test_no_tunnel_without_basic_auth_and_a_fresh_password_each_time(tmp_path, monkeypatch,
                                                                     capsys):
    """Contract, against the tunnel stand-in (tests/tunnel_standin.py: ngrok's service is
    unreachable here): with either ngrok config version every tunnel carries basic auth with a
    new password, which reaches no log and no file."""
    tunnel_standin.CALLS.clear()
    tunnel_standin.install(True, monkeypatch.setattr)
    monkeypatch.setattr(conf.get_default(), "auth_token", None)
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    passwords = []
    for version in ("2", "3", "3"):
        monkeypatch.setattr(conf.get_default(), "config_version", version)
        with serve_dashboard(storage, port=free_port(), tunnel="ngrok",
                             artifact_dir=tmp_path / "artifacts") as dash:
            options = tunnel_standin.CALLS[-1]
            assert tunnel_standin.credentials(options) == [f"{dash.username}:{dash.password}"]
            assert ("basic_auth" in options) == (version == "2")
            assert len(dash.password) >= 16
            passwords.append(dash.password)
    assert len(set(passwords)) == 3  # generated anew for every dashboard
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    for password in passwords:
        assert out.out.count(password) == 1  # shown once, to the one who started it
        assert scan_tree(tmp_path, password) == {}


def test_dashboard_of_a_database_url_writes_no_credentials_into_folder_names(postgres_url,
                                                                            tmp_path):
    """``dashboard --storage postgresql://USER:PASSWORD@...`` used to create its artifact folder
    from the URL itself: ./postgresql:/USER:PASSWORD@HOST/DB/artifacts."""
    password = "S3cretDbPassw0rd"  # the test server trusts local users: any password works
    url = postgres_url.replace("postgres@", f"postgres:{password}@")
    port = free_port()
    with dashboard_command(url, "--port", str(port), "--tunnel", "none", cwd=tmp_path) as output:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10):
            pass
    assert password not in "".join(output)
    assert scan_tree(tmp_path, password) == {}
    assert sorted(tmp_path.iterdir()) == []  # read-only: not even the artifact folder is made


def test_a_notebooks_generated_password_is_not_in_the_saved_file_nor_its_widget_state(
        tmp_path, monkeypatch):
    """Colab saves widget state (metadata.widgets) with the notebook: the password used to sit
    there in a widget. Against the tunnel stand-in, in a real kernel, saved with widget state."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import tunnel_standin\ntunnel_standin.install()\n"
        "from gg_optuna_helpers.dashboard import serve_dashboard\n"
        f"dash = serve_dashboard('sqlite:///{tmp_path / 'o.db'}', port={free_port()}, "
        "tunnel='ngrok')\nimport ipywidgets\ndisplay(ipywidgets.IntProgress())\n"
        f"open({str(tmp_path / 'seen')!r}, 'w').write(dash.password)  # for the test only")])
    NotebookClient(nb, kernel_name="python3", timeout=120, store_widget_state=True).execute()
    raw = nbformat.writes(nb)
    assert "widgets" in nb.metadata  # widget state was saved, and scanned below
    password = (tmp_path / "seen").read_text()
    assert len(password) >= 16
    assert leaks(raw, password) == [] and leaks(raw, TOKEN) == []
    credentials = home / ".config" / "gg_optuna_helpers" / "dashboard_password"
    assert credentials.read_text().strip() == password  # where the user finds it instead
