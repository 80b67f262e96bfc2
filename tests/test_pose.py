import torch

from feat2gs.geometry.pose import PoseCorrection, so3_exp


def test_so3_exp_is_rodrigues():
    w = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
    th = w.norm()
    k = w[0] / th
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    R = torch.eye(3, dtype=torch.float64) + torch.sin(th) * K + (1 - torch.cos(th)) * K @ K
    assert torch.allclose(so3_exp(w)[0], R, atol=1e-12)


def test_zero_correction_is_identity_and_gradients_flow():
    base = torch.eye(4).repeat(2, 1, 1)
    base[1, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    pc = PoseCorrection(base, scale=2.0)
    assert torch.equal(pc(), base)
    pc.trans.data[1] = torch.tensor([0.5, 0.0, 0.0])
    assert torch.allclose(pc()[1, :3, 3], torch.tensor([2.0, 2.0, 3.0]))  # 0.5 x scale 2
    point = torch.tensor([1.0, 2.0, 3.0, 1.0])
    (pc(torch.tensor([0]))[0] @ point)[:3].pow(2).mul(torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert pc.rot.grad is not None and pc.rot.grad[0].abs().sum() > 0
