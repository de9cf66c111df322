"""A public ngrok link to the local dashboard: basic auth always, and checked before it is shown.

    opened = open_ngrok(port, token)   # an Opened (url, user, password) or a one-line note
    opened.close()

The tunnel carries HTTP basic auth with a generated password (or ``GG_DASHBOARD_PASSWORD`` from
the environment or Colab secrets). Right after it opens, a request WITHOUT credentials must get
401; anything else closes it again: the studies are private (and with ``allow_edits`` the
dashboard can delete them). Whatever the tunnel forwards goes through the dashboard's WSGI app,
so its read-only guard (:func:`.dashboard.read_only`) refuses changes there as well.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .colab import get_secret
from .errors import ConfigError

PASSWORD_NAME = "GG_DASHBOARD_PASSWORD"
USERNAME = "optuna"


@dataclass(eq=False)
class Opened:
    """An open, verified tunnel: ``url`` answers 401 unless given ``username``/``password``."""

    url: str
    username: str
    password: str = field(repr=False)
    chosen: bool = False  # True when the password came from GG_DASHBOARD_PASSWORD

    def close(self) -> None:
        """Disconnect the tunnel; safe when the agent is already gone."""
        close_ngrok(self.url)


def ngrok_options(port: int, username: str, password: str, *,
                  config_version: str = "3") -> dict[str, Any]:
    """Keyword arguments for ``pyngrok.ngrok.connect``: always with HTTP basic auth.

    pyngrok 9 speaks ngrok's v3 endpoint API by default, where basic auth is a traffic-policy
    ``basic-auth`` action; with a v2 config it is the tunnel option ``basic_auth``.
    """
    if len(password) < 8:  # ngrok's own minimum
        raise ConfigError("The dashboard password must have at least 8 characters, but "
                          f"{PASSWORD_NAME} has {len(password)}: choose a longer one.")
    credentials = f"{username}:{password}"
    options: dict[str, Any] = {"addr": str(port), "proto": "http"}
    if config_version == "3":
        options["traffic_policy"] = {"on_http_request": [
            {"actions": [{"type": "basic-auth", "config": {"credentials": [credentials]}}]}]}
    else:
        options["basic_auth"] = [credentials]
    return options


def open_ngrok(port: int, token: str, *, local_url: str) -> Opened | str:
    """Open and verify an ngrok tunnel to ``port``; on failure, the one-line reason instead."""
    from pyngrok import conf, ngrok
    from pyngrok.exception import PyngrokError, PyngrokNgrokInstallError

    config = conf.get_default()
    config.auth_token = token  # NGROK_AUTHTOKEN is read at import only: too late for secrets
    chosen = get_secret(PASSWORD_NAME)
    password = chosen or secrets.token_urlsafe(12)
    options = ngrok_options(port, USERNAME, password, config_version=config.config_version)
    pyngrok_log = logging.getLogger("pyngrok")
    level = pyngrok_log.level
    pyngrok_log.setLevel(logging.WARNING)  # its debug log prints the options: the password
    only_local = f"the dashboard is only at {local_url}."
    try:
        tunnel = ngrok.connect(**options)
    except PyngrokNgrokInstallError:
        return ("No ngrok tunnel: the ngrok agent could not be downloaded (no network?); "
                + only_local)
    except PyngrokError as e:
        code = re.search(r"ERR_NGROK_\d+", str(e))
        return ("No ngrok tunnel: ngrok refused to start it "
                f"({code.group(0) if code else type(e).__name__}: check the authtoken and "
                f"the network); {only_local}")
    finally:
        pyngrok_log.setLevel(level)
    unsafe = anonymous_access(tunnel.public_url)
    if unsafe:
        close_ngrok(tunnel.public_url)
        return (f"No ngrok tunnel: it was closed again because {unsafe}, and a link without a "
                f"password would show your studies to anyone; {only_local}")
    return Opened(tunnel.public_url, USERNAME, password, chosen=bool(chosen))


def anonymous_access(url: str, *, tries: int = 3, timeout: float = 10) -> str | None:
    """None when ``url`` answers 401 to a request without credentials; else what it did."""
    request = urllib.request.Request(url, headers={"ngrok-skip-browser-warning": "1"})
    why = "it could not be reached"
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return f"it answered {response.status} to a request without a password"
        except urllib.error.HTTPError as e:
            return None if e.code == 401 else (f"it answered {e.code} to a request without a "
                                               "password, not 401")
        except OSError as e:  # not reachable yet (DNS, connection refused): try again
            why = f"it could not be reached to check that it asks for a password ({e})"
        time.sleep(attempt + 1)
    return why


def close_ngrok(url: str) -> None:
    """Disconnect the tunnel at ``url``; nothing to do when the agent is already gone."""
    from pyngrok import ngrok
    from pyngrok.exception import PyngrokError

    try:
        ngrok.disconnect(url)
    except PyngrokError:
        pass
