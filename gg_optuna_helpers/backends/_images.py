"""Preview images for every backend: a dependency-free PNG writer and an image grid."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import torch


def image_grid(columns: list[torch.Tensor], scale: int = 3, border: int = 1) -> torch.Tensor:
    """Lay out images as a grid (3,H,W): ``columns[j][i]`` (3,h,w in [0,1]) goes to row i, column j.

    Each image is enlarged ``scale`` times (nearest neighbour) and framed by a white border.
    """
    rows = []
    for images in zip(*columns):
        cells = [torch.nn.functional.pad(
            img.detach().float().cpu().clamp(0, 1).repeat_interleave(scale, 1)
            .repeat_interleave(scale, 2), (border,) * 4, value=1.0) for img in images]
        rows.append(torch.cat(cells, dim=2))
    return torch.cat(rows, dim=1)


def write_png(path: Path, image: torch.Tensor) -> None:
    """Write an RGB image (3,H,W) with values in [0,1] as an 8-bit PNG."""
    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    height, width = pixels.shape[1:]
    rows = pixels.permute(1, 2, 0).reshape(height, width * 3).numpy()
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
