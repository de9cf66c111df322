"""A STAND-IN for ngrok's service, which cannot be reached from this machine.

``install()`` replaces pyngrok's ``ngrok.connect``/``ngrok.disconnect`` (nothing else): each
``connect`` starts a real local HTTP proxy in front of the dashboard that enforces the basic-auth
credentials found in the options, the way ngrok's ``basic-auth`` traffic-policy action (v3) or
``basic_auth`` option (v2) does. ``install(enforce=False)`` stands in for a tunnel whose auth did
not take effect: it forwards everyone. The package's own check must then close it.

Used by tests in this process and, imported from an injected cell, inside a notebook kernel.
"""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPEN: dict[str, ThreadingHTTPServer] = {}  # public url -> proxy
CALLS: list[dict[str, Any]] = []  # the options of every connect, newest last


def credentials(options: dict[str, Any]) -> list[str]:
    """The ``user:password`` pairs a tunnel was asked to require (v3 policy or v2 option)."""
    if "basic_auth" in options:
        return list(options["basic_auth"])
    rules = options.get("traffic_policy", {}).get("on_http_request", [])
    return [c for rule in rules for action in rule["actions"] if action["type"] == "basic-auth"
            for c in action["config"]["credentials"]]


def _handler(target: str, allowed: set[str], enforce: bool) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (stdlib's name); every method, as ngrok does
            given = self.headers.get("Authorization", "")
            user_pass = (base64.b64decode(given[6:]).decode()
                         if given.startswith("Basic ") else "")
            if enforce and user_pass not in allowed:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="ngrok"')
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            request = urllib.request.Request(
                target + self.path, method=self.command, data=self.rfile.read(length) or None,
                headers={"Content-Type": self.headers.get("Content-Type", "text/plain")})
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    status, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    return Proxy


def install(enforce: bool = True, setattr=setattr) -> None:  # noqa: A002
    """Replace ``pyngrok.ngrok.connect``/``disconnect`` with local basic-auth proxies.

    ``setattr``: pass pytest's ``monkeypatch.setattr`` to have them restored after a test.
    """
    from pyngrok import ngrok

    def connect(addr: str, proto: str = "http", **options: Any):
        CALLS.append({"addr": addr, "proto": proto, **options})
        handler = _handler(f"http://127.0.0.1:{addr}", set(credentials(options)), enforce)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        OPEN[url] = server
        return type("Tunnel", (), {"public_url": url})()

    def disconnect(public_url: str, pyngrok_config: Any = None) -> None:
        server = OPEN.pop(public_url, None)
        if server is not None:
            server.shutdown()
            server.server_close()

    setattr(ngrok, "connect", connect)
    setattr(ngrok, "disconnect", disconnect)
