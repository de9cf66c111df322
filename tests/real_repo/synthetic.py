"""Synthetic data in the preprocessed ETH-XGaze format the real GazeGaussian dataloaders read.

A TEST STAND-IN for the ETH-XGaze data (not on any machine here): one h5 file per subject the
checkout's ``train_test_split.json`` lists, with the keys, dtypes and shapes of
``dataloader/eth_xgaze.py``, a few frames each, at a CPU-small image size. The scene is
consistent, so the real models can learn it: a unit-sphere "head" at the world origin with
eyes whose irises follow the gaze label, 68 landmarks on its front, seen by a camera 6 units
away (OpenCV axes: x right, y down, z forward). ``facial_landmarks_3d`` and ``vertice`` are in
camera coordinates, as the dataloader expects (it maps them back with ``w2c_Rmat``/``w2c_Tvec``).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

SIZE = 64  # image side in pixels
DISTANCE = 6.0  # camera to head centre
HALF_FOV = np.deg2rad(12.0)
VERTICES = 1000  # the dataloader keeps every 100th as an extra landmark
CODES = 144 + 80 + 27  # identity 80 + expression 64 (what the repos read) + texture + light
EYES = np.array([[-0.35, -0.25, -0.88], [0.35, -0.25, -0.88]])  # canonical, on the front


def focal() -> float:
    return SIZE / 2 / np.tan(HALF_FOV)


def intrinsics() -> np.ndarray:
    f = focal()
    return np.array([[f, 0, SIZE / 2], [0, f, SIZE / 2], [0, 0, 1]], np.float32)


def rodrigues(v: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(v)
    if theta < 1e-12:
        return np.eye(3)
    k = v / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K


def sphere_points(n: int, rng: np.random.Generator, front: bool = False) -> np.ndarray:
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    if front:
        p[:, 2] = -np.abs(p[:, 2])
    return p


def landmarks(rng: np.random.Generator) -> np.ndarray:
    """68 canonical landmarks on the front of the unit sphere; 36-41 and 42-47 ring the eyes."""
    points = sphere_points(68, rng, front=True) * np.array([0.7, 0.7, 1.0])
    ring = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    for start, eye in ((36, EYES[0]), (42, EYES[1])):
        points[start:start + 6] = eye + 0.1 * np.stack([np.cos(ring), np.sin(ring) * 0.5,
                                                       np.zeros(6)], 1)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def render(rotation: np.ndarray, gaze: np.ndarray) -> tuple[np.ndarray, ...]:
    """(BGR image, head mask, left eye mask, right eye mask) of the head under ``rotation``."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    rays = np.stack([(xs - SIZE / 2) / focal(), (ys - SIZE / 2) / focal(), np.ones_like(xs)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    centre = np.array([0.0, 0.0, DISTANCE])  # the head centre in camera coordinates
    along = rays @ centre
    disc = along ** 2 - (DISTANCE ** 2 - 1.0)
    hit = disc > 0
    depth = along - np.sqrt(np.clip(disc, 0, None))
    world = rays * depth[..., None] - centre
    canon = world @ rotation  # R^T p for row vectors
    shade = np.clip(-world[..., 2], 0.2, 1.0)[..., None]
    rgb = np.array([0.85, 0.65, 0.55]) * shade
    rgb = np.where((canon[..., 1] > 0.45)[..., None] & (np.abs(canon[..., 0]) < 0.3)[..., None],
                   np.array([0.7, 0.2, 0.2]), rgb)
    masks = []
    iris_shift = 0.09 * np.array([np.sin(gaze[1]), -np.sin(gaze[0]), 0.0])
    for eye in EYES:
        sclera = np.linalg.norm(canon - eye, axis=-1) < 0.17
        iris = np.linalg.norm(canon - (eye + iris_shift), axis=-1) < 0.08
        rgb = np.where(sclera[..., None], np.array([0.95, 0.95, 0.95]), rgb)
        rgb = np.where((sclera & iris)[..., None], np.array([0.15, 0.1, 0.05]), rgb)
        masks.append(sclera & hit)
    rgb = np.where(hit[..., None], rgb, 1.0)
    image = (rgb[..., ::-1] * 255).round().astype(np.uint8)  # BGR, as the h5 files store it
    return image, *(m.astype(np.uint8) * 255 for m in (hit, *masks))


def project(points_cam: np.ndarray) -> np.ndarray:
    uv = points_cam[:, :2] / points_cam[:, 2:3]
    return uv * focal() + SIZE / 2


def subject_file(path: Path, frames: list[int], seed: int) -> None:
    """One subject's h5 file holding the given frame indices; frames in between are left
    unwritten (chunked storage keeps them empty), as only listed frames are ever read."""
    rng = np.random.default_rng(seed)
    identity = rng.normal(scale=0.5, size=80)
    marks = landmarks(rng)
    surface = sphere_points(VERTICES, rng)
    w2c_r, w2c_t = np.eye(3), np.array([0.0, 0.0, DISTANCE])
    rows: dict[str, list] = {key: [] for key in (
        "face_patch", "head_mask", "left_eye_mask", "right_eye_mask", "facial_landmarks",
        "facial_landmarks_3d", "w2c_Rmat", "w2c_Tvec", "vertice", "cam_index", "latent_codes",
        "inmat", "pitchyaw_head", "face_head_pose", "pose", "scale")}
    for _ in frames:
        pose = np.concatenate([rng.uniform(-0.15, 0.15, 3), np.zeros(3)])
        rotation = rodrigues(pose[:3])
        gaze = rng.uniform(-0.35, 0.35, 2)
        image, head, left, right = render(rotation, gaze)
        marks_cam = marks @ rotation.T @ w2c_r.T + w2c_t
        codes = np.concatenate([identity, rng.normal(scale=0.5, size=64),
                                rng.normal(scale=0.1, size=CODES - 144)])
        for key, value in (("face_patch", image), ("head_mask", head), ("left_eye_mask", left),
                           ("right_eye_mask", right), ("facial_landmarks", project(marks_cam)),
                           ("facial_landmarks_3d", marks_cam),
                           ("w2c_Rmat", w2c_r), ("w2c_Tvec", w2c_t),
                           ("vertice", surface @ rotation.T @ w2c_r.T + w2c_t),
                           ("cam_index", [int(rng.integers(18))]), ("latent_codes", codes),
                           ("inmat", intrinsics()), ("pitchyaw_head", gaze),
                           ("face_head_pose", pose[:2]), ("pose", pose), ("scale", [1.0])):
            rows[key].append(value)
    with h5py.File(path, "w", libver="latest") as h5:
        for key, values in rows.items():
            array = np.asarray(values)
            if array.dtype == np.float64:
                array = array.astype(np.float32)
            data = h5.create_dataset(key, shape=(max(frames) + 1, *array.shape[1:]),
                                     dtype=array.dtype, chunks=(1, *array.shape[1:]))
            for index, row in zip(frames, array):
                data[index] = row


def write_dataset(files: dict[str, list[Path]], frames: dict[str, list[int]]) -> None:
    """Write each split's files (``{"train": [...], "val": [...]}``) with its frame indices."""
    for split, paths in files.items():
        for i, path in enumerate(paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            subject_file(path, frames[split], seed=i + (0 if split == "train" else 10_000))
