"""Step 4: Drive to local disk. Data folders are copied with a progress bar, files already
there with the same size skipped; the repo's model files come from ``config_models.zip``.

Of a data folder only the files the checkout will open are copied, found under either
file-name scheme (fork ``subject0000.h5``, upstream ``xgaze_subject0000.h5``) at the top
level or one folder down (``train/``); the copy keeps their place and links the name the
checkout opens to each (the repo itself is never edited)."""

from __future__ import annotations

import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from ..errors import ConfigError

CONFIG_MODELS_URL = "https://huggingface.co/ucwxb/GazeGaussian/resolve/main/config_models.zip"
"""Named by the repo's README ("For required files") and the fork's models/mesh_head.py."""
CONFIG_MODELS = "configs/config_models"
_CHUNK = 8 << 20


def copy_tree(src: Path, dst: Path) -> str:
    """Copy the files under ``src`` to ``dst``; skip those already there with the same size."""
    _need_folder(src)
    files = [p.relative_to(src) for p in sorted(src.rglob("*")) if p.is_file()]
    todo = _todo(src, dst, files)
    _check_space(dst, _bytes(src, todo))
    return _copy_files(src, dst, files, todo)


@dataclass
class DataCopy:
    """One data folder's copy: each file name the checkout opens -> where it is under ``src``
    (relative), and the names found nowhere."""

    src: Path
    dst: Path
    found: dict[str, Path]
    missing: list[str]

    @classmethod
    def plan(cls, src: Path, dst: Path, names: dict[str, list[str]]) -> DataCopy:
        """``names``: each name the checkout opens -> its spellings (``data.spellings``)."""
        from ..backends.gazegaussian.data import locate

        _need_folder(src)
        return cls(src, dst, *locate(src, names))

    def todo(self) -> list[Path]:
        return _todo(self.src, self.dst, list(dict.fromkeys(self.found.values())))


def copy_data(copies: list[DataCopy]) -> list[str]:
    """Copy each folder's files (one free-space check for all: only what is not there yet),
    then link the names the checkout opens; one line per folder."""
    todo = [c.todo() for c in copies]
    if copies:
        _check_space(copies[0].dst, sum(_bytes(c.src, t) for c, t in zip(copies, todo)))
    lines = []
    for copy, pending in zip(copies, todo):
        line = _copy_files(copy.src, copy.dst, list(dict.fromkeys(copy.found.values())), pending)
        linked = [(name, rel) for name, rel in copy.found.items() if _link(copy.dst, name, rel)]
        if linked:
            line += (f"; {len(linked)} linked under the names the checkout opens "
                     f"(e.g. {linked[0][0]} -> {linked[0][1]})")
        if copy.missing:
            line += f"; {len(copy.missing)} not found (e.g. {copy.missing[0]})"
        lines.append(line)
    return lines


def place_model_files(root: Path, archive: Path, needed: list[str],
                      download: Callable[[str, Path], None] | None = None) -> str:
    """Make the repo's ``needed`` files exist, unzipping ``archive`` (downloaded there once)."""
    missing = [n for n in needed if not (root / n).is_file()]
    if not missing:
        return "model files already in place"
    how = "from the cache"
    if not archive.is_file():
        (download or fetch)(CONFIG_MODELS_URL, archive)
        how = f"downloaded from {CONFIG_MODELS_URL}"
    count = unzip(archive, root / "configs")
    still = [n for n in needed if not (root / n).is_file()]
    if still:
        raise ConfigError(f"{archive} has no {Path(still[0]).name}: delete it so that the next "
                          f"run downloads it again, or put the file in {root / CONFIG_MODELS}.")
    return f"{archive.name} {how}: {count} files unzipped into {root / 'configs'}"


def place_weights(weights: Path, root: Path) -> str:
    """A user's weights: a .zip is unzipped like config_models.zip, a file goes next to it."""
    if weights.suffix == ".zip" and weights.is_file():
        return f"{weights}: {unzip(weights, root / 'configs')} files unzipped"
    if not weights.is_file():
        raise ConfigError(f"There is no weights file {weights}: fix the path or leave it out.")
    dest = root / CONFIG_MODELS / weights.name
    if _same_size(weights, dest):
        return f"{weights.name} already in {dest.parent}"
    with tqdm(total=weights.stat().st_size, unit="B", unit_scale=True,
              desc=f"copy {weights.name}") as bar:
        _copy_file(weights, dest, bar.update)
    return f"{weights} -> {dest}"


def unzip(archive: Path, configs: Path) -> int:
    """Unzip into ``configs/config_models`` (members may or may not start with that folder);
    skip members already there with the same size. The number of files written."""
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            written = 0
            for m in members:
                name = m.filename.removeprefix("config_models/")
                dest = configs / "config_models" / name
                if ".." in Path(name).parts or _has(dest, m.file_size):
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(m) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                written += 1
            return written
    except zipfile.BadZipFile:
        raise ConfigError(f"{archive} is not a zip archive: delete it so that the next run "
                          "downloads it again.") from None


def fetch(url: str, archive: Path) -> None:
    """Download ``url`` to ``archive`` (a temporary name first, so a broken download is never
    taken for the archive)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=60) as src, \
                open(partial, "wb") as out:  # noqa: S310 - the fixed URL above
            shutil.copyfileobj(src, out, _CHUNK)
    except OSError as e:
        raise ConfigError(f"Downloading {url} failed ({getattr(e, 'reason', e)}): download it "
                          f"yourself and put it at {archive}.") from None
    os.replace(partial, archive)


def _need_folder(src: Path) -> None:
    if not src.is_dir():
        raise ConfigError(f"There is no folder {src}: fix the path (on Colab, Drive is under "
                          "/content/drive/MyDrive).")


def _todo(src: Path, dst: Path, files: list[Path]) -> list[Path]:
    """Of ``files`` (relative), those not at ``dst`` with the same size."""
    return [f for f in files if not _same_size(src / f, dst / f)]


def _bytes(src: Path, files: list[Path]) -> int:
    return sum((src / f).stat().st_size for f in files)


def _copy_files(src: Path, dst: Path, files: list[Path], todo: list[Path]) -> str:
    """Copy ``todo`` (relative paths, a part of ``files``) with one progress bar."""
    size = _bytes(src, todo)
    dst.mkdir(parents=True, exist_ok=True)
    with tqdm(total=size, unit="B", unit_scale=True, desc=f"copy {src.name}",
              disable=not todo) as bar:
        for rel in todo:
            _copy_file(src / rel, dst / rel, bar.update)
    return (f"{src} -> {dst}: {len(todo)} files copied ({_size(size)}), "
            f"{len(files) - len(todo)} already there")


def _link(dst: Path, name: str, rel: Path) -> bool:
    """Make ``dst/name`` a relative link to ``dst/rel``; True when that is a link."""
    link = dst / name
    if Path(name) == rel:
        return False
    if not (link.is_symlink() and Path(os.readlink(link)) == rel):
        partial = link.with_name(f".{name}.link")
        partial.unlink(missing_ok=True)
        partial.symlink_to(rel)
        os.replace(partial, link)
    return True


def _has(dest: Path, size: int) -> bool:
    return dest.is_file() and dest.stat().st_size == size


def _same_size(src: Path, dest: Path) -> bool:
    return _has(dest, src.stat().st_size)


def _size(n: int) -> str:
    return tqdm.format_sizeof(n, "B", 1024)


def _check_space(dst: Path, size: int) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dst).free
    if size > free:
        raise ConfigError(f"Copying {_size(size)} to {dst} needs more than the {_size(free)} "
                          "free there: copy fewer subjects (subjects=N; the notebooks' "
                          "SUBJECTS) or free space.")


def _copy_file(src: Path, dest: Path, progress: Callable[[int], object]) -> None:
    """Copy in chunks to a temporary name, check the size, rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    with open(src, "rb") as i, open(partial, "wb") as o:
        while chunk := i.read(_CHUNK):
            o.write(chunk)
            progress(len(chunk))
    if partial.stat().st_size != src.stat().st_size:
        raise ConfigError(f"Copying {src} gave {partial.stat().st_size} bytes instead of "
                          f"{src.stat().st_size}: re-run (Drive may still be syncing the file).")
    os.replace(partial, dest)
