"""Which Chrome kaleido uses for PNG plots: found, chosen, switched off, or fetched on Colab.

Checked when called, never at import, so a test can change ``GG_OPTUNA_CHROME`` and get the
other branch.
"""

from __future__ import annotations

import os

from .colab import is_colab
from .errors import ConfigError

CHROME_ENV = "GG_OPTUNA_CHROME"
"""A Chrome/Chromium path for PNG export, or ``none`` to write HTML plots only."""

_NO_CHROME = ("none", "off", "no", "0", "false")


def find_chrome(path: str | os.PathLike | None = None) -> str | None:
    """The Chrome/Chromium kaleido would use, or None when PNG export is off or impossible.

    Order: ``path``; the ``GG_OPTUNA_CHROME`` variable (a path, or ``none`` for HTML only);
    then kaleido's own search (its downloaded copy, ``BROWSER_PATH``, chrome/chromium on PATH
    and the usual install places).
    """
    chosen = os.fspath(path) if path is not None else os.environ.get(CHROME_ENV, "").strip()
    if chosen.lower() in _NO_CHROME:
        # Explicitly switched off (tests, machines where Chrome misbehaves).
        return None
    if chosen:
        # Explicitly chosen: a wrong path is a mistake worth saying, not a silent fallback.
        if not _is_exe(chosen):
            raise ConfigError(
                f"No executable Chrome at {chosen!r}: fix the path, or set {CHROME_ENV}=none "
                "to write HTML plots only."
            )
        return chosen
    # Kaleido's own order, through the library it uses to start Chrome.
    from choreographer.browsers.chromium import Chromium

    found = Chromium.find_browser(skip_local=False)
    return found if found and _is_exe(found) else None


def ensure_chrome() -> str | None:
    """A Chrome for kaleido: the one found, or on Colab a freshly downloaded Chrome for Testing."""
    found = find_chrome()
    if found or os.environ.get(CHROME_ENV, "").strip().lower() in _NO_CHROME:
        return found
    if not is_colab():
        # Elsewhere installing a browser is the user's call (apt-get install chromium).
        return None
    # Colab: Ubuntu's chromium-browser is a snap stub, so fetch Chrome for Testing (~150 MB).
    import kaleido

    return os.fspath(kaleido.get_chrome_sync())


def chrome_hint() -> str:
    """One line saying how to get a Chrome for PNG export here."""
    if is_colab():
        return ("no Chrome for PNG export: run `!plotly_get_chrome -y` "
                "(or gg_optuna_helpers.chrome.ensure_chrome()) and export again")
    return ("no Chrome for PNG export: install one (Debian/Ubuntu: `apt-get install chromium`; "
            "anywhere: `plotly_get_chrome -y`) or set BROWSER_PATH, then export again")


def _is_exe(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)
