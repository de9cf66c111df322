"""optuna-dashboard inside the kernel: a background thread, a private link, an optional tunnel.

    dash = serve_dashboard(storage)   # returns at once; the study cell can run meanwhile
    dash.stop()

The dashboard only reads: it serves a live read-only view of the study (no lease, nothing
written; see :func:`.storage.open_view`), and every request but GET and HEAD gets 403 with a
one-line reason (:func:`read_only`), so no click deletes or changes a study or trial, also
through a tunnel. ``allow_edits=True`` lets edits through, on a storage the dashboard may write
(a database URL, or a storage opened to write). The server listens on 127.0.0.1 only. Serving
again on a port this process already serves reuses that server, so re-running a notebook cell
never fails with "port already in use". The link is
Colab's own proxy on Colab (private to the signed-in user) with the dashboard embedded in the
cell as well (the proxy link answers 403 in some new tabs). A public ngrok tunnel opens only when
asked for (``tunnel="ngrok"``), carries basic auth and is closed again unless it refuses a request
without credentials (see :mod:`.tunnel`). Secrets never reach an output, a log or a saved file:
in a notebook a generated password goes to a private file outside the results folder.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from .colab import get_secret, is_colab
from .errors import ConfigError
from .layout import is_place, is_url
from .storage import StudyStorage, open_view, optuna_storage
from .tunnel import Opened, ngrok_options, open_ngrok

__all__ = ["DEFAULT_PORT", "Dashboard", "check_place", "ngrok_options", "read_only",
           "run_dashboard_forever", "serve_dashboard"]

HOST = "127.0.0.1"
DEFAULT_PORT = 8081  # Colab reports 8080 busy
TOKEN_NAME = "NGROK_AUTHTOKEN"
TUNNELS = ("auto", "colab", "ngrok", "none")
Storage = StudyStorage | optuna.storages.BaseStorage | str | os.PathLike
_SERVING: dict[int, tuple[str, str, Dashboard]] = {}  # port -> (storage key, tunnel, dashboard)
READS = ("GET", "HEAD")  # let through; each route of optuna-dashboard 0.21 that writes is not GET
REFUSED = ("This dashboard only reads, so it changed nothing: deleting, renaming or changing a "
           "study or trial (notes too) needs a dashboard started with allow_edits=True "
           "(--allow-edits) on a database URL.")
EDITS_NEED = ("allow_edits needs a storage the dashboard may write: a database URL "
              "(sqlite:///PATH or postgresql://...) or a storage opened to write; a results "
              "folder is always shown read-only, since its database copies belong to the run "
              "that holds the study.")


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
    allow_edits: bool = False  # False: every request that would change a study gets 403
    _httpd: WSGIServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _tunnel: Opened | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Close the tunnel (if any) and the server; safe to call twice."""
        if self._tunnel:
            self._tunnel.close()
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


def serve_dashboard(storage: Storage, *, study_name: str | None = None,
                    artifact_dir: str | os.PathLike | None = None, port: int = DEFAULT_PORT,
                    tunnel: str = "auto", allow_edits: bool = False) -> Dashboard:
    """Serve optuna-dashboard from a daemon thread on 127.0.0.1:``port`` and print its link.

    ``storage``: any storage form (a folder, a URL, a :class:`StudyStorage`, an Optuna
    storage); a folder or SQLite file is shown through a live read-only view (``study_name``
    live even before it exists, or every study of a folder as it is when the dashboard starts);
    an opened storage is served as it is. ``artifact_dir``: the runner's
    ``FileSystemArtifactStore`` folder (previews, checkpoints; never created here).
    ``tunnel``: ``"auto"`` (Colab's private proxy on Colab, else this machine only),
    ``"colab"``, ``"ngrok"`` (public, with basic auth; needs ``NGROK_AUTHTOKEN``) or ``"none"``.
    ``allow_edits``: let deletes and edits through (needs a database URL or a storage opened to
    write); by default they get 403. A dashboard this process already serves on ``port`` is
    reused when the storage, tunnel and ``allow_edits`` are the same, and replaced otherwise.
    """
    if tunnel not in TUNNELS:
        raise ConfigError(f"tunnel must be one of {', '.join(TUNNELS)}, but got {tunnel!r}.")
    if tunnel == "colab" and not is_colab():
        raise ConfigError("tunnel='colab' works only inside Google Colab: use tunnel='ngrok' "
                          "(needs an ngrok authtoken) or tunnel='none' here.")
    check_place(port, artifact_dir)
    key = f"{_storage_key(storage, study_name)} edits={allow_edits}"
    reused = _reuse(port, key, tunnel)
    if reused is not None:
        return reused
    rdb = _served(storage, study_name, allow_edits)  # a wrong form: one sentence
    _stop_serving(port)
    dash = _start(rdb, artifact_dir, port, allow_edits)
    try:
        _link(dash, port, tunnel)
    except BaseException:
        dash.stop()
        raise
    _SERVING[port] = (key, tunnel, dash)
    _announce(dash, port)
    return dash


def run_dashboard_forever(storage: Storage, *, study_name: str | None = None,
                          artifact_dir: str | os.PathLike | None = None,
                          port: int = DEFAULT_PORT, tunnel: str = "auto",
                          allow_edits: bool = False) -> None:
    """Serve the dashboard (as :func:`serve_dashboard`) until Ctrl-C, for a terminal.

    Not ``optuna_dashboard.run_server``: that one blocks in ``serve_forever``, so the ngrok
    tunnel could not be checked against the running server before its link is shown, and it
    logs every request.
    """
    dash = serve_dashboard(storage, study_name=study_name, artifact_dir=artifact_dir, port=port,
                           tunnel=tunnel, allow_edits=allow_edits)
    try:
        print("Press Ctrl-C to stop.")
        while dash.running:
            dash._thread.join(timeout=1)  # short waits keep Ctrl-C responsive
    except KeyboardInterrupt:
        pass
    finally:
        dash.stop()


def _storage_key(storage: Any, study_name: str | None) -> str:
    """What identifies a storage across re-runs of a cell (a fresh object each time)."""
    where = os.fspath(storage) if isinstance(storage, (str, os.PathLike)) else getattr(
        storage, "url", id(storage))
    return f"{where} {study_name}"


def _served(storage: Any, study_name: str | None,
            allow_edits: bool) -> optuna.storages.BaseStorage:
    """What the dashboard serves: a folder or URL as a live read-only view, an opened storage as
    it is; with ``allow_edits``, a storage it may write (or one sentence why there is none)."""
    if allow_edits:
        if (isinstance(storage, StudyStorage) and storage.read_only) or (
                is_place(storage) and not is_url(storage)):
            raise ConfigError(EDITS_NEED)
        return optuna_storage(storage, study_name, writable=True)
    if not is_place(storage):
        return optuna_storage(storage, study_name)
    view = open_view(storage, study_name, missing_ok=True).rdb
    if study_name and not any(s.study_name == study_name for s in view.get_all_studies()):
        where = "this database" if is_url(storage) else os.fspath(storage)  # no password shown
        print(f"There is no study {study_name!r} in {where} yet: the dashboard shows it as soon "
              "as a run writes it.")
    return view


def read_only(app: Any) -> Any:
    """``app`` (WSGI) behind a guard that answers 403, with :data:`REFUSED` as its JSON
    ``reason``, to every request but GET and HEAD: none of those changes a study."""
    def guarded(environ: dict, start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD", "GET").upper() in READS:  # Bottle upper-cases it too
            return app(environ, start_response)
        _drain(environ)
        body = json.dumps({"reason": REFUSED}).encode()
        start_response("403 Forbidden", [("Content-Type", "application/json"),
                                         ("Content-Length", str(len(body)))])
        return [body]
    return guarded


def _drain(environ: dict, limit: int = 64 << 20) -> None:
    """Read the refused request's body, so that closing the socket does not reset it before the
    client reads the 403 (a body over ``limit`` is left: that client may see a reset)."""
    try:
        left = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    while 0 < left <= limit:
        chunk = environ["wsgi.input"].read(min(left, 1 << 16))
        if not chunk:
            return
        left -= len(chunk)


def check_place(port: object, artifact_dir: str | os.PathLike | None, *, port_name: str = "port",
                artifacts_name: str = "artifact_dir") -> None:
    """A port from 1 to 65535 and an artifact folder that is not a file, or one sentence."""
    if not (isinstance(port, int) and 1 <= port <= 65535):
        raise ConfigError(f"{port_name} must be from 1 to 65535, but got {port!r}.")
    if artifact_dir is not None and Path(artifact_dir).exists() and not Path(artifact_dir).is_dir():
        raise ConfigError(f"The artifact folder {artifact_dir} is a file: pass a folder "
                          f"({artifacts_name}).")


def _reuse(port: int, key: str, tunnel: str) -> Dashboard | None:
    """The dashboard this process serves on ``port``, if it serves this storage and tunnel."""
    key_, tunnel_, dash = _SERVING.get(port, ("", "", None))
    if dash is None or not dash.running or (key_, tunnel_) != (key, tunnel):
        return None
    _announce(dash, port, reused=True)
    return dash


def _stop_serving(port: int) -> None:
    """Stop the dashboard this process serves on ``port`` (another storage or tunnel)."""
    dash = _SERVING.pop(port, (None, None, None))[2]
    if dash is not None:
        dash.stop()


def _announce(dash: Dashboard, port: int, *, reused: bool = False) -> None:
    """Print the links; show Colab's embedded view; hand over credentials without saving them."""
    if reused:
        print(f"optuna-dashboard is already running at {dash.local_url} (reused).")
    else:
        edits = ("edits allowed: it can delete and change studies" if dash.allow_edits else
                 "read-only: it refuses to delete or change a study")
        print(f"optuna-dashboard is running at {dash.local_url} (this machine only; {edits}).")
    if dash._tunnel is not None and reused:
        print(f"Public link: {dash.public_url} (user {dash.username!r}, the same password).")
    elif dash._tunnel is not None:
        _hand_over(dash._tunnel, dash.allow_edits)
    elif dash.public_url:  # Colab's proxy; embedded again, since Run all cleared the output
        print(f"Open it here (private to your Colab login): {dash.public_url}\n"
              "If a new tab shows 403, use the dashboard embedded below.")
        from google.colab.output import serve_kernel_port_as_iframe

        serve_kernel_port_as_iframe(port, height=820)
    if dash.note and not reused:
        print(dash.note)


def credentials_file() -> Path:
    """Where a notebook's generated dashboard password is kept: private, outside every result."""
    return Path.home() / ".config" / "gg_optuna_helpers" / "dashboard_password"


def _hand_over(opened: Opened, allow_edits: bool) -> None:
    """Tell the user the tunnel's credentials without putting the password in a saved file.

    A terminal's output is not saved: the password is printed once. A notebook's output is
    (and so is its widget state): there the password goes to :func:`credentials_file` (mode 600).
    """
    head = f"Public link: {opened.url} (user {opened.username!r}"
    if opened.chosen:
        print(f"{head}, the password you set in GG_DASHBOARD_PASSWORD).")
    elif not _in_kernel():
        can = "see and delete your studies" if allow_edits else "see your studies"
        print(f"{head}, password {opened.password!r}; shown only this once: anyone with them "
              f"can {can}).")
    else:
        path = credentials_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        path.chmod(0o600)  # before the password is in it
        path.write_text(opened.password + "\n")
        print(f"{head}; the password is in {path}: open that file from the Files panel, since "
              "it is kept out of this notebook, or set GG_DASHBOARD_PASSWORD to choose one).")


def _in_kernel() -> bool:
    """True inside a Jupyter/Colab kernel, whose outputs end up in a saved .ipynb."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def _start(storage: optuna.storages.BaseStorage, artifact_dir: str | os.PathLike | None,
           port: int, allow_edits: bool) -> Dashboard:
    import optuna_dashboard

    store = None
    if artifact_dir is not None:
        if allow_edits:  # an upload needs the folder; a read-only dashboard makes nothing
            Path(artifact_dir).mkdir(parents=True, exist_ok=True)
        store = optuna.artifacts.FileSystemArtifactStore(str(artifact_dir))
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    app = app if allow_edits else read_only(app)
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
    return Dashboard(local_url=f"http://{HOST}:{port}/", allow_edits=allow_edits, _httpd=httpd,
                     _thread=thread)


def _link(dash: Dashboard, port: int, tunnel: str) -> None:
    """Give ``dash`` its link (or a note saying why there is none)."""
    if tunnel == "none" or (tunnel == "auto" and not is_colab()):
        return  # a public tunnel is opened only when asked for, never because a token exists
    if tunnel in ("colab", "auto"):
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
    opened = open_ngrok(port, token, local_url=dash.local_url)
    if isinstance(opened, str):
        dash.note = opened
        return
    dash.public_url, dash.username, dash.password = opened.url, opened.username, opened.password
    dash._tunnel = opened
