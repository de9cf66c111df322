"""Environment detection: this machine for real; Colab through a stand-in of its modules.

The stand-in tests are contract tests: Colab's ``google.colab`` cannot run here, so a tiny
module with the same names (``drive.mount``, ``userdata.get`` and its two errors) checks that
each Colab branch calls what Colab offers and swallows what it raises.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from gg_optuna_helpers import chrome, colab
from gg_optuna_helpers.errors import ConfigError

CHROMIUM = "/usr/bin/chromium"


class SecretNotFoundError(Exception):
    pass


class NotebookAccessError(Exception):
    pass


@pytest.fixture
def fake_colab(monkeypatch, tmp_path):
    """Install a stand-in ``google.colab`` (drive, userdata) in ``sys.modules``."""
    secrets = {"HF_TOKEN": "hf-value", "DENIED": NotebookAccessError("no access")}

    def get(name):
        value = secrets.get(name, SecretNotFoundError(name))
        if isinstance(value, Exception):
            raise value
        return value

    mounted = []
    userdata = types.SimpleNamespace(get=get, SecretNotFoundError=SecretNotFoundError,
                                     NotebookAccessError=NotebookAccessError)
    drive = types.SimpleNamespace(mount=lambda path: (mounted.append(path),
                                                      Path(path, "MyDrive").mkdir(parents=True)))
    module = types.ModuleType("google.colab")
    module.userdata, module.drive = userdata, drive
    monkeypatch.setitem(sys.modules, "google.colab", module)
    return mounted


def test_not_colab_here():
    assert colab.is_colab() is False


def test_colab_detected_from_its_module(fake_colab):
    assert colab.is_colab() is True


def test_mount_drive_elsewhere_is_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert colab.mount_drive() == tmp_path / "gg_results"
    assert (tmp_path / "gg_results").is_dir()


def test_mount_drive_on_colab_mounts_and_uses_mydrive(fake_colab, tmp_path):
    folder = colab.mount_drive(tmp_path / "drive")
    assert fake_colab == [str(tmp_path / "drive")]
    assert folder == tmp_path / "drive" / "MyDrive" / "gg_results" and folder.is_dir()


def test_secret_from_environment_first(monkeypatch, fake_colab):
    monkeypatch.setenv("HF_TOKEN", "from-env")
    assert colab.get_secret("HF_TOKEN") == "from-env"


def test_secret_missing_off_colab(monkeypatch):
    monkeypatch.delenv("GG_TEST_SECRET", raising=False)
    assert colab.get_secret("GG_TEST_SECRET") is None


def test_secret_from_colab_userdata_and_its_errors(monkeypatch, fake_colab):
    for name in ("HF_TOKEN", "DENIED", "MISSING"):
        monkeypatch.delenv(name, raising=False)
    assert colab.get_secret("HF_TOKEN") == "hf-value"
    assert colab.get_secret("DENIED") is None  # NotebookAccessError swallowed
    assert colab.get_secret("MISSING") is None  # SecretNotFoundError swallowed


def test_chrome_switched_off(monkeypatch):
    monkeypatch.setenv(chrome.CHROME_ENV, "none")
    assert chrome.find_chrome() is None
    assert chrome.ensure_chrome() is None  # and nothing is downloaded


def test_chrome_wrong_explicit_path(monkeypatch, tmp_path):
    monkeypatch.setenv(chrome.CHROME_ENV, str(tmp_path / "chrome"))
    with pytest.raises(ConfigError, match="No executable Chrome at"):
        chrome.find_chrome()


def test_chrome_from_browser_path_like_kaleido(monkeypatch, tmp_path):
    from choreographer.cli._cli_utils import get_chrome_download_path

    local = get_chrome_download_path(mkdir=False)
    if local and local.exists():
        pytest.skip(f"kaleido's own Chrome at {local} comes first")
    fake = tmp_path / "my-chrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.delenv(chrome.CHROME_ENV, raising=False)
    monkeypatch.setenv("BROWSER_PATH", str(fake))
    assert chrome.find_chrome() == str(fake)


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                    reason="needs Debian chromium at /usr/bin/chromium (apt-get install chromium)")
def test_chrome_found_on_this_machine(monkeypatch):
    monkeypatch.delenv(chrome.CHROME_ENV, raising=False)
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    found = chrome.find_chrome()
    assert found and os.access(found, os.X_OK)
    assert chrome.ensure_chrome() == found


def test_chrome_hint_per_environment(fake_colab, monkeypatch):
    assert "plotly_get_chrome -y" in chrome.chrome_hint()
    monkeypatch.delitem(sys.modules, "google.colab")
    assert "apt-get install chromium" in chrome.chrome_hint()


def test_dashboard_on_colab_gives_the_proxy_link_and_embeds_the_dashboard(fake_colab,
                                                                         monkeypatch, tmp_path,
                                                                         capsys):
    """Contract: Colab's proxy link answers 403 in some new tabs, so the cell also embeds the
    dashboard (``serve_kernel_port_as_iframe``); the stand-in records the calls Colab gets."""
    import socket

    from gg_optuna_helpers.dashboard import serve_dashboard

    calls = []
    output = types.ModuleType("google.colab.output")
    output.eval_js = lambda js: calls.append(("eval_js", js)) or "https://abc-8081.colab.dev/"
    output.serve_kernel_port_as_iframe = lambda port, **kw: calls.append(("iframe", port))
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    monkeypatch.setattr(sys.modules["google.colab"], "output", output, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    with serve_dashboard(storage, port=port, tunnel="colab") as dash:
        assert dash.public_url == "https://abc-8081.colab.dev/"
        assert serve_dashboard(storage, port=port, tunnel="colab") is dash  # Run all again
    assert calls == [("eval_js", f"google.colab.kernel.proxyPort({port})"), ("iframe", port),
                     ("iframe", port)]  # embedded again: Run all cleared the cell's output
    out = capsys.readouterr().out
    assert "private to your Colab login" in out and "use the dashboard embedded below" in out
