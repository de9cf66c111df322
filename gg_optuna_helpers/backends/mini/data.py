"""Synthetic eye-region crops whose iris and pupil follow a gaze label, generated in code.

Each 32x32 RGB image shows both eyes of one subject: skin, eyebrows, almond-shaped eye openings,
a coloured iris and a dark pupil. The iris sits on an eyeball of fixed radius, so it moves with
the gaze label (pitch, yaw). A subject has its own skin, iris and hair colour and eye shape; a
session adds a head-pose jitter (shift and roll) shared by its images. Subjects are split into
train and validation, so validation subjects are never trained on.

The data seed is fixed (:data:`DATA_SEED`), independent of the trial seed: every trial sees the
same images. Generation takes about 0.1 s and is cached per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import torch

IMAGE_SIZE = 32
DATA_SEED = 20240601
TRAIN_SUBJECTS = 32
VAL_SUBJECTS = 8
SESSIONS_PER_SUBJECT = 4
GAZES_PER_SESSION = 6
EYEBALL_RADIUS = 0.30
EDGE = 1.0 / IMAGE_SIZE  # soft edge width: half a pixel in [-1, 1] coordinates
POSE_RANGE = torch.tensor([0.06, 0.06, 0.12])  # shift x, shift y, roll: uniform in +-range
GAZE_RANGE = torch.tensor([0.40, 0.50])  # pitch, yaw (radians): uniform in +-range

_IRIS_PALETTE = torch.tensor(
    [[0.40, 0.24, 0.10], [0.28, 0.45, 0.72], [0.30, 0.50, 0.28], [0.50, 0.50, 0.52]]
)
_SCLERA = torch.tensor([0.93, 0.91, 0.88])
_PUPIL = torch.tensor([0.04, 0.03, 0.03])


@dataclass(frozen=True)
class Split:
    """One split's images (N,3,H,W), eye masks (N,1,H,W), gaze (N,2: pitch, yaw in radians),
    head pose (N,3: shift x, shift y, roll) and subject ids (N,). Images of one session are
    stored contiguously, :data:`GAZES_PER_SESSION` at a time."""

    images: torch.Tensor
    masks: torch.Tensor
    gaze: torch.Tensor
    pose: torch.Tensor
    subject: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: str) -> Split:
        return Split(*(t.to(device) for t in (self.images, self.masks, self.gaze, self.pose,
                                               self.subject)))

    def source_of(self, target: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Index of another image of the same session: ``shift`` (1..G-1) images further on."""
        session_start = target - target % GAZES_PER_SESSION
        return session_start + (target + shift) % GAZES_PER_SESSION


@dataclass(frozen=True)
class Batch:
    """Training pairs: a source image and the target image of the same session (other gaze)."""

    source: torch.Tensor
    target: torch.Tensor
    target_mask: torch.Tensor
    pose: torch.Tensor
    source_gaze: torch.Tensor
    target_gaze: torch.Tensor

    def __len__(self) -> int:
        return self.source.shape[0]

    def poisoned(self) -> Batch:
        """The same batch with NaN source images (the ``nan`` fault hook)."""
        return replace(self, source=torch.full_like(self.source, float("nan")))


def make_batch(split: Split, source: torch.Tensor, target: torch.Tensor) -> Batch:
    """Gather the pairs (source[i], target[i]) of ``split`` into a :class:`Batch`."""
    source, target = source.to(split.images.device), target.to(split.images.device)
    return Batch(split.images[source], split.images[target], split.masks[target],
                 split.pose[target], split.gaze[source], split.gaze[target])


def random_pairs(split: Split, count: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``count`` (source, target) index pairs of distinct images from the same session."""
    target = torch.randperm(len(split), generator=generator)[:count]
    shift = torch.randint(1, GAZES_PER_SESSION, (count,), generator=generator)
    return split.source_of(target, shift), target


def fixed_pairs(split: Split, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, evenly spread set of ``count`` (source, target) pairs: the validation set."""
    target = torch.linspace(0, len(split) - 1, count).round().long()
    return split.source_of(target, torch.ones_like(target)), target


@functools.lru_cache(maxsize=None)
def load_split(name: str) -> Split:
    """The ``"train"`` or ``"val"`` split (CPU tensors, cached per process)."""
    if name not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', but got {name!r}")
    first, count = (0, TRAIN_SUBJECTS) if name == "train" else (TRAIN_SUBJECTS, VAL_SUBJECTS)
    generator = torch.Generator().manual_seed(DATA_SEED)
    looks = _random_looks(TRAIN_SUBJECTS + VAL_SUBJECTS, generator)
    poses = _uniform(generator, (TRAIN_SUBJECTS + VAL_SUBJECTS, SESSIONS_PER_SUBJECT, 3),
                     POSE_RANGE)
    gazes = _uniform(generator, (TRAIN_SUBJECTS + VAL_SUBJECTS, SESSIONS_PER_SUBJECT,
                                 GAZES_PER_SESSION, 2), GAZE_RANGE)
    per_subject = SESSIONS_PER_SUBJECT * GAZES_PER_SESSION
    subject = torch.arange(first, first + count).repeat_interleave(per_subject)
    pose = poses[first:first + count].repeat_interleave(GAZES_PER_SESSION, dim=1).reshape(-1, 3)
    gaze = gazes[first:first + count].reshape(-1, 2)
    images, masks = render({k: v[subject] for k, v in looks.items()}, pose, gaze)
    return Split(images, masks, gaze, pose, subject)


def _uniform(generator: torch.Generator, shape: tuple, half_range: torch.Tensor) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2 - 1) * half_range


def _between(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _random_looks(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-subject appearance: colours (n,3) and eye geometry (n,)."""
    red = _between(generator, n, 0.45, 0.95)
    green = red * _between(generator, n, 0.68, 0.85)
    skin = torch.stack([red, green, green * _between(generator, n, 0.70, 0.92)], dim=1)
    iris = _IRIS_PALETTE[torch.randint(0, len(_IRIS_PALETTE), (n,), generator=generator)]
    iris = (iris + 0.08 * (torch.rand(n, 3, generator=generator) - 0.5)).clamp(0, 1)
    hair = _between(generator, n, 0.05, 0.40)[:, None] * torch.tensor([1.0, 0.8, 0.6])
    return {
        "skin": skin, "iris": iris, "hair": hair,
        "half_width": _between(generator, n, 0.26, 0.33),
        "half_height": _between(generator, n, 0.12, 0.17),
        "separation": _between(generator, n, 0.45, 0.52),
        "height": _between(generator, n, -0.05, 0.08),
        "iris_radius": _between(generator, n, 0.11, 0.14),
    }


def _inside(distance: torch.Tensor) -> torch.Tensor:
    """Soft indicator of ``distance < 0`` with a half-pixel edge."""
    return torch.sigmoid(-distance / EDGE * 4)


def render(look: dict[str, torch.Tensor], pose: torch.Tensor,
           gaze: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw images (N,3,H,W) and eye masks (N,1,H,W) for per-image looks, poses and gazes."""
    centers = (torch.arange(IMAGE_SIZE) + 0.5) / IMAGE_SIZE * 2 - 1
    y, x = torch.meshgrid(centers, centers, indexing="ij")
    col = {k: v[:, None, None] for k, v in look.items() if v.dim() == 1}
    shift_x, shift_y, roll = (pose[:, i, None, None] for i in range(3))
    cos, sin = torch.cos(roll), torch.sin(roll)
    u = cos * (x - shift_x) + sin * (y - shift_y)  # head-aligned coordinates
    v = -sin * (x - shift_x) + cos * (y - shift_y)
    pitch, yaw = gaze[:, 0, None, None], gaze[:, 1, None, None]
    iris_dx = EYEBALL_RADIUS * torch.cos(pitch) * torch.sin(yaw)
    iris_dy = -EYEBALL_RADIUS * torch.sin(pitch)

    def paint(base: torch.Tensor, colour: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return base + alpha[:, None] * (colour[..., None, None] - base)

    image = look["skin"][:, :, None, None] * (1.0 - 0.12 * v)[:, None]
    eye_mask = torch.zeros_like(u)
    for side in (-1.0, 1.0):
        ex, ey = u - side * col["separation"], v - col["height"]
        brow_y = ey + col["half_height"] + 0.16 - 0.08 * (ex / col["half_width"]) ** 2
        brow = torch.sqrt((ex / (1.15 * col["half_width"])) ** 2 + (brow_y / 0.045) ** 2)
        image = paint(image, look["hair"], _inside((brow - 1) * 0.045))
        ellipse = torch.sqrt((ex / col["half_width"]) ** 2 + (ey / col["half_height"]) ** 2)
        opening = _inside((ellipse - 1) * col["half_height"])
        to_iris = torch.sqrt((ex - iris_dx) ** 2 + (ey - iris_dy) ** 2)
        eye = paint(_SCLERA[None, :, None, None].expand_as(image), look["iris"],
                    _inside(to_iris - col["iris_radius"]))
        eye = paint(eye, _PUPIL.expand(len(u), 3), _inside(to_iris - 0.45 * col["iris_radius"]))
        image = image + opening[:, None] * (eye - image)
        eye_mask = torch.maximum(eye_mask, opening)
    return image.clamp(0, 1), eye_mask[:, None]
