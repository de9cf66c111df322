"""Papermill's way of overriding a notebook's parameters, without papermill (not installed here).

``inject(src, dst, TUNNEL="none")`` writes a copy of ``src`` with a cell tagged
``injected-parameters`` right after the cell tagged ``parameters``: the form's defaults run
first, then the overrides, exactly as papermill does. ``prelude`` adds test-only code (a
stand-in) in a cell of its own before the overrides.
"""

from __future__ import annotations

from pathlib import Path

import nbformat


def inject(src: Path, dst: Path, *, prelude: str = "", **params) -> Path:
    nb = nbformat.read(src, as_version=4)
    [at] = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    cells = [nbformat.v4.new_code_cell(
        "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items()),
        metadata={"tags": ["injected-parameters"]})]
    if prelude:
        cells.insert(0, nbformat.v4.new_code_cell(prelude, metadata={"tags": ["test-prelude"]}))
    nb.cells[at + 1:at + 1] = cells
    nbformat.write(nb, dst)
    return dst
