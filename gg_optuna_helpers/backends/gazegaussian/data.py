"""The checkout's data: split lists, a resumable stream of N-iteration windows, a fixed
validation subset.

Training batches come from the repo's own train dataset (``dataloader/eth_xgaze.py``) in a
seeded order; the position in that order is part of the checkpoint, so a resumed trial sees
the batches it would have seen. Validation uses the repo's held-out subjects (the ``val`` list
of ``train_test_split.json``, whose files ship as ETH-XGaze_test) or held-out training frames.
"""

from __future__ import annotations

import json
import math
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ...errors import ConfigError
from .checkout import source_function
from .options import positive_int

VAL_SPLITS = ("subjects", "frames")
VAL_SAMPLES = 30


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


def data_files(root: Path, folder: Path, dataset: str, split: str) -> list[Path]:
    """The data files the checkout will open for ``split`` (``train`` or ``val``)."""
    prefix = file_prefix(root, dataset)
    return [folder / f"{prefix}{key}" for key in split_keys(root, dataset).get(split, [])]


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
