"""Where are we running? Colab or not, in one small module (each branch says why).

Everything here is checked when called, never at import, so a test or a terminal can change
the environment (``sys.modules``, ``os.environ``) and get the other branch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .layout import DEFAULT_FOLDER


def is_colab() -> bool:
    """True inside a Google Colab kernel."""
    # Colab's kernel imports google.colab before any user code runs; nowhere else does.
    return "google.colab" in sys.modules


def mount_drive(path: str | os.PathLike = "/content/drive") -> Path:
    """A folder that outlives the runtime: ``MyDrive/gg_results`` on Colab (Drive mounted at
    ``path``), ``./gg_results`` elsewhere (``layout.DEFAULT_FOLDER``)."""
    if is_colab():
        # Colab: mount Drive (asks for consent once; re-running is safe) and use MyDrive.
        from google.colab import drive

        drive.mount(str(path))
        folder = Path(path) / "MyDrive" / DEFAULT_FOLDER
    else:
        # A terminal, CI or a local Jupyter: the disk is already durable.
        folder = Path.cwd() / DEFAULT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def get_secret(name: str) -> str | None:
    """The secret ``name`` from the environment, else from Colab's secrets panel, else None."""
    # The environment first: terminals, CI and an explicit os.environ[...] in a notebook.
    if os.environ.get(name):
        return os.environ[name]
    if not is_colab():
        return None
    # Colab: the secrets panel (key icon). Missing, or notebook access not granted: None.
    from google.colab import userdata

    try:
        return userdata.get(name) or None
    except (userdata.SecretNotFoundError, userdata.NotebookAccessError):
        return None
