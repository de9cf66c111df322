"""The dashboard served by the package, loaded for real (urllib, headless Chromium, a terminal)."""

from __future__ import annotations

import base64
import contextlib
import functools
import inspect
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from pyngrok import conf

from gg_optuna_helpers.dashboard import (DEFAULT_PORT, EDITS_NEED, REFUSED, ngrok_options,
                                         serve_dashboard)
from gg_optuna_helpers.errors import ConfigError
from gg_optuna_helpers.storage import open_storage, open_view

import tunnel_standin as tunnel_standin_module
from conftest import cli

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


# --- The dashboard only reads: a live read-only view, and 403 to every change -----------------

# Every route of optuna-dashboard 0.21 that changes something (all its routes but GET ones), with
# a request it would carry out on the study of ``live_study``: (method, route, path, JSON body).
MUTATING = [
    ("POST", "/api/studies", "/api/studies", {"study_name": "new", "directions": ["minimize"]}),
    ("POST", "/api/studies/<study_id:int>/rename", "/api/studies/1/rename",
     {"study_name": "renamed"}),
    ("DELETE", "/api/studies/<study_id:int>", "/api/studies/1", None),
    ("PUT", "/api/studies/<study_id:int>/note", "/api/studies/1/note", {"version": 1, "body": "x"}),
    ("POST", "/api/studies/<study_id:int>/preference", "/api/studies/1/preference",
     {"mode": "ChooseWorst", "candidates": [0, 1], "clicked": 0}),
    ("PUT", "/api/studies/<study_id:int>/preference_feedback_component",
     "/api/studies/1/preference_feedback_component", {"output_type": "note"}),
    ("DELETE", "/api/studies/<study_id:int>/preference/<history_id>",
     "/api/studies/1/preference/abc", None),
    ("POST", "/api/studies/<study_id:int>/preference/<history_id>",
     "/api/studies/1/preference/abc", {}),
    ("POST", "/api/trials/<trial_id:int>/tell", "/api/trials/{running}/tell", {"state": "Fail"}),
    ("POST", "/api/trials/<trial_id:int>/user-attrs", "/api/trials/{running}/user-attrs",
     {"user_attrs": {"k": "v"}}),
    ("POST", "/api/studies/<study_id:int>/<trial_id:int>/skip", "/api/studies/1/{running}/skip",
     {}),
    ("PUT", "/api/studies/<study_id:int>/<trial_id:int>/note", "/api/studies/1/1/note",
     {"version": 1, "body": "x"}),
    ("POST", "/incompatible-rdb-schema", "/incompatible-rdb-schema", None),
    ("POST", "/api/artifacts/<study_id:int>/<trial_id:int>", "/api/artifacts/1/{running}",
     {"file": "data:text/plain;base64,eA==", "filename": "x.txt"}),
    ("POST", "/api/artifacts/<study_id:int>", "/api/artifacts/1",
     {"file": "data:text/plain;base64,eA==", "filename": "x.txt"}),
    ("DELETE", "/api/artifacts/<study_id:int>/<trial_id:int>/<artifact_id:re:[0-9a-fA-F-]+>",
     "/api/artifacts/1/{running}/{trial_artifact}", None),
    ("DELETE", "/api/artifacts/<study_id:int>/<artifact_id:re:[0-9a-fA-F-]+>",
     "/api/artifacts/1/{study_artifact}", None),
    ("POST", "/api/llm/trial_filter_query", "/api/llm/trial_filter_query", {}),
    ("POST", "/api/llm/generate_plotly_graph_query", "/api/llm/generate_plotly_graph_query", {}),
    ("POST", "/api/llm/re_generate_plotly_graph_query", "/api/llm/re_generate_plotly_graph_query",
     {}),
]
# Not routes, refused all the same (the guard looks at the method only): Bottle upper-cases a
# method, so "delete" would reach the DELETE route.
NOT_ROUTES = [("delete", "/api/studies/1", None), ("DELETE", "/api/trials/{running}", None),
              ("PATCH", "/api/studies/1", {}), ("OPTIONS", "/api/studies", None)]
# With allow_edits, what each request does here (the others answer 4xx on this study: it is not
# preferential, the LLM is off, the schema is current)
CHANGES = {"/api/studies", "/api/studies/<study_id:int>/rename", "/api/studies/<study_id:int>",
           "/api/studies/<study_id:int>/note", "/api/studies/<study_id:int>/preference",
           "/api/studies/<study_id:int>/preference_feedback_component",
           "/api/trials/<trial_id:int>/tell", "/api/trials/<trial_id:int>/user-attrs",
           "/api/studies/<study_id:int>/<trial_id:int>/note",
           "/api/artifacts/<study_id:int>/<trial_id:int>", "/api/artifacts/<study_id:int>",
           "/api/artifacts/<study_id:int>/<trial_id:int>/<artifact_id:re:[0-9a-fA-F-]+>",
           "/api/artifacts/<study_id:int>/<artifact_id:re:[0-9a-fA-F-]+>"}


def fill(storage, artifacts: Path, scratch: Path) -> dict:
    """A study as a dashboard meets it mid-run: 3 finished trials, one running, a checkpoint
    kept as a trial artifact and a study artifact (the artifact folder holds best.pt files)."""
    study = optuna.create_study(study_name=STUDY, storage=storage)
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.3) ** 2, n_trials=3)
    running = study.ask({"x": optuna.distributions.FloatDistribution(-1, 1)})
    artifacts.mkdir(exist_ok=True)
    store = optuna.artifacts.FileSystemArtifactStore(str(artifacts))
    (scratch / "best.pt").write_bytes(b"weights")
    upload = functools.partial(optuna.artifacts.upload_artifact, artifact_store=store,
                               file_path=str(scratch / "best.pt"))
    return {"running": running._trial_id, "trial_artifact": upload(study_or_trial=running),
            "study_artifact": upload(study_or_trial=study)}


@pytest.fixture
def live_study(tmp_path) -> dict:
    """``fill`` in a SQLite file: its URL, file, artifact folder, running trial and artifacts."""
    file = tmp_path / "study.db"
    ids = fill(f"sqlite:///{file}", tmp_path / "artifacts", tmp_path)
    return {"url": f"sqlite:///{file}", "files": [file], "artifacts": tmp_path / "artifacts",
            **ids}


def fingerprint(study: dict) -> tuple:
    """All a request could change: every row of every database copy, every artifact file."""
    rows = []
    for file in study["files"]:
        with contextlib.closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True)) as db:
            rows.append(list(db.iterdump()))
    files = sorted((p.name, p.read_bytes()) for p in study["artifacts"].iterdir())
    return rows, files


def send(url: str, method: str, body: object = None,
         auth: tuple[str, str] | None = None) -> tuple[int, str]:
    """A real HTTP request with a JSON body (and basic auth when given); (status, text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, method=method, data=data,
                                     headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(
            ":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def refused(status: int, text: str) -> bool:
    return status == 403 and json.loads(text) == {"reason": REFUSED}


def test_every_route_that_changes_something_is_listed():
    """optuna-dashboard's own app: its non-GET routes are exactly MUTATING's (a new version with
    a new route fails here, so it is looked at)."""
    import optuna_dashboard._app

    app = optuna_dashboard._app.create_app(optuna.storages.InMemoryStorage(),
                                           artifact_store=object())
    found = {(r.method, r.rule) for r in app.routes if r.method != "GET"}
    assert found == {(method, rule) for method, rule, _, _ in MUTATING}


@pytest.mark.parametrize("method, rule, path, body",
                         MUTATING + [(m, "-", p, b) for m, p, b in NOT_ROUTES],
                         ids=[f"{m} {p}" for m, _, p, _ in MUTATING] + [f"{m} {p}" for m, p, _
                                                                          in NOT_ROUTES])
def test_the_default_dashboard_refuses_every_change_even_on_a_writable_storage(
        method, rule, path, body, live_study, port):
    """An opened, writable Optuna storage is served as it is: the guard alone stands between a
    click and the study, and nothing changes, not a row, not an artifact file."""
    before = fingerprint(live_study)
    with serve_dashboard(optuna.storages.RDBStorage(live_study["url"]), port=port, tunnel="none",
                         artifact_dir=live_study["artifacts"]) as dash:
        status, text = send(dash.local_url.rstrip("/") + path.format(**live_study), method, body)
    assert refused(status, text), (status, text)
    assert fingerprint(live_study) == before


@pytest.mark.parametrize("method, rule, path, body", MUTATING,
                         ids=[f"{m} {p}" for m, _, p, _ in MUTATING])
def test_with_allow_edits_the_same_request_reaches_the_study(method, rule, path, body,
                                                             live_study, port):
    """The control: the requests above are ones the dashboard would carry out."""
    before = fingerprint(live_study)
    with serve_dashboard(live_study["url"], port=port, tunnel="none", allow_edits=True,
                         artifact_dir=live_study["artifacts"]) as dash:
        status, text = send(dash.local_url.rstrip("/") + path.format(**live_study), method, body)
    assert status != 403, text
    assert (fingerprint(live_study) != before) == (rule in CHANGES), (status, text)


@pytest.fixture(params=["results folder", "sqlite URL", "Optuna storage",
                        "the run's own storage"])
def served(request, tmp_path) -> dict:
    """The study of ``fill`` in each form a dashboard may serve; "the run's own storage" is the
    StudyStorage a run holds (lease, writable live copy), passed to the dashboard as it is."""
    if request.param in ("sqlite URL", "Optuna storage"):
        file = tmp_path / "study.db"
        ids = fill(f"sqlite:///{file}", tmp_path / "artifacts", tmp_path)
        storage = (f"sqlite:///{file}" if request.param == "sqlite URL"
                   else optuna.storages.RDBStorage(f"sqlite:///{file}"))
        return {"storage": storage, "files": [file], "artifacts": tmp_path / "artifacts", **ids}
    opened = open_storage(tmp_path / "results", study_name=STUDY)
    ids = fill(opened.rdb, tmp_path / "results" / "artifacts", tmp_path)
    opened.snapshot(force=True)
    if request.param == "results folder":
        opened.close()
    request.addfinalizer(opened.close)
    return {"storage": opened if request.param != "results folder" else tmp_path / "results",
            "files": [opened.durable, opened.live], "artifacts": tmp_path / "results" /
            "artifacts", **ids}


def test_delete_of_a_study_and_of_a_trial_get_403_and_the_study_is_intact(served, port):
    """optuna-dashboard 0.21 has no route that deletes one trial: what removes a trial's work is a
    "tell" (FAIL over a running trial) and deleting its artifact (a checkpoint)."""
    before = fingerprint(served)
    with serve_dashboard(served["storage"], study_name=STUDY, port=port, tunnel="none",
                         artifact_dir=served["artifacts"]) as dash:
        api = dash.local_url + "api/"
        for method, path, body in [
                ("DELETE", "studies/1", None), ("DELETE", "trials/{running}", None),
                ("POST", "trials/{running}/tell", {"state": "Fail"}),
                ("DELETE", "artifacts/1/{running}/{trial_artifact}", None)]:
            assert refused(*send(api + path.format(**served), method, body)), path
        with urllib.request.urlopen(api + "studies/1", timeout=10) as response:
            trials = json.load(response)["trials"]
    assert [t["state"] for t in trials] == ["Complete"] * 3 + ["Running"]
    assert fingerprint(served) == before
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{served['files'][0]}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3 + ["RUNNING"]


def test_reading_pages_still_work_behind_the_guard(live_study, port):
    with serve_dashboard(live_study["url"], port=port, tunnel="none",
                         artifact_dir=live_study["artifacts"]) as dash:
        base = dash.local_url.rstrip("/")
        for path in ["/", "/dashboard", "/dashboard/studies/1", "/api/meta", "/api/studies",
                     "/api/studies/1", "/api/studies/1?after=2", "/api/studies/1/plot/slice",
                     "/csv/1", "/favicon.ico", "/static/bundle.js",
                     "/artifacts/1/{study_artifact}".format(**live_study)]:
            assert send(base + path, "GET")[0] == 200, path
        assert send(base + "/api/studies", "HEAD")[0] == 200
        studies = json.loads(send(base + "/api/studies", "GET")[1])["study_summaries"]
        assert [s["study_name"] for s in studies] == [STUDY]


def test_with_allow_edits_a_delete_goes_through_on_a_writable_storage(live_study, port, capsys):
    with serve_dashboard(live_study["url"], port=port, tunnel="none", allow_edits=True) as dash:
        assert send(dash.local_url + "api/studies/1", "DELETE")[0] == 204
    assert optuna.get_all_study_summaries(live_study["url"]) == []
    assert "edits allowed: it can delete and change studies" in capsys.readouterr().out


def test_allow_edits_on_a_results_folder_or_a_read_only_storage_is_one_sentence(tmp_path, port):
    opened = open_storage(tmp_path / "results", study_name=STUDY)
    fill(opened.rdb, tmp_path / "artifacts", tmp_path)
    opened.snapshot(force=True)
    opened.close()
    for storage in (tmp_path / "results", open_view(tmp_path / "results", STUDY)):
        with pytest.raises(ConfigError) as caught:
            serve_dashboard(storage, study_name=STUDY, port=port, tunnel="none",
                            allow_edits=True)
        assert str(caught.value) == EDITS_NEED and "\n" not in EDITS_NEED


def tree(*roots: Path) -> dict[str, tuple]:
    """Every file and folder under ``roots``: size and modification time."""
    return {str(p): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for root in roots if root.exists() for p in [root, *root.rglob("*")]}


def test_the_notebook_dashboard_writes_nothing_and_holds_no_lease(tmp_path, port, capsys):
    """A finished study: start_dashboard reads it, answers, refuses, stops; the results folder
    and the local live folder are as before, byte for byte, and no lease file appears."""
    results, local = tmp_path / "results", tmp_path / "local"
    opened = open_storage(results, study_name=STUDY)
    fill(opened.rdb, results / "artifacts", tmp_path)
    opened.snapshot(force=True)
    opened.close()
    before = tree(results, local)
    from gg_optuna_helpers.notebook import start_dashboard

    with start_dashboard(results, tunnel="none", port=port, study_name=STUDY) as dash:
        assert STUDY in send(dash.local_url + "api/studies", "GET")[1]
        assert send(dash.local_url + "api/studies/1", "GET")[0] == 200
        assert refused(*send(dash.local_url + "api/studies/1", "DELETE"))
        assert not (results / STUDY / "lease.json").exists()
    assert tree(results, local) == before
    assert "read-only: it refuses to delete or change a study" in capsys.readouterr().out


def test_a_study_not_there_yet_is_shown_once_a_run_writes_it(tmp_path, port, capsys):
    """The notebook starts the dashboard before the study cell: an empty view, one line, then
    the study as soon as the run's live copy holds it."""
    results = tmp_path / "results"
    results.mkdir()
    with serve_dashboard(results, study_name=STUDY, port=port, tunnel="none") as dash:
        assert json.loads(send(dash.local_url + "api/studies", "GET")[1]) == {
            "study_summaries": []}
        assert list(results.iterdir()) == []
        opened = open_storage(results, study_name=STUDY)  # the run: the lease is free
        try:
            optuna.create_study(study_name=STUDY, storage=opened.rdb).optimize(
                lambda t: t.suggest_float("x", 0, 1), n_trials=2)
            detail = json.loads(send(dash.local_url + "api/studies/1", "GET")[1])
            assert len(detail["trials"]) == 2
        finally:
            opened.close()
    assert (f"There is no study {STUDY!r} in {results} yet: the dashboard shows it as soon as "
            "a run writes it.") in capsys.readouterr().out


def trials_once(url: str, count: int, seconds: float = 20) -> list[dict]:
    """The trials ``url`` lists once there are ``count`` (optuna-dashboard caches them for
    2 s); fails after ``seconds``."""
    end = time.monotonic() + seconds
    while True:
        trials = json.loads(send(url, "GET")[1])["trials"]
        if len(trials) == count or time.monotonic() > end:
            assert len(trials) == count, trials
            return trials
        time.sleep(0.5)


def read_until(child: subprocess.Popen, word: str) -> str:
    lines = ""
    while word not in lines:
        line = child.stdout.readline()
        assert line, lines
        lines += line
    return lines


def test_the_terminal_dashboard_is_live_and_read_only(tmp_path, port):
    """`dashboard --storage FOLDER --study-name S` in a child process; another runtime (its own
    local folder) takes the study, adds trials and replaces the snapshot: the dashboard shows
    them, refuses a DELETE, and left no file anywhere."""
    results = tmp_path / "results"
    opened = open_storage(results, study_name=STUDY, local_dir=tmp_path / "first")
    fill(opened.rdb, results / "artifacts", tmp_path)
    opened.snapshot(force=True)
    opened.close()
    child = subprocess.Popen(
        [sys.executable, "-m", "gg_optuna_helpers", "dashboard", "--storage", str(results),
         "--study-name", STUDY, "--port", str(port), "--tunnel", "none"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), GG_OPTUNA_LOCAL_DIR=str(tmp_path / "view")))
    api = f"http://127.0.0.1:{port}/api/studies/1"
    try:
        with deadline(60):
            assert "read-only" in read_until(child, "Ctrl-C")
        assert len(json.loads(send(api, "GET")[1])["trials"]) == 4
        other = open_storage(results, study_name=STUDY, local_dir=tmp_path / "second")
        try:
            study = optuna.load_study(study_name=STUDY, storage=other.rdb)
            study.optimize(lambda t: t.suggest_float("x", -1, 1), n_trials=2)
            other.snapshot(force=True)
        finally:
            other.close()
        trials_once(api, 6)  # the snapshot the second runtime replaced
        assert refused(*send(api, "DELETE"))
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not (tmp_path / "view").exists()
    durable = f"sqlite:///{results / STUDY / 'optuna.db'}"
    assert len(optuna.load_study(study_name=STUDY, storage=durable).trials) == 6


KERNEL = """
import sys, threading
from gg_optuna_helpers import StudyConfig, run_study
from gg_optuna_helpers.notebook import start_dashboard
folder, port = sys.argv[1], int(sys.argv[2])
start_dashboard(folder, tunnel="none", port=port, study_name="mini_meshhead")
print("SERVING", flush=True)
input()
run_study(StudyConfig(stage="meshhead", storage=folder, n_trials=1, max_epochs=1,
                      show_progress_bar=False))
print("RAN", flush=True)
input()
for thread in threading.enumerate():  # a released lease's thread ends at once, a held one never
    if thread.name.startswith("lease-"):
        thread.join(timeout=10)
print("THREADS", sorted(t.name for t in threading.enumerate()), flush=True)
sys.stdin.read()  # the kernel lives on, and so does its dashboard
"""


@pytest.mark.slow
def test_a_second_runtime_takes_the_study_while_the_notebook_dashboard_still_serves(tmp_path,
                                                                                   port):
    """As in notebook 01, in a real child "kernel": the dashboard cell, then the study cell (a
    real run); the run releases its lease and the kernel lives on, serving. Another runtime (a
    process with another local folder) then runs the study further, and the dashboard follows."""
    results, study = tmp_path / "results", "mini_meshhead"
    results.mkdir()
    kernel = subprocess.Popen(
        [sys.executable, "-c", KERNEL, str(results), str(port)], cwd=tmp_path, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), GG_OPTUNA_LOCAL_DIR=str(tmp_path / "a")))
    api = f"http://127.0.0.1:{port}/api/studies"
    try:
        with deadline(60):
            read_until(kernel, "SERVING")
        assert list(results.iterdir()) == [] and not (tmp_path / "a").exists()  # made nothing
        assert json.loads(send(api, "GET")[1])["study_summaries"] == []
        kernel.stdin.write("go\n")
        kernel.stdin.flush()
        with deadline(240):
            read_until(kernel, "RAN")
        kernel.stdin.write("threads\n")
        kernel.stdin.flush()
        with deadline(30):
            threads = read_until(kernel, "THREADS")
        assert "lease-" not in threads and not (results / study / "lease.json").exists()
        [summary] = json.loads(send(api, "GET")[1])["study_summaries"]
        detail = f"{api}/{summary['study_id']}"
        assert len(json.loads(send(detail, "GET")[1])["trials"]) == 1

        second = cli("run", "--stage", "meshhead", "--storage", str(results), "--n-trials", "2",
                     "--max-epochs", "1", "--quiet", env={"GG_OPTUNA_LOCAL_DIR": str(
                         tmp_path / "b")})
        assert second.returncode == 0, second.stdout + second.stderr
        assert "2/2 trials finished" in second.stdout
        trials = trials_once(detail, 2)  # the snapshot runtime b wrote
        assert [t["state"] for t in trials] == ["Complete"] * 2
        assert refused(*send(detail, "DELETE"))
        kernel.stdin.close()
        assert kernel.wait(timeout=30) == 0
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()
    durable = optuna.load_study(study_name=study,
                                storage=f"sqlite:///{results / study / 'optuna.db'}")
    assert [t.state.name for t in durable.trials] == ["COMPLETE"] * 2


def test_through_the_tunnel_every_change_is_refused_too(live_study, port, tunnel_standin):
    """The ngrok link (its stand-in, which forwards every method as ngrok does) reaches the same
    guarded app: with the right password, still 403 to every change, and the study intact."""
    tunnel_standin()
    before = fingerprint(live_study)
    with serve_dashboard(live_study["url"], port=port, tunnel="ngrok",
                         artifact_dir=live_study["artifacts"]) as dash:
        login = (dash.username, dash.password)
        assert send(dash.public_url + "/api/studies", "GET", auth=login)[0] == 200
        for method, _, path, body in MUTATING:
            status, text = send(dash.public_url + path.format(**live_study), method, body,
                                auth=login)
            assert refused(status, text), (method, path, status, text)
    assert fingerprint(live_study) == before


def test_a_damaged_snapshot_is_an_empty_list_not_an_error_and_the_study_comes_back(tmp_path,
                                                                                  port):
    """Another machine's view (no live copy here) of a snapshot Drive half-synced: no study
    listed, no 500, nothing touched; the whole file again, and the study is back."""
    results = tmp_path / "results"
    opened = open_storage(results, study_name=STUDY, local_dir=tmp_path / "runtime")
    fill(opened.rdb, results / "artifacts", tmp_path)
    opened.snapshot(force=True)
    opened.close()
    snapshot = results / STUDY / "optuna.db"
    good = snapshot.read_bytes()
    with serve_dashboard(results, study_name=STUDY, port=port, tunnel="none") as dash:
        api = dash.local_url + "api/studies"
        assert STUDY in send(api, "GET")[1]
        snapshot.write_bytes(good[: len(good) // 2])
        assert send(api, "GET") == (200, json.dumps({"study_summaries": []}))
        assert snapshot.read_bytes() == good[: len(good) // 2]
        snapshot.write_bytes(good)
        assert STUDY in send(api, "GET")[1]


def test_the_dashboard_command_refuses_edits_on_a_folder_and_a_mistyped_study(tmp_path):
    results = tmp_path / "results"
    opened = open_storage(results, study_name=STUDY)
    fill(opened.rdb, results / "artifacts", tmp_path)
    opened.snapshot(force=True)
    opened.close()
    for extra, words in [(["--allow-edits"], EDITS_NEED),
                         (["--study-name", "nope"], f"No study named 'nope' in {results}")]:
        done = cli("dashboard", "--storage", str(results), "--port", "8099", *extra,
                   cwd=tmp_path, timeout=60)
        assert done.returncode == 2 and words in done.stderr, done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
