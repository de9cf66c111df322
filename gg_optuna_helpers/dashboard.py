"""optuna-dashboard inside the kernel: a background thread, a private link, an optional tunnel.

    dash = serve_dashboard(storage)   # returns at once; the study cell can run meanwhile
    dash.stop()

The server listens on 127.0.0.1 only. The link to it is Colab's own proxy on Colab (private to
the signed-in user), or an ngrok tunnel with generated HTTP basic-auth credentials when an
authtoken is found (``NGROK_AUTHTOKEN`` in the environment or in Colab secrets). The dashboard
can delete studies, so it is never exposed without authentication, and the token is never
printed, logged or saved.
"""

from __future__ import annotations

import errno
import html
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from .colab import get_secret, is_colab
from .errors import ConfigError

HOST = "127.0.0.1"
DEFAULT_PORT = 8081  # Colab reports 8080 busy
TOKEN_NAME = "NGROK_AUTHTOKEN"
TUNNELS = ("auto", "colab", "ngrok", "none")


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow page never blocks the next (the UI polls every 10 s)."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        """Silence the per-request access log, which would flood notebook cells."""


@dataclass(eq=False)
class Dashboard:
    """A running dashboard: open ``public_url`` (or ``local_url``), call :meth:`stop` when done."""

    local_url: str
    public_url: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    note: str | None = None  # why there is no public link, when there is none
    _httpd: WSGIServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _tunnel: str | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Close the tunnel (if any) and the server; safe to call twice."""
        if self._tunnel:
            from pyngrok import ngrok
            from pyngrok.exception import PyngrokError

            try:
                ngrok.disconnect(self._tunnel)
            except PyngrokError:
                pass  # the agent is already gone; nothing left to close
            self._tunnel = None
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_dashboard(storage: str | optuna.storages.BaseStorage, *,
                    artifact_dir: str | os.PathLike | None = None, port: int = DEFAULT_PORT,
                    tunnel: str = "auto") -> Dashboard:
    """Serve optuna-dashboard from a daemon thread on 127.0.0.1:``port`` and print its link.

    ``artifact_dir``: the runner's ``FileSystemArtifactStore`` folder (previews, checkpoints).
    ``tunnel``: ``"auto"`` (Colab's private proxy on Colab; elsewhere ngrok when an authtoken is
    found; else local only), ``"colab"``, ``"ngrok"`` (public, with basic auth) or ``"none"``.
    """
    if tunnel not in TUNNELS:
        raise ConfigError(f"tunnel must be one of {', '.join(TUNNELS)}, but got {tunnel!r}.")
    if tunnel == "colab" and not is_colab():
        raise ConfigError("tunnel='colab' works only inside Google Colab: use tunnel='ngrok' "
                          "(needs an ngrok authtoken) or tunnel='none' here.")
    dash = _start(storage, artifact_dir, port)
    try:
        _link(dash, port, tunnel)
    except BaseException:
        dash.stop()
        raise
    print(f"optuna-dashboard is running at {dash.local_url} (this machine only).")
    if dash.public_url and dash.password:
        _reveal(f"Public link: {dash.public_url} (user {dash.username!r}, password "
                f"{dash.password!r}; shown only this once: anyone with them can delete studies).")
    elif dash.public_url:
        print(f"Open it here (private to your Colab login): {dash.public_url}")
    if dash.note:
        print(dash.note)
    return dash


def run_dashboard_forever(storage: str | optuna.storages.BaseStorage, *,
                          artifact_dir: str | os.PathLike | None = None,
                          port: int = DEFAULT_PORT, tunnel: str = "auto") -> None:
    """Serve the dashboard (as :func:`serve_dashboard`) until Ctrl-C, for a terminal."""
    dash = serve_dashboard(storage, artifact_dir=artifact_dir, port=port, tunnel=tunnel)
    try:
        print("Press Ctrl-C to stop.")
        while dash.running:
            dash._thread.join(timeout=1)  # short waits keep Ctrl-C responsive
    except KeyboardInterrupt:
        pass
    finally:
        dash.stop()


def _reveal(text: str) -> None:
    """Show a secret once without it landing in a saved notebook.

    In a Jupyter/Colab kernel it goes into a widget, whose text is not written to the .ipynb's
    outputs (only a reference to the widget is); in a terminal it is printed.
    """
    try:
        from IPython import get_ipython

        in_kernel = get_ipython() is not None and hasattr(get_ipython(), "kernel")
    except ImportError:
        in_kernel = False
    if not in_kernel:
        print(text)
        return
    import ipywidgets
    from IPython.display import display

    class _Secret(ipywidgets.HTML):
        def __repr__(self) -> str:  # the text/plain copy that notebooks do save
            return "(dashboard credentials, shown in the widget above and not saved)"

    display(_Secret(value=f"<code>{html.escape(text)}</code>"))


def ngrok_options(port: int, username: str, password: str, *,
                  config_version: str = "3") -> dict[str, Any]:
    """Keyword arguments for ``pyngrok.ngrok.connect``: always with HTTP basic auth.

    pyngrok 9 speaks ngrok's v3 endpoint API by default, where basic auth is a traffic-policy
    ``basic-auth`` action; with a v2 config it is the tunnel option ``basic_auth``.
    """
    if len(password) < 8:  # ngrok's own minimum
        raise ConfigError("The dashboard password must have at least 8 characters.")
    credentials = f"{username}:{password}"
    options: dict[str, Any] = {"addr": str(port), "proto": "http"}
    if config_version == "3":
        options["traffic_policy"] = {"on_http_request": [
            {"actions": [{"type": "basic-auth", "config": {"credentials": [credentials]}}]}]}
    else:
        options["basic_auth"] = [credentials]
    return options


def _start(storage: Any, artifact_dir: str | os.PathLike | None, port: int) -> Dashboard:
    import optuna_dashboard

    store = None
    if artifact_dir is not None:
        Path(artifact_dir).mkdir(parents=True, exist_ok=True)
        store = optuna.artifacts.FileSystemArtifactStore(str(artifact_dir))
    if isinstance(storage, str) and storage.startswith("sqlite"):
        # Wait for the study's writes instead of failing with "database is locked".
        storage = optuna.storages.RDBStorage(storage,
                                             engine_kwargs={"connect_args": {"timeout": 30}})
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    try:
        httpd = make_server(HOST, port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"Port {port} on {HOST} is already in use (another dashboard?): "
                              f"stop that one (dashboard.stop()) or pass another port, such as "
                              f"port={port + 1}.") from None
        raise
    thread = threading.Thread(target=httpd.serve_forever, name=f"optuna-dashboard:{port}",
                              daemon=True)
    thread.start()
    return Dashboard(local_url=f"http://{HOST}:{port}/", _httpd=httpd, _thread=thread)


def _link(dash: Dashboard, port: int, tunnel: str) -> None:
    """Give ``dash`` its public link (or a note saying why there is none)."""
    if tunnel == "none":
        return
    if tunnel == "colab" or (tunnel == "auto" and is_colab()):
        # Colab's proxy: only the signed-in user can open it; no credentials needed.
        from google.colab.output import eval_js

        dash.public_url = eval_js(f"google.colab.kernel.proxyPort({port})")
        return
    token = get_secret(TOKEN_NAME)
    if not token:
        dash.note = (f"No public link: no ngrok authtoken found (set {TOKEN_NAME} in the "
                     "environment or in Colab secrets); the dashboard is only at "
                     f"{dash.local_url}.")
        return
    _open_tunnel(dash, port, token)


def _open_tunnel(dash: Dashboard, port: int, token: str) -> None:
    from pyngrok import conf, ngrok
    from pyngrok.exception import PyngrokError, PyngrokNgrokInstallError

    config = conf.get_default()
    config.auth_token = token  # NGROK_AUTHTOKEN is read at import only: too late for secrets
    username, password = "optuna", secrets.token_urlsafe(12)
    pyngrok_log = logging.getLogger("pyngrok")
    level = pyngrok_log.level
    pyngrok_log.setLevel(logging.WARNING)  # its debug log prints the options: the password
    try:
        tunnel = ngrok.connect(**ngrok_options(port, username, password,
                                               config_version=config.config_version))
    except PyngrokNgrokInstallError:
        dash.note = ("No ngrok tunnel: the ngrok agent could not be downloaded (no network?); "
                     f"the dashboard is only at {dash.local_url}.")
        return
    except PyngrokError as e:
        code = re.search(r"ERR_NGROK_\d+", str(e))
        dash.note = ("No ngrok tunnel: ngrok refused to start it "
                     f"({code.group(0) if code else type(e).__name__}: check the authtoken and "
                     f"the network); the dashboard is only at {dash.local_url}.")
        return
    finally:
        pyngrok_log.setLevel(level)
    dash.public_url, dash.username, dash.password = tunnel.public_url, username, password
    dash._tunnel = tunnel.public_url
