import numpy as np
import pytest
import torch

from feat2gs.errors import InputError
from feat2gs.gaussians import Gaussians
from feat2gs.io.ply import read_gaussians_ply, write_gaussians_ply


def _gaussians(n=50, deg=3):
    g = torch.Generator().manual_seed(0)
    k = (deg + 1) ** 2 - 1
    return Gaussians(torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g),
                     torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g),
                     torch.randn(n, 1, 3, generator=g), torch.randn(n, k, 3, generator=g))


def test_roundtrip(tmp_path):
    g = _gaussians()
    write_gaussians_ply(tmp_path / "g.ply", g)
    h = read_gaussians_ply(tmp_path / "g.ply")
    for a in ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest"):
        assert torch.equal(getattr(g, a), getattr(h, a)), a


def test_layout_matches_3dgs_and_gsplat_export(tmp_path):
    """Same field names/order and f_rest channel-major layout as gsplat's 3DGS exporter."""
    from gsplat import export_splats
    from plyfile import PlyData

    g = _gaussians(n=7)
    ours = tmp_path / "ours.ply"
    write_gaussians_ply(ours, g)
    theirs = tmp_path / "gsplat.ply"
    export_splats(g.means, g.log_scales, g.quats, g.opacity_logits[:, 0], g.sh_dc, g.sh_rest,
                  format="ply", save_to=str(theirs))
    a, b = PlyData.read(str(ours))["vertex"], PlyData.read(str(theirs))["vertex"]
    for name in b.data.dtype.names:
        assert name in a.data.dtype.names, name
        np.testing.assert_allclose(np.asarray(a[name]), np.asarray(b[name]), rtol=0, atol=0, err_msg=name)


def test_bad_files(tmp_path):
    p = tmp_path / "junk.ply"
    p.write_bytes(b"not a ply")
    with pytest.raises(InputError, match="junk.ply"):
        read_gaussians_ply(p)
