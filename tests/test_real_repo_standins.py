"""Unit tests of the CPU test stand-ins in tests/real_repo/standins/.

The stand-ins (diff_gaussian_rasterization, simple_knn, kaolin, pytorch3d) replace CUDA-only
libraries so the real GazeGaussian repos can run in tests. They are imported here only inside the
``standins`` fixture, which puts their folder on sys.path, imports them, then removes the folder
and purges (and restores) sys.modules, so no other test ever sees a fake ``kaolin``/``pytorch3d``.
"""

import importlib
import math
import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

STANDINS = Path(__file__).resolve().parent / "real_repo" / "standins"
NAMES = ("diff_gaussian_rasterization", "simple_knn", "kaolin", "pytorch3d")


def _owned(name):
    return any(name == n or name.startswith(n + ".") for n in NAMES)


@pytest.fixture(scope="module")
def standins():
    saved = {k: v for k, v in sys.modules.items() if _owned(k)}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(STANDINS))
    try:
        ns = types.SimpleNamespace()
        ns.dgr = importlib.import_module("diff_gaussian_rasterization")
        ns.knn_C = importlib.import_module("simple_knn._C")
        for mod in (ns.dgr, ns.knn_C):
            assert Path(mod.__file__).resolve().is_relative_to(STANDINS)
    finally:
        sys.path.remove(str(STANDINS))
    try:
        yield ns
    finally:
        for k in [k for k in sys.modules if _owned(k)]:
            del sys.modules[k]
        sys.modules.update(saved)


# ----------------------------------------------------------------------------- rasterizer

def _settings(dgr, H, W, fov=0.8, C=32, bg=None, znear=0.01, zfar=100.0):
    """Settings built like the repos' dataloader: identity camera at the origin looking down +z."""
    t = math.tan(fov / 2)
    P = torch.zeros(4, 4)
    P[0, 0], P[1, 1], P[3, 2] = 1 / t, 1 / t, 1.0
    P[2, 2], P[2, 3] = zfar / (zfar - znear), -(zfar * znear) / (zfar - znear)
    view = torch.eye(4)                      # world_view_transform (already transposed)
    full = view @ P.T                        # full_proj_transform
    if bg is None:
        bg = torch.zeros(C, H, W)
    return dgr.GaussianRasterizationSettings(
        image_height=H, image_width=W, tanfovx=t, tanfovy=t, bg=bg, scale_modifier=1.0,
        viewmatrix=view, projmatrix=full, sh_degree=0, campos=torch.zeros(3),
        prefiltered=False, debug=False)


def _render(dgr, settings, means, colors, opac, scales, rots):
    means2D = torch.zeros_like(means, requires_grad=True)
    out = dgr.GaussianRasterizer(settings)(
        means3D=means, means2D=means2D, colors_precomp=colors, opacities=opac,
        scales=scales, rotations=rots)
    return out, means2D


def test_gaussian_at_centre_lands_on_centre_pixel_with_its_colour(standins):
    dgr = standins.dgr
    H = W = 33
    C = 32
    bg = torch.ones(C, H, W) * 0.25
    colors = torch.zeros(1, C)
    colors[0, 0] = 1.0
    (img, radii, depth, weight), _ = _render(
        dgr, _settings(dgr, H, W, bg=bg), torch.tensor([[0.0, 0.0, 2.0]]), colors,
        torch.tensor([[0.99]]), torch.full((1, 3), 0.02), torch.tensor([[1.0, 0, 0, 0]]))
    assert img.shape == (C, H, W) and depth.shape == (1, H, W) and weight.shape == (1, H, W)
    assert radii.dtype == torch.int32 and radii.shape == (1,) and radii[0] > 0
    peak = torch.nonzero(img[0] == img[0].max())
    assert peak.tolist() == [[16, 16]]
    # centre: alpha clamped at 0.99 -> 0.99 * colour + 0.01 * background
    assert img[0, 16, 16].item() == pytest.approx(0.99 + 0.01 * 0.25, abs=1e-4)
    assert img[1, 16, 16].item() == pytest.approx(0.01 * 0.25, abs=1e-4)
    assert depth[0, 16, 16].item() == pytest.approx(2.0, rel=1e-3)
    # far from the Gaussian: pure background, zero weight
    assert torch.allclose(img[:, 0, 0], bg[:, 0, 0])
    assert torch.allclose(img[:, 32, 5], bg[:, 32, 5])
    assert weight[0, 0, 0].item() == pytest.approx(1e-6)


def test_projection_follows_pinhole_and_image_axes(standins):
    dgr = standins.dgr
    H, W = 40, 48
    fov = 0.9
    f = W / (2 * math.tan(fov / 2))
    # x to the right, y down, as the real rasterizer (+ Inria ndc2Pix)
    means = torch.tensor([[0.3, -0.2, 2.5]])
    (img, radii, _, _), _ = _render(
        dgr, _settings(dgr, H, W, fov=fov, C=3), means, torch.ones(1, 3),
        torch.tensor([[0.99]]), torch.full((1, 3), 0.005), torch.tensor([[1.0, 0, 0, 0]]))
    fy = H / (2 * math.tan(fov / 2))
    u = f * 0.3 / 2.5 + (W - 1) / 2
    v = fy * -0.2 / 2.5 + (H - 1) / 2
    peak = torch.nonzero(img[0] == img[0].max())[0]
    assert abs(peak[1].item() - u) <= 0.5 and abs(peak[0].item() - v) <= 0.5
    # an elongated Gaussian (long along world x, quaternion wxyz) is long along image x;
    # rotated 90 degrees about z it is long along image y
    long_x = torch.tensor([[0.2, 0.01, 0.01]])
    ident = torch.tensor([[1.0, 0, 0, 0]])
    rot_z = torch.tensor([[math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)]])
    for rot, axis in ((ident, 1), (rot_z, 0)):
        (img, _, _, _), _ = _render(
            dgr, _settings(dgr, H, W, C=3), torch.tensor([[0.0, 0.0, 2.0]]), torch.ones(1, 3),
            torch.tensor([[0.9]]), long_x, rot)
        covered = img[0] > 0.1
        extent_x = covered.any(0).sum().item()
        extent_y = covered.any(1).sum().item()
        assert (extent_x > 3 * extent_y) if axis == 1 else (extent_y > 3 * extent_x)


def test_near_opaque_gaussian_hides_far_one_whatever_the_input_order(standins):
    dgr = standins.dgr
    H = W = 21
    colors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])   # near = red, far = green
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]])
    for order in ([0, 1], [1, 0]):
        (img, radii, depth, _), _ = _render(
            dgr, _settings(dgr, H, W, C=2), means[order], colors[order],
            torch.full((2, 1), 0.99), torch.tensor([[0.2] * 3, [0.4] * 3])[order],
            torch.tensor([[1.0, 0, 0, 0]] * 2))
        assert img[0, 10, 10].item() > 0.98
        assert img[1, 10, 10].item() < 0.02
        assert depth[0, 10, 10].item() == pytest.approx(2.0, abs=0.05)
    # behind the near plane (view z <= 0.2): culled, radius 0
    (img, radii, _, _), _ = _render(
        dgr, _settings(dgr, H, W, C=2), torch.tensor([[0.0, 0.0, 0.1]]), colors[:1],
        torch.full((1, 1), 0.99), torch.full((1, 3), 0.2), torch.tensor([[1.0, 0, 0, 0]]))
    assert radii.tolist() == [0] and img.abs().max().item() == 0.0


def _reference_composite(dgr, settings, means, means2D, colors, opac, scales, rots):
    """Sequential per-Gaussian loop of the real renderCUDA, on the stand-in's projection."""
    H, W = settings.image_height, settings.image_width
    pre = dgr._preprocess(means, means2D, scales, rots, None, settings)
    order = torch.argsort(pre["depth"], stable=True)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32),
                            torch.arange(W, dtype=torch.float32), indexing="ij")
    T = torch.ones(H, W)
    out = torch.zeros(colors.shape[1], H, W)
    done = torch.zeros(H, W, dtype=torch.bool)
    rx0, ry0, rx1, ry1 = pre["rect"]
    for g in order.tolist():
        if not pre["valid"][g]:
            continue
        in_rect = ((xs // 16 >= rx0[g]) & (xs // 16 < rx1[g]) &
                   (ys // 16 >= ry0[g]) & (ys // 16 < ry1[g]))
        dx, dy = pre["pix_x"][g] - xs, pre["pix_y"][g] - ys
        a, b, c = pre["conic"][g]
        power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
        alpha = torch.clamp(opac[g, 0] * torch.exp(power), max=0.99)
        use = in_rect & (power <= 0) & (alpha >= 1 / 255) & ~done
        test_T = T * (1 - alpha)
        stop = use & (test_T < 1e-4)
        done |= stop
        use &= ~stop
        out += torch.where(use, alpha * T, torch.zeros_like(T)) * colors[g][:, None, None]
        T = torch.where(use, test_T, T)
    return out + T * settings.bg


def test_matches_a_sequential_reference_of_the_cuda_kernel(standins):
    dgr = standins.dgr
    torch.manual_seed(0)
    N, H, W, C = 60, 37, 45, 4          # not multiples of the 16-px tile
    means = torch.randn(N, 3) * torch.tensor([0.5, 0.4, 0.3]) + torch.tensor([0, 0, 2.5])
    means[:3, 2] = 0.1                   # a few culled ones
    colors = torch.rand(N, C)
    opac = torch.rand(N, 1) * 0.9 + 0.1
    opac[:10] = 0.995                    # opaque ones trigger the 1e-4 early stop
    scales = torch.rand(N, 3) * 0.15 + 0.01
    rots = torch.randn(N, 4)
    bg = torch.rand(C, H, W)
    settings = _settings(dgr, H, W, C=C, bg=bg)
    (img, radii, _, _), means2D = _render(dgr, settings, means, colors, opac, scales, rots)
    ref = _reference_composite(dgr, settings, means, means2D, colors, opac, scales, rots)
    assert (radii[:3] == 0).all() and (radii[3:] > 0).any()
    assert torch.allclose(img, ref, atol=2e-4), (img - ref).abs().max()


def test_gradients_reach_every_input_and_are_finite(standins):
    dgr = standins.dgr
    torch.manual_seed(1)
    N, H, W, C = 40, 24, 24, 32
    means = (torch.randn(N, 3) * 0.3 + torch.tensor([0, 0, 2.0])).requires_grad_()
    colors = torch.rand(N, C, requires_grad=True)
    opac = torch.rand(N, 1).mul(0.8).add(0.1).requires_grad_()
    scales = (torch.rand(N, 3) * 0.1 + 0.02).requires_grad_()
    rots = torch.randn(N, 4, requires_grad=True)
    settings = _settings(dgr, H, W, C=C, bg=torch.ones(C, H, W))
    (img, radii, depth, weight), means2D = _render(dgr, settings, means, colors, opac, scales,
                                                   rots)
    means2D.retain_grad()
    target = torch.rand(C, H, W)
    ((img - target) ** 2).mean().add(depth.mean() * 0.1).backward()
    for name, t in (("means3D", means), ("means2D", means2D), ("colors", colors),
                    ("opacities", opac), ("scales", scales), ("rotations", rots)):
        assert t.grad is not None, name
        assert torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name
    assert means2D.grad[:, 2].abs().sum() == 0      # only the screen-space x/y are used


def test_gradients_match_finite_differences_in_double_precision(standins):
    dgr = standins.dgr
    torch.manual_seed(2)
    N, H, W, C = 25, 20, 20, 3
    dd = torch.float64
    means = (torch.randn(N, 3, dtype=dd) * 0.3 + torch.tensor([0, 0, 2.0], dtype=dd))
    colors = torch.rand(N, C, dtype=dd)
    opac = torch.rand(N, 1, dtype=dd) * 0.8 + 0.1
    scales = torch.rand(N, 3, dtype=dd) * 0.1 + 0.05
    rots = torch.randn(N, 4, dtype=dd)
    settings = _settings(dgr, H, W, C=C, bg=torch.ones(C, H, W, dtype=dd))
    target = torch.rand(C, H, W, dtype=dd)

    def loss(m, c, o, s):
        (im, _, dm, _), _ = _render(dgr, settings, m, c, o, s, rots)
        return ((im - target) ** 2).sum() + dm.sum() * 0.01

    inputs = [t.clone().requires_grad_() for t in (means, colors, opac, scales)]
    loss(*inputs).backward()
    eps = 1e-6
    for which, index in ((0, (3, 0)), (0, (7, 1)), (1, (5, 2)), (2, (4, 0)), (3, (6, 1))):
        plus = [t.detach().clone() for t in inputs]
        minus = [t.detach().clone() for t in inputs]
        plus[which][index] += eps
        minus[which][index] -= eps
        with torch.no_grad():
            fd = ((loss(*plus) - loss(*minus)) / (2 * eps)).item()
        assert inputs[which].grad[index].item() == pytest.approx(fd, rel=1e-3, abs=1e-6), \
            (which, index)


def test_mark_visible(standins):
    dgr = standins.dgr
    r = dgr.GaussianRasterizer(_settings(dgr, 8, 8))
    vis = r.markVisible(torch.tensor([[0.0, 0, 1.0], [0, 0, 0.1], [0, 0, -3.0]]))
    assert vis.tolist() == [True, False, False]


# ----------------------------------------------------------------------------- simple_knn

def test_distcuda2_on_a_unit_grid(standins):
    g = torch.stack(torch.meshgrid(*[torch.arange(5.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    d = standins.knn_C.distCUDA2(g)
    assert d.shape == (125,)
    # every point of a unit grid has at least 3 neighbours at squared distance 1
    assert torch.allclose(d, torch.ones(125))
    pts = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [10.0, 0, 0]])
    d = standins.knn_C.distCUDA2(pts)
    assert d[0].item() == pytest.approx((1 + 4 + 9) / 3)
    assert d[4].item() == pytest.approx((81 + 100 + 104) / 3)
