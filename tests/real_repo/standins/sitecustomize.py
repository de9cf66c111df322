"""CPU test stand-in for the GPU, loaded only by the real-repo harness (its PYTHONPATH).

Two things a CPU-only torch lacks that the real GazeGaussian code touches:

- ``tensor.cuda()``: the repos call it unconditionally once (``distCUDA2(self.xyz.cuda())``).
  With no CUDA device it returns the tensor unchanged, i.e. "the GPU" is the CPU.
- torchvision's compiled operators: PyPI's torchvision for x86_64 is linked against CUDA
  torch, so its ``_C`` does not load beside a CPU torch, and ``import torchvision`` then fails
  registering fake kernels for ``torchvision::nms``/``qnms``. Declaring those two schemas lets
  the pure-Python parts the repos use (transforms, VGG16) import; calling ``nms`` still fails.
"""

import torch

if not torch.cuda.is_available():
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]

    _torchvision = torch.library.Library("torchvision", "DEF")  # kept alive for the process
    for _name in ("nms", "qnms"):
        _torchvision.define(f"{_name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
