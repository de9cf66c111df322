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
        ns.kaolin = importlib.import_module("kaolin")
        ns.p3d_knn = importlib.import_module("pytorch3d.ops.knn")
        ns.p3d_tf = importlib.import_module("pytorch3d.transforms")
        ns.p3d_rc = importlib.import_module("pytorch3d.transforms.rotation_conversions")
        for mod in (ns.dgr, ns.knn_C, ns.kaolin, ns.p3d_knn, ns.p3d_tf):
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


def test_empty_or_culled_scenes_render_the_background_and_stay_differentiable(standins):
    dgr = standins.dgr
    C, H, W = 32, 20, 20
    bg = torch.rand(C, H, W)
    for n, z in ((0, 2.0), (3, 0.0)):
        means = torch.zeros(n, 3)
        means[:, 2] = z
        means.requires_grad_()
        colors = torch.rand(n, C, requires_grad=True)
        (img, radii, depth, weight), _ = _render(
            dgr, _settings(dgr, H, W, C=C, bg=bg), means, colors, torch.ones(n, 1),
            torch.ones(n, 3), torch.ones(n, 4))
        assert torch.equal(img.detach(), bg) and radii.tolist() == [0] * n
        assert (depth == 0).all() and torch.allclose(weight, torch.full((1, H, W), 1e-6))
        (img.sum() + depth.sum()).backward()        # no "does not require grad" error
        assert (means.grad == 0).all()


def test_sh_degree_0_and_argument_checks(standins):
    dgr = standins.dgr
    sh = torch.zeros(1, 1, 3)
    sh[0, 0, 0] = 1.0
    r = dgr.GaussianRasterizer(_settings(dgr, 21, 21, C=3, bg=torch.zeros(3)))
    kw = dict(means3D=torch.tensor([[0.0, 0, 2]]), means2D=torch.zeros(1, 3),
              opacities=torch.tensor([[0.99]]), scales=torch.full((1, 3), 0.1),
              rotations=torch.tensor([[1.0, 0, 0, 0]]))
    img = r(shs=sh, **kw)[0]
    c0 = 0.28209479177387814
    assert torch.allclose(img[:, 10, 10], 0.99 * torch.tensor([c0 + 0.5, 0.5, 0.5]), atol=1e-5)
    with pytest.raises(Exception):
        r(shs=sh, colors_precomp=torch.ones(1, 3), **kw)
    with pytest.raises(Exception):
        r(**kw)


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


# ----------------------------------------------------------------------------- kaolin

def _pixel_centres(H, W):
    """kaolin's pixel sample points: x = (2w + 1 - W) / W, y = (H - 2h - 1) / H (row 0 on top)."""
    hh, ww = torch.meshgrid(torch.arange(H, dtype=torch.float64),
                            torch.arange(W, dtype=torch.float64), indexing="ij")
    return (2 * ww + 1 - W) / W, (H - 2 * hh - 1) / H


def _inside(tri, x, y):
    """Strictly inside a triangle (any winding), by half-plane signs."""
    s = []
    for i in range(3):
        (x1, y1), (x2, y2) = tri[i], tri[(i + 1) % 3]
        s.append((x2 - x1) * (y - y1) - (y2 - y1) * (x - x1))
    return ((s[0] > 0) & (s[1] > 0) & (s[2] > 0)) | ((s[0] < 0) & (s[1] < 0) & (s[2] < 0))


def _dibr(kaolin, H, W, tris, z, feats, nz, **kw):
    return kaolin.render.mesh.dibr_rasterization(H, W, z, tris, feats, nz, **kw)


def test_dibr_one_triangle_covers_its_pixels_and_interpolates_features(standins):
    kaolin = standins.kaolin
    H, W = 24, 32
    tri = [(-0.62, -0.55), (0.71, -0.4), (0.05, 0.66)]
    v = torch.tensor([[tri]], dtype=torch.float32, requires_grad=True)      # (1,1,3,2)
    z = torch.full((1, 1, 3), -2.0)
    # features = the vertices' own (x, y, 1): interpolation must give the pixel's (x, y, 1)
    feats = torch.cat([v.detach(), torch.ones(1, 1, 3, 1)], -1).requires_grad_()
    ones = torch.ones(1, 1, 3, 1)
    out, soft, idx = _dibr(kaolin, H, W, v, z, [feats, ones], torch.ones(1, 1))
    assert isinstance(out, (list, tuple)) and len(out) == 2
    img, mask = out
    assert img.shape == (1, H, W, 3) and mask.shape == (1, H, W, 1)
    assert soft.shape == (1, H, W) and idx.shape == (1, H, W) and idx.dtype == torch.long
    px, py = _pixel_centres(H, W)
    expected = _inside(tri, px, py)
    assert expected.sum() > 50
    assert torch.equal(idx[0] == 0, expected)
    assert set(idx.unique().tolist()) == {-1, 0}
    assert torch.allclose(img[0][expected][:, 0].double(), px[expected], atol=1e-4)
    assert torch.allclose(img[0][expected][:, 1].double(), py[expected], atol=1e-4)
    assert torch.allclose(img[0][expected][:, 2], torch.ones(int(expected.sum())), atol=1e-4)
    assert (img[0][~expected] == 0).all()
    assert torch.allclose(mask[0, ..., 0], expected.float(), atol=1e-4)
    assert (soft[0][expected] == 1).all()
    (img.sum() + soft.sum()).backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0


def test_dibr_keeps_the_face_with_the_largest_z_and_drops_back_faces(standins):
    kaolin = standins.kaolin
    H = W = 16
    big = [(-0.9, -0.9), (0.9, -0.9), (0.0, 0.9)]
    small = [(-0.3, -0.3), (0.3, -0.3), (0.0, 0.3)]
    tris = torch.tensor([[big, small]])
    red_green = torch.tensor([[[[1.0, 0]] * 3, [[0, 1.0]] * 3]])
    for z_small, winner in ((-1.0, 1), (-3.0, 0)):              # z of big = -2
        z = torch.tensor([[[-2.0] * 3, [z_small] * 3]])
        (img,), _, idx = _dibr(kaolin, H, W, tris, z, [red_green], torch.ones(1, 2))
        assert idx[0, 9, 8].item() == winner
        assert img[0, 9, 8].tolist() == ([0.0, 1.0] if winner else [1.0, 0.0])
        assert idx[0, 14, 1].item() == 0                        # only the big one there
        # same picture with the faces listed the other way round
        (img2,), _, idx2 = _dibr(kaolin, H, W, tris.flip(1), z.flip(1), [red_green.flip(1)],
                                 torch.ones(1, 2))
        assert torch.equal(img2, img) and idx2[0, 9, 8].item() == 1 - winner
    # the near face turned away from the camera (normal z < 0) is not drawn
    z = torch.tensor([[[-2.0] * 3, [-1.0] * 3]])
    (img,), _, idx = _dibr(kaolin, H, W, tris, z, [red_green], torch.tensor([[1.0, -0.5]]))
    assert idx[0, 9, 8].item() == 0 and (idx != 1).all()
    (img,), _, idx = _dibr(kaolin, H, W, tris, z, [red_green], torch.tensor([[-1.0, -0.5]]))
    assert (idx == -1).all() and (img == 0).all()


def test_dibr_batch_items_are_independent(standins):
    kaolin = standins.kaolin
    torch.manual_seed(5)
    H, W, F = 20, 18, 12
    v = torch.rand(2, F, 3, 2) * 1.6 - 0.8
    z = -1 - torch.rand(2, F, 3)
    feats = torch.rand(2, F, 3, 4)
    nz = torch.randn(2, F)
    (img,), soft, idx = _dibr(kaolin, H, W, v, z, [feats], nz)
    for b in range(2):
        (img_b,), soft_b, idx_b = _dibr(kaolin, H, W, v[b:b + 1], z[b:b + 1], [feats[b:b + 1]],
                                        nz[b:b + 1])
        assert torch.equal(idx[b], idx_b[0]) and torch.allclose(img[b], img_b[0])
        assert torch.allclose(soft[b], soft_b[0])
    drawn = idx.reshape(2, -1)
    assert (drawn >= 0).any()
    assert (nz.gather(1, drawn.clamp(min=0))[drawn >= 0] >= 0).all()     # front faces only


def test_dibr_soft_mask_is_one_inside_and_decays_outside(standins):
    kaolin = standins.kaolin
    H, W = 1, 41
    # a tall thin rectangle (two triangles) around x in [-0.25, 0.25]; row y = 0
    a, b = 0.25, 5.0
    tris = torch.tensor([[[(-a, -b), (a, -b), (a, b)], [(-a, -b), (a, b), (-a, b)]]],
                        dtype=torch.float64, requires_grad=True)
    z = torch.full((1, 2, 3), -2.0, dtype=torch.float64)
    sig = 200.0
    _, soft, idx = _dibr(kaolin, H, W, tris, z, torch.ones(1, 2, 3, 1, dtype=torch.float64),
                         torch.ones(1, 2, dtype=torch.float64), sigmainv=sig, boxlen=0.3)
    px, _ = _pixel_centres(H, W)
    px = px[0]
    inside = px.abs() < a
    assert (soft[0, 0][inside] == 1).all() and (idx[0, 0][inside] >= 0).all()
    d = (px.abs() - a).clamp(min=0)
    near = (~inside) & (d < 0.3 - 1e-9)
    # on each side the nearest feature of one triangle is the rectangle's side (distance d), of
    # the other the shared diagonal through (-a,-b) and (a,b) (distance |x| b / sqrt(a^2+b^2))
    p_side = torch.exp(-sig * d ** 2)
    p_diag = torch.exp(-sig * (px.abs() * b) ** 2 / (a * a + b * b))
    expected = 1 - (1 - p_side) * (1 - p_diag)
    got = soft[0, 0]
    assert torch.allclose(got[near], expected[near], atol=1e-6)
    assert (got[~inside & ~near] == 0).all()
    right = got[(px > a)]
    assert (right[1:] <= right[:-1]).all() and right[0] > 0.5 and right[-1] == 0
    loss = soft.sum()
    loss.backward()
    assert torch.isfinite(tris.grad).all() and tris.grad.abs().sum() > 0


def test_dibr_soft_mask_gradient_matches_finite_differences(standins):
    kaolin = standins.kaolin
    H = W = 12
    base = torch.tensor([[[(-0.5, -0.45), (0.48, -0.3), (0.02, 0.52)]]], dtype=torch.float64)
    z = torch.full((1, 1, 3), -2.0, dtype=torch.float64)
    feat = torch.rand(1, 1, 3, 2, dtype=torch.float64)

    def loss(v):
        (img,), soft, _ = _dibr(kaolin, H, W, v, z, [feat], torch.ones(1, 1, dtype=torch.float64),
                                sigmainv=300.0, boxlen=0.2)
        return img.sum() + soft.sum()

    v = base.clone().requires_grad_()
    loss(v).backward()
    eps = 1e-7
    for i, j in ((0, 0), (1, 1), (2, 0)):
        plus, minus = base.clone(), base.clone()
        plus[0, 0, i, j] += eps
        minus[0, 0, i, j] -= eps
        fd = ((loss(plus) - loss(minus)) / (2 * eps)).item()
        assert v.grad[0, 0, i, j].item() == pytest.approx(fd, rel=1e-4, abs=1e-6)


def test_subdivide_tetmesh_one_tet(standins):
    kaolin = standins.kaolin
    verts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    tets = torch.tensor([[0, 1, 2, 3]])
    sdf = torch.tensor([[[-1.0], [-1.0], [0.5], [0.5]]])
    nv, nt, nf = kaolin.ops.mesh.subdivide_tetmesh(verts, tets, sdf)
    assert nv.shape == (1, 10, 3) and nt.shape == (8, 4) and nf.shape == (1, 10, 1)
    # exactly the example of kaolin's subdivide_tetmesh docstring (vertex and child order)
    assert nt.tolist() == [[0, 4, 5, 6], [1, 7, 4, 8], [2, 5, 7, 9], [3, 6, 9, 8],
                           [4, 5, 6, 8], [4, 5, 8, 7], [9, 5, 8, 6], [9, 5, 7, 8]]
    assert nv[0, 4:].tolist() == [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0],
                                  [0.5, 0, 0.5], [0, 0.5, 0.5]]
    assert nf[0, :, 0].tolist() == [-1, -1, 0.5, 0.5, -1, -0.25, -0.25, -0.25, -0.25, 0.5]
    assert torch.equal(nv[0, :4], verts[0])
    mids = {tuple(p) for p in nv[0, 4:].tolist()}
    assert mids == {(0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5),
                    (0, 0.5, 0.5)}
    assert sorted(nf[0, 4:, 0].tolist()) == [-1.0, -0.25, -0.25, -0.25, -0.25, 0.5]

    def vol(t):
        p = nv[0][t]
        return torch.det(p[:, 1:] - p[:, :1]).abs() / 6
    assert torch.allclose(vol(nt), torch.full((8,), 1 / 48))   # 8 equal children
    assert vol(nt).sum().item() == pytest.approx(1 / 6)
    # every child is a proper tet (4 distinct vertices) and all 10 vertices are used
    assert all(len(set(t)) == 4 for t in nt.tolist())
    assert set(nt.flatten().tolist()) == set(range(10))
    v2, t2 = kaolin.ops.mesh.subdivide_tetmesh(verts, tets)
    assert torch.equal(v2, nv) and torch.equal(t2, nt)
    # two tets sharing a face share its 3 edge midpoints: 5 + 9 edges = 14 vertices
    verts2 = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]])
    v3, t3 = kaolin.ops.mesh.subdivide_tetmesh(verts2, torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))
    assert v3.shape == (1, 14, 3) and t3.shape == (16, 4)
    assert len({tuple(p) for p in v3[0].tolist()}) == 14


def test_kaolin_small_helpers(standins):
    k = standins.kaolin
    verts = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [0, 3, 0], [0, 0, 1]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 2, 3]])
    fv = k.ops.mesh.index_vertices_by_faces(verts, faces)
    assert fv.shape == (1, 3, 3, 3) and torch.equal(fv[0, 2], verts[0, [1, 2, 3]])
    n = k.ops.mesh.face_normals(fv)
    assert n[0, 0].tolist() == [0, 0, 6] and n[0, 1].tolist() == [0, 0, -6]
    nu = k.ops.mesh.face_normals(fv, unit=True)
    assert torch.allclose(nu.norm(dim=-1), torch.ones(1, 3))
    R = torch.tensor([[[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]])
    T = torch.tensor([[[1.0], [2.0], [3.0]]])
    out = k.render.camera.rotate_translate_points(verts, R, T)
    assert torch.allclose(out, (verts - T.view(1, 1, 3)) @ R.transpose(1, 2))
    assert out[0, 1].tolist() == [2.0, 1.0, -3.0]
    a = torch.zeros(2, 4, 4)
    b = torch.zeros(2, 4, 4)
    a[0, :2] = 1
    b[0, 1:3] = 1            # IoU 1/3
    a[1] = 1
    b[1] = 1                 # IoU 1
    assert k.metrics.render.mask_iou(a, b).item() == pytest.approx(1 - (1 / 3 + 1) / 2)


# ----------------------------------------------------------------------------- pytorch3d

def test_knn_points_matches_brute_force_with_squared_distances(standins):
    knn = standins.p3d_knn
    torch.manual_seed(3)
    p1 = torch.randn(2, 50, 3, requires_grad=True)
    p2 = torch.randn(2, 30, 3, requires_grad=True)
    out = knn.knn_points(p1, p2, K=4, return_nn=True)
    dists, idx, nn = out
    assert out.dists is dists and dists.shape == (2, 50, 4) and idx.dtype == torch.long
    brute = ((p1[:, :, None] - p2[:, None]) ** 2).sum(-1)            # squared distances
    ref_d, ref_i = brute.sort(dim=2)
    assert torch.equal(idx, ref_i[..., :4])
    assert torch.allclose(dists, ref_d[..., :4], atol=1e-5)
    assert torch.equal(nn, torch.stack([p2[b][idx[b]] for b in range(2)]))
    (dists.sum()).backward()
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
    # default K=1, as the repos call it: dists, idx, _ = knn_points(x, y)
    d1, i1, none = knn.knn_points(p1.detach(), p2.detach())
    assert none is None and d1.shape == (2, 50, 1) and torch.equal(i1[..., 0], ref_i[..., 0])
    # ragged clouds: past lengths2 never chosen, past lengths1 / beyond lengths2 padded with 0
    l1, l2 = torch.tensor([50, 20]), torch.tensor([30, 3])
    d, i, _ = knn.knn_points(p1.detach(), p2.detach(), lengths1=l1, lengths2=l2, K=4)
    assert (i[1, :20, :3] < 3).all() and (i[1, :, 3] == 0).all() and (d[1, :, 3] == 0).all()
    assert (d[1, 20:] == 0).all() and (i[1, 20:] == 0).all()
    ref = ((p1[1, :20, None].detach() - p2[1, None, :3].detach()) ** 2).sum(-1).sort(1)
    assert torch.allclose(d[1, :20, :3], ref.values, atol=1e-5)
    g = knn.knn_gather(p2.detach(), i, lengths=l2)
    assert (g[1, :, 3] == 0).all() and torch.equal(g[0], p2[0].detach()[i[0]])


def test_so3_exp_log_round_trip_and_quaternions(standins):
    tf, rc = standins.p3d_tf, standins.p3d_rc
    torch.manual_seed(4)
    axis = torch.nn.functional.normalize(torch.randn(64, 3), dim=1)
    angle = torch.rand(64, 1) * 3.0 + 0.01                  # (0, pi) away from the ends
    log_rot = axis * angle
    R = tf.so3_exp_map(log_rot)
    assert tf.so3_exponential_map is tf.so3_exp_map
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-5)
    assert torch.allclose(torch.det(R), torch.ones(64), atol=1e-5)
    # rotation about z by +90 degrees maps x to y (right-handed, column vectors)
    Rz = tf.so3_exp_map(torch.tensor([[0.0, 0.0, math.pi / 2]]))
    assert torch.allclose(Rz[0] @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)
    assert torch.allclose(tf.so3_log_map(R), log_rot, atol=2e-3)
    assert torch.allclose(tf.so3_log_map(torch.eye(3)[None]), torch.zeros(1, 3), atol=1e-6)
    # quaternions are real-first: q = (cos a/2, sin a/2 * axis)
    q = torch.cat([torch.cos(angle / 2), torch.sin(angle / 2) * axis], 1)
    assert torch.allclose(rc.quaternion_to_matrix(q), R, atol=1e-5)
    q2 = rc.matrix_to_quaternion(R)
    assert torch.allclose(q2, q, atol=1e-4) and (q2[:, 0] >= 0).all()
    assert torch.allclose(rc.matrix_to_quaternion(rc.quaternion_to_matrix(-q)), q, atol=1e-4)
    # batched leading dimensions, as the repos use them (B, N, 4)
    assert rc.quaternion_to_matrix(q.reshape(8, 8, 4)).shape == (8, 8, 3, 3)
    assert rc.matrix_to_quaternion(R.reshape(8, 8, 3, 3)).shape == (8, 8, 4)
    r = log_rot.clone().requires_grad_()
    tf.so3_exp_map(r).sum().backward()
    assert torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0
    # GaussianModel trains through quaternion -> matrix -> (rotate) -> quaternion
    qg = q.clone().requires_grad_()
    out = rc.matrix_to_quaternion(R.detach() @ rc.quaternion_to_matrix(qg))
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(qg.grad).all() and qg.grad.abs().sum() > 0
