import math

import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from feat2gs.metrics.image import (LPIPSUnavailable, MaskedLPIPS, masked_l1, mean_color_psnr,
                                   photometric_loss, psnr, ssim, ssim_map)


def _pair(seed=0, shape=(2, 3, 40, 52), noise=0.1):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(shape, generator=g)
    gt = torch.nn.functional.avg_pool2d(gt, 3, 1, 1)  # some structure
    pred = (gt + noise * torch.randn(shape, generator=g)).clamp(0, 1)
    return pred, gt


def test_psnr_matches_torchmetrics_without_mask():
    pred, gt = _pair()
    for i in range(2):
        ref = peak_signal_noise_ratio(pred[i:i + 1], gt[i:i + 1], data_range=1.0)
        assert abs(float(psnr(pred, gt)[i]) - float(ref)) < 1e-4


def test_psnr_masked_ignores_invalid_pixels():
    pred, gt = _pair()
    mask = torch.zeros(2, 40, 52, dtype=torch.bool)
    mask[:, 5:30, 10:40] = True
    corrupted = pred.clone()
    corrupted[~mask[:, None].expand_as(pred)] = 0.0  # garbage outside the mask changes nothing
    assert torch.allclose(psnr(pred, gt, mask), psnr(corrupted, gt, mask))
    # equals the PSNR of the cropped valid region
    crop = psnr(pred[..., 5:30, 10:40], gt[..., 5:30, 10:40])
    assert torch.allclose(psnr(pred, gt, mask), crop, atol=1e-4)
    # the official "multiply by mask, score the whole image" inflates PSNR
    inflated = psnr(pred * mask[:, None], gt * mask[:, None])
    assert (inflated > psnr(pred, gt, mask) + 1.0).all()


def test_ssim_matches_torchmetrics_without_mask():
    pred, gt = _pair()
    for i in range(2):
        ref = structural_similarity_index_measure(pred[i:i + 1], gt[i:i + 1], data_range=1.0,
                                                  kernel_size=11, sigma=1.5)
        assert abs(float(ssim(pred, gt)[i]) - float(ref)) < 1e-5


def test_ssim_map_matches_torchmetrics_full_image():
    pred, gt = _pair(shape=(1, 3, 32, 32))
    _, full = structural_similarity_index_measure(pred, gt, data_range=1.0, return_full_image=True)
    assert torch.allclose(ssim_map(pred, gt, "reflect"), full.mean(1), atol=1e-5)
    # 'valid' is the interior of the reflect-padded map
    assert torch.allclose(ssim_map(pred, gt, "valid"), full.mean(1)[:, 5:-5, 5:-5], atol=1e-5)


def test_ssim_masked_is_mean_over_valid_centres_and_identity():
    pred, gt = _pair()
    mask = torch.zeros(2, 40, 52, dtype=torch.bool)
    mask[:, 10:25, 12:30] = True
    expect = ssim_map(pred, gt)[:, 10:25, 12:30].mean(dim=(1, 2))
    assert torch.allclose(ssim(pred, gt, mask), expect, atol=1e-6)
    assert torch.allclose(ssim(gt, gt, mask), torch.ones(2), atol=1e-6)


def test_photometric_loss_and_masked_l1():
    pred, gt = _pair()
    assert float(photometric_loss(gt, gt)) < 1e-6
    l1 = (pred - gt).abs().mean()
    assert torch.allclose(photometric_loss(pred, gt, 0.0), l1)
    mask = torch.zeros(2, 40, 52, dtype=torch.bool)
    mask[:, :20] = True
    assert torch.allclose(masked_l1(pred, gt, mask), (pred - gt)[..., :20, :].abs().mean())


def test_mean_color_psnr_analytic():
    gt = torch.zeros(1, 3, 8, 8)
    gt[..., :4] = 1.0  # half black, half white
    p = mean_color_psnr(gt, torch.full((3,), 0.5))
    assert abs(float(p) - 10 * math.log10(1 / 0.25)) < 1e-4


def test_lpips_unavailable_without_backbone_weights(tmp_path):
    with pytest.raises(LPIPSUnavailable, match="not on this machine"):
        MaskedLPIPS("vgg", backbone_path=str(tmp_path / "missing.pth"))


def test_lpips_plumbing_with_a_torchvision_layout_checkpoint(tmp_path):
    """Exercises the loading path and the [-1, 1] input convention with a checkpoint of random weights
    in torchvision's layout (a plumbing test: the value is not LPIPS and is never reported)."""
    import lpips
    import torchvision

    vgg = torchvision.models.vgg16()
    path = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), path)
    metric = MaskedLPIPS("vgg", backbone_path=str(path))
    # every backbone tensor came from the checkpoint
    for key, val in metric.model.net.state_dict().items():
        _, idx, leaf = key.split(".")
        assert torch.equal(val, vgg.state_dict()[f"features.{idx}.{leaf}"])
    pred, gt = _pair(shape=(1, 3, 64, 64))
    assert float(metric(gt, gt)) < 1e-6
    # our call == LPIPS on [-1, 1] inputs, spatially averaged
    direct = metric.model(pred * 2 - 1, gt * 2 - 1).mean()
    assert torch.allclose(metric(pred, gt), direct.reshape(1), rtol=1e-5)
    with pytest.raises(LPIPSUnavailable):
        bad = tmp_path / "bad.pth"
        torch.save({"features.0.weight": torch.zeros(1)}, bad)
        MaskedLPIPS("vgg", backbone_path=str(bad))
    assert lpips is not None
