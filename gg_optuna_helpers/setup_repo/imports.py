"""What the checkout imports, read from its code: the PyPI packages it needs that do not import
yet, what a wheel's metadata requires, both installed with torch pinned; and a check, in a fresh
interpreter, that every module imports."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from ..errors import ConfigError
from ._step import run
from .toolchain import Toolchain

DISTS = {  # module -> PyPI distribution, only where the names differ
    "cv2": "opencv-python-headless", "PIL": "Pillow", "yaml": "PyYAML", "skimage": "scikit-image",
    "sklearn": "scikit-learn", "mpl_toolkits": "matplotlib",
}
BASE = {"torch"}  # the runtime's own: never installed here
PINNED = ("numpy", "ipython", "ipykernel", "tornado", "jupyter-client")  # Colab's own (FACTS 4):
# held at the installed version in every install, so nothing asks the runtime to restart
_MAGIC = re.compile(r"^\s*[%!].*$", re.MULTILINE)  # IPython lines in a notebook cell file
_PROBE = """import importlib, json, sys
bad = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as e:
        bad[name] = f"{type(e).__name__}: {e}".splitlines()[0]
print(json.dumps(bad))"""
_FIND = """import importlib.util, json, sys
print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]))"""
_INSTALLED = """import importlib.metadata as m, json
def sha(d):
    return json.loads(d.read_text("direct_url.json") or "{}").get(
        "archive_info", {}).get("hashes", {}).get("sha256")
found = {}
for d in m.distributions():  # in path order: the first one found is the one imported
    found.setdefault(d.metadata["Name"] or "", [d.version, sha(d)])
print(json.dumps(found))"""


def imported_modules(root: Path) -> set[str]:
    """The top-level names every ``.py`` file under ``root`` imports (absolute imports only)."""
    names: set[str] = set()
    for path in root.rglob("*.py"):
        tree = _parse(path.read_text(errors="replace"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return names


def _parse(text: str) -> ast.AST:
    for attempt in (text, _MAGIC.sub("", text)):
        try:
            return ast.parse(attempt)
        except SyntaxError:
            continue
    return ast.Module(body=[], type_ignores=[])  # not Python: it imports nothing we can read


def own_modules(root: Path) -> set[str]:
    """Names the checkout itself provides: each folder and ``.py`` file in it (a repo's scripts
    also import siblings, e.g. ``from dit_block import ...`` inside ``models/``)."""
    return {p.stem if p.suffix == ".py" else p.name for p in root.rglob("*")
            if ".git" not in p.parts and (p.is_dir() or p.suffix == ".py")}


def third_party(root: Path, handled: set[str]) -> list[str]:
    """The modules the checkout imports from outside: not its own, not the standard library,
    not the base runtime and not in ``handled`` (the wheels' modules)."""
    found = imported_modules(root) - own_modules(root) - set(sys.stdlib_module_names)
    return sorted(found - BASE - handled)


def dist_of(module: str) -> str:
    return DISTS.get(module, module)


def missing_modules(modules: list[str], site: Path | None = None,
                    python: str = sys.executable) -> list[str]:
    """The ``modules`` that ``python`` (with ``site`` first on its path) does not find; found,
    not imported."""
    return _probe(_FIND, modules, site, python) if modules else []


def failing_imports(modules: list[str], site: Path | None = None,
                    python: str = sys.executable) -> dict[str, str]:
    """Module -> error, for each of ``modules`` that does not import in a fresh interpreter."""
    try:
        return _probe(_PROBE, modules, site, python)
    except ConfigError as e:
        return {"python": str(e)}


def installed(site: Path | None = None,
              python: str = sys.executable) -> dict[str, tuple[str, str | None]]:
    """Canonical name -> (version, sha256 of the wheel file it was installed from, or None)
    of every distribution ``python`` finds."""
    found = _probe(_INSTALLED, [], site, python)
    return {canonicalize_name(name): (v, sha) for name, (v, sha) in found.items()}


def _probe(code: str, args: list[str], site: Path | None, python: str):
    """Run ``code`` in a fresh interpreter of the environment set up; its JSON answer."""
    path = [str(site) if site else "", os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env,
                          check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"{python} could not run ({last[-200:]}): check the Python being set "
                          "up.")
    return json.loads(done.stdout)


def wheel_requires(wheel: Path) -> list[Requirement]:
    """The wheel's ``Requires-Dist`` (its METADATA) whose markers hold here, extras left out."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = HeaderParser().parsestr(z.read(name).decode("utf-8", errors="replace"))
    found = []
    for line in meta.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            found.append(req)
    return found


def unsatisfied(requirements: list[Requirement],
                have: dict[str, tuple[str, str | None]]) -> tuple[list[Requirement], list[str]]:
    """Those of ``requirements`` whose distribution is absent from ``have`` (:func:`installed`),
    and the installed ones at another version: kept as they are (kaolin asks for numpy<2 and
    jupyter_client<8; changing Colab's own packages breaks the runtime), named for the line."""
    absent, kept = [], []
    for r in requirements:
        version = have.get(canonicalize_name(r.name), (None,))[0]
        if version is None:
            absent.append(r)
        elif not r.specifier.contains(version, prereleases=True):
            kept.append(f"{r.name} {version} (asks {r.specifier})")
    return absent, kept


def pip_install_command(packages: list[str], constraints: Path, toolchain: Toolchain,
                        target: Path | None = None) -> list[str]:
    """``pip install`` from PyPI with torch pinned by a constraints file, so never reinstalled
    (into ``target`` instead of the environment when given)."""
    where = ["--target", str(target), "--upgrade"] if target else []
    return [toolchain.executable, "-m", "pip", "install", "--quiet", *where, "--constraint",
            str(constraints), *packages]


def pip_install(packages: list[str], toolchain: Toolchain, target: Path | None = None,
                have: dict[str, tuple[str, str | None]] | None = None) -> None:
    """Run :func:`pip_install_command` with ``torch==<installed>`` as a constraint, and each
    of the runtime's :data:`PINNED` packages found in ``have`` at its installed version."""
    pins = {"torch": toolchain.torch_full}
    pins.update({name: have[name][0] for name in PINNED if name in (have or {})})
    with tempfile.TemporaryDirectory(prefix="gg_pin_") as tmp:
        pin = Path(tmp) / "constraints.txt"
        pin.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
        run(pip_install_command(packages, pin, toolchain, target),
            f"pip install {' '.join(packages)}",
            "check the runtime's internet connection and re-run.")


def install_missing(root: Path, wheels: list[Path], handled: set[str], toolchain: Toolchain,
                    site: Path | None = None) -> str:
    """Install what the checkout imports and does not find, and what the wheels require and
    is not installed, in one pip call; what was done, in one line."""
    python = toolchain.executable
    needs = {"the repo imports": [dist_of(m) for m in missing_modules(
        third_party(root, handled), site, python)]}
    have, kept = installed(site, python), []
    for wheel in wheels:
        reqs, other = unsatisfied(wheel_requires(wheel), have)
        needs[f"{parse_wheel_filename(wheel.name)[0]} requires"] = [str(r) for r in reqs]
        kept += other
    packages = sorted({p for group in needs.values() for p in group})
    note = f"; kept as installed: {', '.join(kept)}" if kept else ""
    if not packages:
        return "every PyPI package the repo imports and its wheels require is installed" + note
    pip_install(packages, toolchain, site, have)
    said = "; ".join(f"{why} {', '.join(group)}" for why, group in needs.items() if group)
    return f"installed from PyPI with torch pinned at {toolchain.torch_full} ({said}){note}"
