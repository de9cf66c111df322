"""Wheels published on an index page (kaolin's per-torch/CUDA pages, pytorch3d's): pick the one
this interpreter can install, or say in one sentence what was there instead."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urljoin

from packaging.tags import sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from ..errors import ConfigError
from .files import fetch
from .packages import Package
from .toolchain import Toolchain

_HREF = re.compile(r"""href=["']([^"']+?\.whl)(?:#[^"']*)?["']""", re.IGNORECASE)


def page_url(package: Package, toolchain: Toolchain) -> str:
    return package.page.format(torch=toolchain.torch, cu=toolchain.cu, py=toolchain.python,
                               pyt=toolchain.torch.replace(".", ""))


def read(url: str) -> str | None:
    """The text at ``url``; None when it is not there (404/403, as S3 answers)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - fixed hosts
            return response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        if e.code in (403, 404):
            return None
        raise ConfigError(f"Reading {url} failed (HTTP {e.code}): try again later.") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, FileNotFoundError):  # a file:// page that is not there
            return None
        raise ConfigError(f"Could not reach {url} ({reason}): check the runtime's internet "
                          "connection.") from None


def wheel_links(html: str, base: str) -> dict[str, str]:
    """Wheel file name -> absolute URL, for every wheel the page links."""
    links = {}
    for href in _HREF.findall(html):
        url = urljoin(base, href)
        links[unquote(url.rsplit("/", 1)[-1])] = url
    return links


def pick(links: dict[str, str], dist: str) -> str | None:
    """The newest wheel of ``dist`` whose tags this interpreter supports, by file name."""
    supported = {str(tag) for tag in sys_tags()}
    best = None
    for name in links:
        try:
            found, version, _build, tags = parse_wheel_filename(name)
        except InvalidWheelFilename:
            continue
        if found == canonicalize_name(dist) and any(str(t) in supported for t in tags):
            best = max(best or (version, name), (version, name))
    return best and best[1]


def fetch_wheel(package: Package, toolchain: Toolchain, out: Path) -> Path | None:
    """Download the matching wheel from the package's page into ``out``; None when none fits."""
    url = page_url(package, toolchain)
    html = read(url)
    links = wheel_links(html, url) if html is not None else {}
    name = pick(links, package.dist)
    if name is None:
        return None
    fetch(links[name], out / name)  # a failed download: one sentence, never a partial wheel
    return out / name


def no_wheel(package: Package, toolchain: Toolchain) -> str:
    """One sentence: which wheels or pages were found instead, and what to do."""
    url = page_url(package, toolchain)
    html = read(url)
    want = f"torch {toolchain.torch}, CUDA {toolchain.cuda}, Python {toolchain.python}"
    if html is not None:
        names = sorted(wheel_links(html, url)) or ["no wheels"]
        found = f"its page {url} has {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}"
    else:
        pages = _published_pages(package)
        found = (f"there is no page {url}" +
                 (f" (published: {', '.join(pages[-6:])})" if pages else ""))
    return (f"No {package.dist} wheel matches {want}: {found}; re-run with "
            f"build_from_source=True (--build-from-source) to build it from "
            f"{package.from_source} once (slow; the wheel is then cached).")


def _published_pages(package: Package) -> list[str]:
    try:
        text = read(package.listing) if package.listing else None
    except ConfigError:
        return []
    return sorted(set(re.findall(r"(torch-[\d.]+_cu\d+)\.html", text or "")))
