"""What the checkout imports: the repo's PyPI packages (installed with torch pinned) and a
check, in a fresh interpreter, that every module imports."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ._step import run
from .toolchain import Toolchain

PYPI = {  # module the repo imports -> PyPI package (FACTS.md section 8)
    "lpips": "lpips", "kornia": "kornia", "einops": "einops", "h5py": "h5py",
    "tensorboardX": "tensorboardX", "cv2": "opencv-python-headless", "imageio": "imageio",
    "matplotlib": "matplotlib", "wandb": "wandb", "plyfile": "plyfile", "scipy": "scipy",
}
_PROBE = """import importlib, json, sys
bad = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as e:
        bad[name] = f"{type(e).__name__}: {e}".splitlines()[0]
print(json.dumps(bad))"""


def failing_imports(modules: list[str], target: Path | None = None) -> dict[str, str]:
    """Module -> error, for each of ``modules`` that does not import in a fresh interpreter."""
    path = [str(target) if target else "", os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
    done = subprocess.run([sys.executable, "-c", _PROBE, *modules], capture_output=True,
                          text=True, env=env, check=False)
    return json.loads(done.stdout or "{}") or ({} if done.returncode == 0 else
                                               {"python": done.stderr.strip()[-200:]})


def pip_install_command(packages: list[str], constraints: Path) -> list[str]:
    """``pip install`` from PyPI with torch pinned by a constraints file, so never reinstalled."""
    return [sys.executable, "-m", "pip", "install", "--quiet", "--constraint", str(constraints),
            *packages]


def install_missing(toolchain: Toolchain) -> str:
    """Install the repo's PyPI packages that are not there yet; what was done."""
    importlib.invalidate_caches()
    missing = sorted(package for module, package in PYPI.items()
                     if importlib.util.find_spec(module) is None)
    if not missing:
        return "the repo's PyPI packages are all there"
    with tempfile.TemporaryDirectory(prefix="gg_pin_") as tmp:
        pin = Path(tmp) / "constraints.txt"
        pin.write_text(f"torch=={toolchain.torch_full}\n")
        run(pip_install_command(missing, pin), f"pip install {' '.join(missing)}",
            "check the runtime's internet connection and re-run.")
    return f"installed {', '.join(missing)} from PyPI (torch pinned at {toolchain.torch_full})"
