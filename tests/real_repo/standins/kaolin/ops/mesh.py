"""CPU TEST STAND-IN for the ``kaolin.ops.mesh`` functions the repos use (test harness only)."""

import torch

__all__ = ["index_vertices_by_faces", "face_normals", "subdivide_tetmesh"]

# edges of a tet (a,b,c,d) in kaolin's order: ab, ac, ad, bc, bd, cd
_TET_EDGES = torch.tensor([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])


def index_vertices_by_faces(vertices_features, faces):
    """(B, V, D) per-vertex features and (F, 3) faces -> (B, F, 3, D) per-face-vertex features."""
    out = torch.index_select(vertices_features, -2, faces.reshape(-1))
    return out.reshape(*vertices_features.shape[:-2], *faces.shape, vertices_features.shape[-1])


def face_normals(face_vertices, unit=False):
    """(B, F, 3, 3) face vertices -> (B, F, 3) normals ``(v1 - v0) x (v2 - v0)``."""
    if face_vertices.shape[-2] != 3:
        raise NotImplementedError("face_normals is only implemented for triangle meshes")
    e0 = face_vertices[:, :, 1] - face_vertices[:, :, 0]
    e1 = face_vertices[:, :, 2] - face_vertices[:, :, 0]
    normals = torch.cross(e0, e1, dim=2)
    if unit:
        normals = normals / (normals.norm(dim=2, keepdim=True) + 1e-10)
    return normals


def subdivide_tetmesh(vertices, tetrahedrons, features=None):
    """Split every tet into 8 through its 6 edge midpoints (shared midpoints made once).

    vertices (B, V, 3), tetrahedrons (T, 4) long, features (B, V, D) optional. Returns
    (new_vertices (B, V + E, 3), new_tets (8T, 4)[, new_features (B, V + E, D)]): the E unique
    edges (sorted, as ``torch.unique``) give vertices V..V+E-1 at their midpoints (features
    averaged), children in kaolin's order (4 corner tets, then 4 from the inner octahedron).
    """
    edges = tetrahedrons[:, _TET_EDGES.to(tetrahedrons.device)].reshape(-1, 2)
    edges = torch.sort(edges, dim=1).values
    n_v = vertices.shape[1]
    # 1-D keys sort like the rows (lexicographic), and 1-D unique is much faster than dim=0
    keys, inverse = torch.unique(edges[:, 0] * n_v + edges[:, 1], return_inverse=True)
    unique_edges = torch.stack([keys // n_v, keys % n_v], dim=1)
    mid_idx = (inverse + vertices.shape[1]).reshape(-1, 6)
    pos = torch.cat([vertices, features], -1) if features is not None else vertices
    mids = 0.5 * (pos[:, unique_edges[:, 0]] + pos[:, unique_edges[:, 1]])
    new_pos = torch.cat([pos, mids], 1)
    a, b, c, d = tetrahedrons.unbind(1)
    ab, ac, ad, bc, bd, cd = mid_idx.unbind(1)
    children = [
        (a, ab, ac, ad), (b, bc, ab, bd), (c, ac, bc, cd), (d, ad, cd, bd),
        (ab, ac, ad, bd), (ab, ac, bd, bc), (cd, ac, bd, ad), (cd, ac, bc, bd),
    ]
    new_tets = torch.cat([torch.stack(ch, dim=1) for ch in children], 0)
    if features is None:
        return new_pos, new_tets
    return new_pos[..., :3], new_tets, new_pos[..., 3:]
