"""The checkout's data: split lists, a subject subset, file names, a resumable stream of
N-iteration windows, a fixed validation subset.

Training batches come from the repo's own train dataset (``dataloader/eth_xgaze.py``'s
``GazeDataset``, given the split list's ``train`` subjects or the ``subjects`` subset of them)
in a seeded order; the position in that order is part of the checkpoint, so a resumed trial
sees the batches it would have seen. Validation uses the repo's held-out subjects (the ``val``
list of ``train_test_split.json``, whose files ship as ETH-XGaze_test) or held-out training
frames.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ...errors import ConfigError
from ...values import parse_value
from .checkout import source_function
from .options import DATA_DEFAULTS, positive_int

VAL_SPLITS = ("subjects", "frames")
VAL_SAMPLES = 30


def dataset_of(root: Path, options: dict[str, Any]) -> str:
    """The dataset the trials read: backend option ``dataset``, else the checkout's own."""
    from .checkout import inspect

    return options.get("dataset") or {**DATA_DEFAULTS, **inspect(root).meshhead}["dataset_name"]


def split_keys(root: Path, dataset: str) -> dict[str, list[str]]:
    """The subject files of each split, as listed by the checkout."""
    path = root / "configs" / "dataset" / dataset / "train_test_split.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"Could not read the split list {path} ({e}): check the dataset "
                          "backend option and that the checkout is intact.") from None


def file_prefix(root: Path, dataset: str) -> str:
    """What the checkout puts before a split key to name a data file (upstream ``xgaze_``)."""
    parser = source_function(root / "dataloader/eth_xgaze.py", "dataset_name_parser")
    return (parser(dataset) if parser else None) or ""


def data_files(root: Path, folder: Path, dataset: str, split: str,
               subjects: Any = None) -> list[Path]:
    """The data files the checkout will open for ``split`` (``train``: the ``subjects`` subset)."""
    prefix = file_prefix(root, dataset)
    return [folder / f"{prefix}{key}" for key in split_subjects(root, dataset, split, subjects)]


def split_subjects(root: Path, dataset: str, split: str, subjects: Any = None) -> list[str]:
    """The split list's keys of ``split``; for ``train``, only the ``subjects`` subset."""
    splits = split_keys(root, dataset)
    keys = list(splits.get(split, []))
    if split != "train" or subjects is None:
        return keys
    return subset(keys, splits.get("val", []), subjects, dataset)


def subset(train: list[str], held_out: list[str], subjects: Any, dataset: str) -> list[str]:
    """Backend option ``subjects``: a number N (the first N of ``train``), or a list (or
    comma-separated text) of subject keys or numbers, e.g. ``[0, 3]`` or
    ``subject0000.h5,subject0003.h5``; in the split list's order. Held-out keys are refused."""
    value = parse_value(subjects) if isinstance(subjects, str) else subjects
    if value in ("", "all"):
        return train
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= len(train):
            raise ConfigError(f"Backend option subjects={value} must be between 1 and "
                              f"{len(train)}, the training subjects of the {dataset} split list.")
        return train[:value]
    items = [i for i in value.split(",") if i.strip()] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(f"Backend option subjects takes a number N (the first N training "
                          f"subjects) or a list of subject keys or numbers, but got {subjects!r}.")
    chosen = {_subject_key(item, train, held_out, dataset) for item in items}
    return [key for key in train if key in chosen]


def _subject_key(item: Any, train: list[str], held_out: list[str], dataset: str) -> str:
    """The training key ``item`` names: a key (with or without its extension or an ``xgaze_``
    prefix) or a subject number."""
    item = parse_value(item) if isinstance(item, str) else item
    for key in (*train, *held_out):
        if _names(item, key):
            if key in held_out:
                raise ConfigError(f"Backend option subjects names {key}, a held-out (val) subject "
                                  f"of the {dataset} split list: it is never trained on, so "
                                  "leave it out.")
            return key
    raise ConfigError(f"Backend option subjects names {item!r}, which is no training subject of "
                      f"the {dataset} split list (e.g. {train[0] if train else 'none'}).")


def _names(item: Any, key: str) -> bool:
    if isinstance(item, int) and not isinstance(item, bool):
        digits = re.findall(r"\d+", key)
        return bool(digits) and int(digits[0]) == item
    text = str(item).strip().removeprefix("xgaze_")
    return text in (key, key.rsplit(".", 1)[0])


SPELLINGS = ("", "xgaze_")  # dataset_name_parser("eth_xgaze"): fork 34a742d on, upstream


def spellings(root: Path, dataset: str, split: str, subjects: Any = None) -> dict[str, list[str]]:
    """Each file name the checkout opens for ``split`` -> the names a data folder may hold it
    under: the checkout's own first, then the fork's (``subject0000.h5``) and upstream's
    (``xgaze_subject0000.h5``)."""
    prefix = file_prefix(root, dataset)
    return {f"{prefix}{key}": list(dict.fromkeys(f"{p}{key}" for p in (prefix, *SPELLINGS)))
            for key in split_subjects(root, dataset, split, subjects)}


def locate(folder: Path, names: dict[str, list[str]]) -> tuple[dict[str, Path], list[str]]:
    """Where each of ``names`` (see :func:`spellings`) is under ``folder``: at the top level or
    one folder down (``train/``), as a path relative to ``folder``; and the names not found."""
    folders = [Path()] + sorted(Path(e.name) for e in os.scandir(folder) if e.is_dir())
    listed = {sub: set(os.listdir(folder / sub)) for sub in folders}
    found, missing = {}, []
    for name, ways in names.items():
        hit = next((sub / way for sub in folders for way in ways if way in listed[sub]
                    and (folder / sub / way).is_file()), None)
        if hit is None:
            missing.append(name)
        else:
            found[name] = hit
    return found, missing


def train_set(eth_xgaze: Any, opt: Any, folder: Path, dataset: str, keys: list[str]) -> Dataset:
    """The repo's own training dataset over ``keys``, built as its ``get_train_loader`` builds
    it from the split list (``keys_to_use``), so a subject subset is all it reads."""
    return eth_xgaze.GazeDataset(opt, dataset_name=eth_xgaze.dataset_name_parser(dataset),
                                 dataset_path=str(folder), keys_to_use=keys, sub_folder="train",
                                 transform=getattr(eth_xgaze, "trans", None), is_shuffle=False,
                                 subject=None, evaluate=None, index_file=None)


def spread(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all of them if fewer)."""
    count = min(count, total)
    return sorted({i * total // count for i in range(count)}) if count else []


class TrainStream:
    """Batches of one sample from ``dataset`` in a seeded order, handed out N at a time."""

    def __init__(self, dataset: Dataset, *, seed: int, num_workers: int,
                 exclude: frozenset[int] = frozenset()) -> None:
        self.dataset = dataset
        self.seed = seed
        self.num_workers = num_workers
        self.indices = [i for i in range(len(dataset)) if i not in exclude]
        if not self.indices:
            raise ConfigError("The training split is empty after holding out validation frames: "
                              "lower val_samples or use val_split=subjects.")
        self.passes = 0  # full passes over the data so far
        self.position = 0  # samples used in the current pass

    def order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.passes)
        return [self.indices[i] for i in torch.randperm(len(self.indices), generator=generator)]

    def window(self, size: int) -> Window:
        return Window(self, size)

    def state_dict(self) -> dict[str, int]:
        return {"passes": self.passes, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.passes, self.position = int(state["passes"]), int(state["position"])


class Window:
    """The next ``size`` batches of a stream; passes for a DataLoader in the repo's loops."""

    def __init__(self, stream: TrainStream, size: int) -> None:
        self.stream = stream
        self.size = size
        self.dataset = stream.dataset

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        stream, left = self.stream, self.size
        while left:
            chosen = stream.order()[stream.position:stream.position + left]
            loader = DataLoader(stream.dataset, batch_size=1, sampler=chosen,
                                num_workers=stream.num_workers)
            for batch in loader:
                stream.position += 1
                left -= 1
                yield batch
            if stream.position >= len(stream.indices):
                stream.passes, stream.position = stream.passes + 1, 0


def validation_set(eth_xgaze: Any, opt: Any, train: Dataset, options: dict[str, Any],
                   val_folder: Path, subjects: int) -> tuple[Dataset, frozenset[int]]:
    """The fixed validation subset and the training indices it holds out (for ``frames``).

    ``subjects``: ``val_samples`` frames spread over the repo's held-out subjects, read by the
    repo's own ``get_val_loader``. ``frames``: ``val_samples`` frames spread over the training
    set, then never trained on.
    """
    count = positive_int(options, "val_samples", VAL_SAMPLES)
    split = options.get("val_split", "subjects")
    if split not in VAL_SPLITS:
        raise ConfigError(f"Backend option val_split must be one of {', '.join(VAL_SPLITS)}, "
                          f"but got {split!r}.")
    if split == "frames":
        held = spread(len(train), count)
        return Subset(train, held), frozenset(held)
    per_subject = max(1, math.ceil(count / max(1, subjects)))
    loader = eth_xgaze.get_val_loader(opt, data_dir=str(val_folder), batch_size=1,
                                      num_val_images=per_subject, dataset_name=opt.dataset_name,
                                      num_workers=0, evaluate=None)
    if not len(loader.dataset):
        raise ConfigError(f"The held-out split in {val_folder} has no frames: check val_data, or "
                          "use val_split=frames.")
    return Subset(loader.dataset, spread(len(loader.dataset), count)), frozenset()


@contextmanager
def fixed_random(seed: int = 0) -> Iterator[None]:
    """Seed Python's ``random`` (the repo's datasets redraw bad frames with it), then restore."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)
