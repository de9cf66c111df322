"""The embedded ``mini`` backend: a small but real version of both GazeGaussian stages.

It runs every notebook, command, test and benchmark end to end on a CPU in minutes, through the
same worker path as the real backend:

- :mod:`.data`: synthetic eye-region images whose iris follows a gaze label, split by subject;
- :mod:`.meshhead`: stage 1, a coordinate field with shape, pose and eye MLPs;
- :mod:`.gazegaussian`: stage 2, gaze redirection with a DiT neural renderer on the stage-1
  MeshHead's feature map;
- :mod:`.training`: the shared epoch loop (SGD, no clipping), :mod:`.faults`: test hooks.
"""

from .backend import MiniBackend

BACKEND = MiniBackend()

__all__ = ["BACKEND", "MiniBackend"]
