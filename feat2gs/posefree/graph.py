"""Scene graphs: which ordered image pairs a pairwise network sees.

``complete``: every unordered pair; ``swin-K``: each view with its K successors in capture order (sliding
window; ``swin-K-cyclic`` wraps around); ``knn-K``: each view with its K most similar views by a global
descriptor (cosine similarity, e.g. the mean encoder token). Every graph is returned *symmetrised* by default:
(i, j) and (j, i) both appear, so every view is the first view of some pair (its own camera frame is
predicted) and every edge is seen from both sides. The order is deterministic.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import InputError

GRAPHS = ("complete", "swin", "knn")


def parse_graph(spec: str) -> tuple[str, int, bool]:
    """``"complete"`` | ``"swin-K[-cyclic]"`` | ``"knn-K"`` -> (kind, K, cyclic)."""
    parts = str(spec).split("-")
    kind = parts[0]
    if kind == "complete" and len(parts) == 1:
        return kind, 0, False
    if kind in ("swin", "knn") and len(parts) in (2, 3):
        try:
            k = int(parts[1])
        except ValueError:
            k = -1
        cyclic = len(parts) == 3
        if k >= 1 and (not cyclic or (kind == "swin" and parts[2] == "cyclic")):
            return kind, k, cyclic
    raise InputError("scene_graph", f"bad scene graph {spec!r}; expected complete, swin-K, swin-K-cyclic or knn-K")


def make_pairs(num_views: int, graph: str = "complete", symmetrize: bool = True,
               descriptors: Optional[torch.Tensor] = None) -> list[tuple[int, int]]:
    """Ordered pairs (i, j), i != j, of the scene graph ``graph`` over ``num_views`` views.

    ``descriptors`` (V, D) are needed by ``knn-K``. Raises InputError for fewer than two views.
    """
    if num_views < 2:
        raise InputError("views", f"a pose-free reconstruction needs at least 2 views, got {num_views}")
    kind, k, cyclic = parse_graph(graph)
    edges: set[tuple[int, int]] = set()
    if kind == "complete":
        edges = {(i, j) for i in range(num_views) for j in range(i + 1, num_views)}
    elif kind == "swin":
        for i in range(num_views):
            for d in range(1, k + 1):
                j = i + d
                if cyclic:
                    j %= num_views
                if j < num_views and j != i:
                    edges.add((min(i, j), max(i, j)))
    else:
        if descriptors is None or descriptors.shape[0] != num_views:
            raise InputError("scene_graph", "knn graph needs one descriptor per view")
        d = torch.nn.functional.normalize(descriptors.double().flatten(1), dim=1)
        sim = d @ d.T
        sim.fill_diagonal_(-float("inf"))
        kk = min(k, num_views - 1)
        nn_idx = sim.topk(kk, dim=1).indices
        for i in range(num_views):
            for j in nn_idx[i].tolist():
                edges.add((min(i, j), max(i, j)))
    pairs = sorted(edges)
    if symmetrize:
        pairs = [p for e in pairs for p in (e, (e[1], e[0]))]
    return pairs


def check_connected(num_views: int, pairs: list[tuple[int, int]]) -> None:
    """InputError when the pairs do not connect all views (the alignment needs one connected graph)."""
    parent = list(range(num_views))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in pairs:
        parent[find(i)] = find(j)
    roots = {find(v) for v in range(num_views)}
    if len(roots) > 1:
        raise InputError("scene_graph", f"the pairs leave the views in {len(roots)} disconnected groups")
