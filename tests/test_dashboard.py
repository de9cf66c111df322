"""The dashboard served by the package, loaded for real (urllib, headless Chromium, a terminal)."""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from pyngrok import conf

from gg_optuna_helpers.dashboard import DEFAULT_PORT, ngrok_options, serve_dashboard
from gg_optuna_helpers.errors import ConfigError

import tunnel_standin as tunnel_standin_module

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
STUDY = "gg-dashboard-study-7f3a"
TOKEN = "2fakeNgrokTokenThatMustNeverBeShown_xyz"
needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason="needs Debian chromium at /usr/bin/chromium (apt-get install chromium)")


@pytest.fixture
def storage(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name=STUDY, storage=url)
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.3) ** 2, n_trials=3)
    return url


@pytest.fixture
def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_token(monkeypatch):
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail the test instead of hanging if a network call blocks."""
    def fail(*_):
        raise TimeoutError(f"took longer than {seconds} s")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'chrome-profile'}",
         "--window-size=1280,800", "--virtual-time-budget=8000", *args],
        capture_output=True, text=True, timeout=120)


def test_default_port_is_not_colabs_busy_8080():
    assert DEFAULT_PORT == 8081
    assert inspect.signature(serve_dashboard).parameters["port"].default == 8081


def test_api_lists_the_study(storage, port):
    with serve_dashboard(storage, port=port, tunnel="none") as dash:
        assert dash.local_url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(dash.local_url + "api/studies", timeout=10) as response:
            studies = json.load(response)["study_summaries"]
        assert [s["study_name"] for s in studies] == [STUDY]


@needs_chromium
def test_headless_chromium_renders_the_study(storage, port, tmp_path):
    with serve_dashboard(storage, port=port, tunnel="none",
                         artifact_dir=tmp_path / "artifacts") as dash:
        page = chromium(tmp_path, "--dump-dom", dash.local_url)
        assert page.returncode == 0, page.stderr[-2000:]
        assert STUDY in page.stdout  # the JS app fetched /api/studies and drew the study card
        shot = tmp_path / "dashboard.png"
        chromium(tmp_path, f"--screenshot={shot}", dash.local_url)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000


def test_listens_on_loopback_only(storage, port):
    with serve_dashboard(storage, port=port, tunnel="none"):
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        with pytest.raises(ConnectionRefusedError):  # another local address: nobody listens
            socket.create_connection(("127.0.0.2", port), timeout=5)


def test_port_in_use_is_one_clear_sentence(storage, port):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(ConfigError) as caught:
            serve_dashboard(storage, port=port, tunnel="none")
    message = str(caught.value)
    assert message.startswith(f"Port {port} on 127.0.0.1 is already in use")
    assert f"port={port + 1}" in message and message.count(". ") == 0


def test_stop_frees_the_port_and_is_idempotent(storage, port):
    first = serve_dashboard(storage, port=port, tunnel="none")
    first.stop()
    first.stop()
    assert not first.running
    with serve_dashboard(storage, port=port, tunnel="none") as second:
        assert second.running


def test_bad_tunnel_choices(storage, port):
    with pytest.raises(ConfigError, match="tunnel must be one of"):
        serve_dashboard(storage, port=port, tunnel="public")
    with pytest.raises(ConfigError, match="only inside Google Colab"):
        serve_dashboard(storage, port=port, tunnel="colab")


def test_no_token_gives_one_line_and_a_local_dashboard(storage, port, capsys):
    with serve_dashboard(storage, port=port, tunnel="ngrok") as dash:
        assert dash.public_url is None and dash.running
    out = capsys.readouterr().out
    assert "No public link: no ngrok authtoken found (set NGROK_AUTHTOKEN" in out


def test_ngrok_options_always_carry_basic_auth():
    v3 = ngrok_options(8081, "optuna", "s3cret-password")
    [rule] = v3["traffic_policy"]["on_http_request"]
    assert rule["actions"] == [{"type": "basic-auth",
                                "config": {"credentials": ["optuna:s3cret-password"]}}]
    assert (v3["addr"], v3["proto"]) == ("8081", "http")
    v2 = ngrok_options(8081, "optuna", "s3cret-password", config_version="2")
    assert v2["basic_auth"] == ["optuna:s3cret-password"]
    with pytest.raises(ConfigError, match="at least 8 characters"):
        ngrok_options(8081, "optuna", "short")


def get(url: str, auth: tuple[str, str] | None = None) -> int:
    """The HTTP status of a GET, with basic auth when given."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(
            ":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def tunnel_standin(monkeypatch):
    """ngrok's service is unreachable here: connect/disconnect become local basic-auth proxies
    (tests/tunnel_standin.py). Returns install(enforce=True)."""
    monkeypatch.setattr(conf.get_default(), "auth_token", None)
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    tunnel_standin_module.CALLS.clear()
    return lambda enforce=True: tunnel_standin_module.install(enforce, monkeypatch.setattr)


def test_contract_ngrok_tunnel_asks_for_the_generated_password_and_token_stays_secret(
        storage, port, tunnel_standin, capsys, caplog):
    """Contract test against the stand-in tunnel: it requires exactly the generated credentials."""
    tunnel_standin()
    caplog.set_level(logging.DEBUG)
    with serve_dashboard(storage, port=port, tunnel="ngrok") as dash:
        assert conf.get_default().auth_token == TOKEN  # set on the config, not read at import
        assert len(dash.password) >= 16 and dash.username
        [options] = tunnel_standin_module.CALLS
        [rule] = options["traffic_policy"]["on_http_request"]
        assert rule["actions"][0]["config"]["credentials"] == [f"{dash.username}:{dash.password}"]
        assert get(dash.public_url + "/api/studies") == 401
        assert get(dash.public_url + "/api/studies", (dash.username, dash.password)) == 200
        assert dash.password not in repr(dash)
        assert serve_dashboard(storage, port=port, tunnel="ngrok") is dash  # re-run: reused
        assert len(tunnel_standin_module.CALLS) == 1  # the same tunnel, the same password
    assert not tunnel_standin_module.OPEN  # stop() closed the tunnel
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err + caplog.text
    assert dash.password not in caplog.text  # pyngrok's debug log of the options is muted
    assert captured.out.count(dash.password) == 1  # shown once (a terminal: nothing is saved)


def test_a_token_in_the_environment_alone_opens_no_public_tunnel(storage, port, tunnel_standin,
                                                                 capsys):
    tunnel_standin()
    with serve_dashboard(storage, port=port) as dash:  # tunnel="auto", off Colab
        assert dash.public_url is None and dash.password is None
    assert tunnel_standin_module.CALLS == [] and "ngrok" not in capsys.readouterr().out


def test_a_tunnel_that_lets_anyone_in_is_closed_and_the_cell_says_why(storage, port,
                                                                      tunnel_standin, capsys):
    tunnel_standin(enforce=False)  # the auth did not take effect on the public side
    with serve_dashboard(storage, port=port, tunnel="ngrok") as dash:
        assert dash.public_url is None and dash.password is None
        assert get(dash.local_url + "api/studies") == 200  # still there, locally
    assert len(tunnel_standin_module.CALLS) == 1 and not tunnel_standin_module.OPEN
    out = capsys.readouterr().out
    assert ("No ngrok tunnel: it was closed again because it answered 200 to a request without "
            "a password") in out and dash.note in out


def test_serving_again_on_the_same_port_reuses_the_server(storage, port, tmp_path, capsys):
    """Run all twice in one kernel: the dashboard cell must not fail with 'port in use'."""
    first = serve_dashboard(storage, port=port, tunnel="none")
    try:
        again = serve_dashboard(optuna.storages.RDBStorage(storage), port=port, tunnel="none")
        assert again is first and first.running
        assert "already running at" in capsys.readouterr().out
        other = f"sqlite:///{tmp_path / 'other.db'}"
        moved = serve_dashboard(other, port=port, tunnel="none")  # another storage: replaced
        assert moved is not first and moved.running and not first.running
        moved.stop()
    finally:
        first.stop()


def test_offline_ngrok_is_one_clear_line_and_the_dashboard_stays_local(
        storage, port, tmp_path, monkeypatch, capsys, caplog):
    """For real: pyngrok tries to download its agent into a temporary folder and fails."""
    monkeypatch.setattr(conf.get_default(), "ngrok_path", str(tmp_path / "bin" / "ngrok"))
    monkeypatch.setattr(conf.get_default(), "auth_token", None)
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    with deadline(90), serve_dashboard(storage, port=port, tunnel="ngrok") as dash:
        assert dash.public_url is None and dash.password is None
        assert dash.note.startswith("No ngrok tunnel:")
        assert dash.note.endswith(f"the dashboard is only at {dash.local_url}.")
        with urllib.request.urlopen(dash.local_url + "api/studies", timeout=10) as response:
            assert response.status == 200
    captured = capsys.readouterr()
    assert dash.note in captured.out
    assert TOKEN not in captured.out + captured.err + caplog.text


def test_terminal_helper_runs_until_ctrl_c(storage, port):
    code = ("from gg_optuna_helpers.dashboard import run_dashboard_forever; "
            f"run_dashboard_forever({storage!r}, port={port}, tunnel='none')")
    child = subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        lines = []
        while "Ctrl-C" not in "".join(lines):
            line = child.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10):
            pass
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_chosen_password_is_required_and_never_printed(storage, port, tunnel_standin,
                                                         monkeypatch, capsys):
    chosen = "my-own-dashboard-pw"
    monkeypatch.setenv("GG_DASHBOARD_PASSWORD", chosen)
    tunnel_standin()
    with serve_dashboard(storage, port=port, tunnel="ngrok") as dash:
        assert get(dash.public_url, (dash.username, chosen)) == 200
        assert get(dash.public_url) == 401
    out = capsys.readouterr().out
    assert chosen not in out and "the password you set in GG_DASHBOARD_PASSWORD" in out
    monkeypatch.setenv("GG_DASHBOARD_PASSWORD", "short")
    with pytest.raises(ConfigError, match="GG_DASHBOARD_PASSWORD has 5: choose a longer one"):
        serve_dashboard(storage, port=port, tunnel="ngrok")


@pytest.mark.parametrize("port, artifacts", [(0, None), (70000, None), ("8081", None),
                                              (8099, "a_file")])
def test_a_bad_port_or_artifact_folder_is_one_sentence_before_anything_starts(
        port, artifacts, tmp_path):
    if artifacts:
        (tmp_path / artifacts).write_text("not a folder\n")
    with pytest.raises(ConfigError) as refused:
        serve_dashboard(f"sqlite:///{tmp_path / 'x.db'}", port=port, tunnel="none",
                        artifact_dir=tmp_path / artifacts if artifacts else None)
    assert "\n" not in str(refused.value) and not (tmp_path / "x.db").exists()


def test_a_wrong_storage_leaves_the_running_dashboard_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    optuna.create_study(study_name="a", storage=url)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with serve_dashboard(url, port=port, tunnel="none") as dash:
        with pytest.raises(ConfigError):
            serve_dashboard(42, port=port, tunnel="none")
        assert dash.running
