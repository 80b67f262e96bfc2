"""DUSt3R and MASt3R two-view networks: the CroCo encoder and decoder of ``backbones/croco.py`` plus the
point-map heads, under the official module names so the released checkpoints load strictly.

Architecture (``AsymmetricCroCo3DStereo`` / ``AsymmetricMASt3R`` with the released configs): both images go
through the same ViT-L/16 encoder (``patch_embed``, ``enc_blocks``, ``enc_norm``; RoPE100); ``decoder_embed``
projects 1024 -> 768; two ViT-B decoders of 12 ``DecoderBlock``s (``dec_blocks`` for view 1, ``dec_blocks2``
for view 2; each block self-attends, then cross-attends to the other view's previous tokens); ``dec_norm``
normalises the last decoder output. ``mask_token`` (CroCo pre-training) is held but unused.

Heads, one per view (``downstream_head1`` / ``downstream_head2``), outputs in view 1's camera frame:

* ``dpt`` (DUSt3R 512 dpt): a DPT adapter on the tokens after [encoder, decoder block 6, 9, 12]
  (``dpt.act_postprocess.{0..3}`` resample to 1/4, 1/8, 1/16, 1/32 of the image, ``dpt.scratch.layer{1..4}_rn``
  project to 256 channels, ``dpt.scratch.refinenet{4..1}`` fuse coarse to fine, ``dpt.head`` regresses 3 point
  coordinates + 1 confidence at full resolution);
* ``linear`` (DUSt3R linear): ``proj`` maps each last decoder token to 16x16 pixels x 4 channels;
* ``catmlp+dpt`` (MASt3R): the DPT for points and confidence, plus ``head_local_features``, an MLP on the
  concatenated encoder and last decoder tokens giving 24-d local descriptors (+ a descriptor confidence with
  ``two_confs``) per pixel.

Post-processing (``depth_mode=('exp', -inf, inf)``, ``conf_mode=('exp', 1, inf)``): a raw point p becomes
``p / |p| * expm1(|p|)``, a raw confidence c becomes ``1 + exp(c)``; descriptors are L2-normalised and the
descriptor confidence is ``exp(c)`` (``desc_conf_mode=('exp', 0, inf)``).

Checkpoints: ``.pth`` training checkpoints hold both ``dpt.scratch.layer{k}_rn`` and its alias
``dpt.scratch.layer_rn.{k-1}`` (the same tensor under two names), the Hugging Face safetensors only the
former; both load (the alias must equal its twin). Checkpoints without ``dec_blocks2`` get a copy of
``dec_blocks`` (as the official loader). Any other missing or unexpected key or shape is an error.

Portrait inputs: the pair is transposed to landscape (the released models were trained on landscape crops),
and the outputs are transposed back with the point coordinates' x and y swapped, so they are in the frame of
the camera of the image as given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from feat2gs.errors import InputError, WeightsNotFoundError

from .checkpoint import compare_state, read_checkpoint
from .croco import (DUST3R_WEIGHTS, MAST3R_WEIGHTS, CroCoConfig, CroCoEncoder, DecoderBlock, RoPE2D,
                    build_config)
from .weights import resolve_weights

HEADS = ("dpt", "linear", "catmlp+dpt")


@dataclass(frozen=True)
class StereoConfig(CroCoConfig):
    """A two-view network: the CroCo encoder's fields, then the decoder's and the head's. Defaults:
    ``DUSt3R_ViTLarge_BaseDecoder_512_dpt``."""

    dec_embed_dim: int = 768
    dec_depth: int = 12
    dec_num_heads: int = 12
    head: str = "dpt"  # dpt | linear | catmlp+dpt
    dpt_layer_dims: tuple[int, ...] = (96, 192, 384, 768)
    dpt_feature_dim: int = 256
    desc_dim: int = 24  # MASt3R local descriptor size (output_mode 'pts3d+desc24')
    two_confs: bool = False  # MASt3R: a separate descriptor confidence channel
    mlp_hidden_factor: float = 4.0  # MASt3R head_local_features hidden = factor * (enc + dec dims)

    def __post_init__(self):
        if self.head not in HEADS:
            raise InputError("stereo.head", f"unknown head {self.head!r}; expected one of {HEADS}")

    @property
    def encoder(self) -> CroCoConfig:
        return CroCoConfig(**{f.name: getattr(self, f.name) for f in fields(CroCoConfig)})

    @property
    def hooks(self) -> tuple[int, int, int, int]:
        n = self.dec_depth
        return (0, n * 2 // 4, n * 3 // 4, n)


#: the released configurations
DUST3R_512_DPT = StereoConfig()
DUST3R_512_LINEAR = StereoConfig(head="linear")
MAST3R_512_METRIC = StereoConfig(head="catmlp+dpt", desc_dim=24, two_confs=True)

#: name -> (config, weights): the same checkpoints as the ``dust3r`` / ``mast3r`` encoder backbones
STEREO_MODELS = {"dust3r": (DUST3R_512_DPT, DUST3R_WEIGHTS), "mast3r": (MAST3R_512_METRIC, MAST3R_WEIGHTS)}


# ------------------------------------------------------------------------------------------------ DPT
class ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """DPT feature fusion: (coarser path + residual unit of the skip) -> residual unit -> x2 bilinear
    (align_corners) -> 1x1 ``out_conv``."""

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTAdapter(nn.Module):
    """The DPT output adapter of DUSt3R (``DPTOutputAdapter_fix``), official submodule names."""

    def __init__(self, token_dims: Sequence[int], layer_dims: Sequence[int], feature_dim: int, out_channels: int,
                 patch: int):
        super().__init__()
        self.patch = patch
        d = list(layer_dims)
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(token_dims[0], d[0], 1), nn.ConvTranspose2d(d[0], d[0], 4, stride=4)),
            nn.Sequential(nn.Conv2d(token_dims[1], d[1], 1), nn.ConvTranspose2d(d[1], d[1], 2, stride=2)),
            nn.Sequential(nn.Conv2d(token_dims[2], d[2], 1)),
            nn.Sequential(nn.Conv2d(token_dims[3], d[3], 1), nn.Conv2d(d[3], d[3], 3, stride=2, padding=1)),
        ])
        self.scratch = nn.Module()
        for k in range(4):
            setattr(self.scratch, f"layer{k + 1}_rn", nn.Conv2d(d[k], feature_dim, 3, padding=1, bias=False))
        for k in range(4):
            setattr(self.scratch, f"refinenet{k + 1}", FusionBlock(feature_dim))
        last = feature_dim // 2
        self.head = nn.Sequential(
            nn.Conv2d(feature_dim, feature_dim // 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(feature_dim // 2, last, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(last, out_channels, 1),
        )

    def forward(self, tokens: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        H, W = size
        h, w = H // self.patch, W // self.patch
        maps = [t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w) for t in tokens]
        sc = self.scratch
        layers = [getattr(sc, f"layer{k + 1}_rn")(self.act_postprocess[k](m)) for k, m in enumerate(maps)]
        path = sc.refinenet4(layers[3])[:, :, :layers[2].shape[2], :layers[2].shape[3]]
        path = sc.refinenet3(path, layers[2])
        path = sc.refinenet2(path, layers[1])
        path = sc.refinenet1(path, layers[0])
        return self.head(path)


class PointHead(nn.Module):
    """One view's head: raw (B, C, H, W) with C = 3 points + 1 confidence (+ descriptors for MASt3R)."""

    def __init__(self, cfg: StereoConfig):
        super().__init__()
        self.cfg = cfg
        p, ed, dd = cfg.patch_size, cfg.embed_dim, cfg.dec_embed_dim
        if cfg.head == "linear":
            self.proj = nn.Linear(dd, 4 * p * p)
        else:
            self.dpt = DPTAdapter([ed, dd, dd, dd], cfg.dpt_layer_dims, cfg.dpt_feature_dim, 4, p)
        if cfg.head == "catmlp+dpt":
            idim = ed + dd
            self.head_local_features = _Mlp3(idim, int(cfg.mlp_hidden_factor * idim),
                                             (cfg.desc_dim + int(cfg.two_confs)) * p * p)

    def forward(self, outputs: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        cfg, p = self.cfg, self.cfg.patch_size
        H, W = size
        B = outputs[-1].shape[0]
        if cfg.head == "linear":
            x = self.proj(outputs[-1]).transpose(1, 2).reshape(B, -1, H // p, W // p)
            return F.pixel_shuffle(x, p)
        x = self.dpt([outputs[k] for k in cfg.hooks], size)
        if cfg.head == "catmlp+dpt":
            cat = torch.cat([outputs[0], outputs[-1]], -1)
            d = self.head_local_features(cat).transpose(1, 2).reshape(B, -1, H // p, W // p)
            x = torch.cat([x, F.pixel_shuffle(d, p)], 1)
        return x


class _Mlp3(nn.Module):
    """fc1 -> GELU -> fc2 with an output size of its own (CroCo's ``Mlp`` with ``out_features``)."""

    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def postprocess(raw: torch.Tensor, cfg: StereoConfig) -> dict[str, torch.Tensor]:
    """Raw head output (B, C, H, W) -> ``pts3d`` (B, H, W, 3), ``conf`` (B, H, W) [, ``desc``, ``desc_conf``]."""
    x = raw.permute(0, 2, 3, 1)
    xyz = x[..., :3]
    d = xyz.norm(dim=-1, keepdim=True)
    out = {"pts3d": xyz / d.clamp_min(1e-8) * torch.expm1(d), "conf": 1 + x[..., 3].exp()}
    if cfg.head == "catmlp+dpt":
        out["desc"] = F.normalize(x[..., 4:4 + cfg.desc_dim], dim=-1)
        out["desc_conf"] = x[..., 4 + cfg.desc_dim].exp() if cfg.two_confs else out["conf"].clone()
    return out


# ------------------------------------------------------------------------------------------------ model
@dataclass
class Encoded:
    """Encoder output of a batch of images: tokens (B, N, C), positions (B, N, 2), the image size (H, W) the
    network saw, and whether the images were transposed to landscape."""

    tokens: torch.Tensor
    pos: torch.Tensor
    size: tuple[int, int]
    transposed: bool

    def select(self, idx: torch.Tensor) -> "Encoded":
        idx = idx.to(self.tokens.device)
        return replace(self, tokens=self.tokens[idx], pos=self.pos[idx])


class StereoModel(nn.Module):
    """DUSt3R / MASt3R (``AsymmetricCroCo3DStereo`` / ``AsymmetricMASt3R``) for inference. ``encode`` images
    once, then ``decode`` any pairs of encoded views."""

    mean = 0.5
    std = 0.5

    def __init__(self, cfg: StereoConfig):
        super().__init__()
        self.cfg = cfg
        enc = CroCoEncoder(cfg.encoder)
        # the encoder's modules sit at the top level, as in the official model
        self.patch_embed, self.enc_blocks, self.enc_norm = enc.patch_embed, enc.enc_blocks, enc.enc_norm
        self._encoder = [enc]  # not a submodule (its parameters are registered above)
        rope = RoPE2D(cfg.rope_base)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dec_embed_dim))
        self.decoder_embed = nn.Linear(cfg.embed_dim, cfg.dec_embed_dim)
        mk = lambda: nn.ModuleList(DecoderBlock(cfg.dec_embed_dim, cfg.dec_num_heads, cfg.mlp_ratio, rope)  # noqa
                                   for _ in range(cfg.dec_depth))
        self.dec_blocks, self.dec_blocks2 = mk(), mk()
        self.dec_norm = nn.LayerNorm(cfg.dec_embed_dim, eps=1e-6)
        self.downstream_head1 = PointHead(cfg)
        self.downstream_head2 = PointHead(cfg)

    def init_weights(self, seed: int = 0) -> "StereoModel":
        """Fixed-seed random weights (CroCo's scheme: xavier-uniform linears, zero biases, normal mask token)."""
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.ndim >= 2:
                    bound = (6.0 / (p.shape[0] + p[0].numel())) ** 0.5
                    p.copy_(torch.rand(p.shape, generator=g) * 2 * bound - bound)
                elif "norm" in name and name.endswith("weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()
            self.mask_token.copy_(torch.randn(self.mask_token.shape, generator=g) * 0.02)
        return self

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def encode(self, images: torch.Tensor) -> Encoded:
        """Images (B, 3, H, W) in [0, 1], H and W multiples of the patch size."""
        p = self.cfg.patch_size
        H, W = images.shape[-2:]
        if H % p or W % p:
            raise InputError("images", f"{W}x{H} is not a multiple of the patch size {p}")
        transposed = H > W
        x = self.normalise(images)
        if transposed:
            x = x.transpose(-1, -2)
        tokens, pos, _ = self._encoder[0].encode(x)
        return Encoded(tokens, pos, tuple(x.shape[-2:]), transposed)

    def decode(self, v1: Encoded, v2: Encoded) -> tuple[dict, dict]:
        """Point maps of views 1 and 2, both in view 1's camera frame: dicts of ``pts3d`` (B, H, W, 3), ``conf``
        (B, H, W) (+ ``desc``, ``desc_conf`` for MASt3R), at the size of the images given to ``encode``."""
        if v1.size != v2.size or v1.transposed != v2.transposed:
            raise InputError("images", "both views of a pair must have the same size")
        outs1, outs2 = [v1.tokens], [v2.tokens]
        f1, f2 = self.decoder_embed(v1.tokens), self.decoder_embed(v2.tokens)
        for blk1, blk2 in zip(self.dec_blocks, self.dec_blocks2):
            f1, f2 = blk1(f1, f2, v1.pos, v2.pos), blk2(f2, f1, v2.pos, v1.pos)
            outs1.append(f1)
            outs2.append(f2)
        outs1[-1], outs2[-1] = self.dec_norm(outs1[-1]), self.dec_norm(outs2[-1])
        r1 = postprocess(self.downstream_head1(outs1, v1.size), self.cfg)
        r2 = postprocess(self.downstream_head2(outs2, v2.size), self.cfg)
        if v1.transposed:
            r1, r2 = _untranspose(r1), _untranspose(r2)
        return r1, r2

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> tuple[dict, dict]:
        return self.decode(self.encode(img1), self.encode(img2))


def _untranspose(res: dict) -> dict:
    out = {k: v.transpose(1, 2) for k, v in res.items()}
    out["pts3d"] = out["pts3d"][..., [1, 0, 2]]
    return out


# ------------------------------------------------------------------------------------------------ loading
#: a checkpoint alias of the DPT projection convs (the ``.pth`` checkpoints hold both names)
_ALIASES = {f"dpt.scratch.layer_rn.{k}.weight": f"dpt.scratch.layer{k + 1}_rn.weight" for k in range(4)}


def canonical_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Resolve the checkpoint's aliases (``layer_rn.k`` == ``layer{k+1}_rn``: dropped after checking they are
    equal) and fill ``dec_blocks2`` from ``dec_blocks`` when absent (the official loader does the same)."""
    out = dict(state)
    for k, v in state.items():
        for alias, canon in _ALIASES.items():
            if k.endswith(alias):
                twin = k[: -len(alias)] + canon
                if twin in state and not torch.equal(state[twin], v):
                    raise InputError(source, f"{k} differs from {twin} (they are one tensor in the official model)")
                out.setdefault(twin, v)
                del out[k]
    if not any(k.startswith("dec_blocks2.") for k in out):
        for k, v in state.items():
            if k.startswith("dec_blocks."):
                out["dec_blocks2." + k[len("dec_blocks."):]] = v
    return out


def load_stereo_state(model: StereoModel, state: dict[str, torch.Tensor], source: str) -> StereoModel:
    """Strict load: every key and shape must match (after ``canonical_state``)."""
    state = canonical_state(state, source)
    mismatch = compare_state(model.state_dict(), state)
    if mismatch:
        raise InputError(source, "checkpoint does not match the two-view architecture: " + mismatch.summary())
    model.load_state_dict(state, strict=True)
    return model


def stereo_weights_path(name: str, weights: Optional[Union[str, Path]] = None) -> Path:
    """The checkpoint of ``name``: ``weights`` (file or folder) or the Hugging Face cache; the error for missing
    weights names the initialiser option (``init.options.weights``)."""
    spec = STEREO_MODELS[name][1]
    try:
        return resolve_weights(spec, None if weights is None else str(weights))
    except WeightsNotFoundError as e:
        raise WeightsNotFoundError(e.model, e.how_to_get.replace("backbone.weights=PATH", "init.options.weights=PATH")
                                   ) from None


def build_stereo_model(name: str = "dust3r", weights: Optional[Union[str, Path]] = None,
                       arch_overrides: Optional[dict] = None, random_seed: Optional[int] = None,
                       device: str = "cpu") -> StereoModel:
    """The released ``name`` (``dust3r`` | ``mast3r``) network, loaded from ``weights`` (a file or folder) or
    the Hugging Face cache; with ``random_seed`` (tests, controls) fixed-seed random weights instead.
    ``arch_overrides`` change fields of the config (tiny test models)."""
    if name not in STEREO_MODELS:
        raise InputError("init.model", f"unknown two-view model {name!r}; expected one of {sorted(STEREO_MODELS)}")
    base, spec = STEREO_MODELS[name]
    cfg = base
    if arch_overrides:
        cfg = replace(base, **{k: (tuple(v) if isinstance(v, list) else v)
                               for k, v in build_config(StereoConfig, arch_overrides, "init.arch_overrides")
                               .__dict__.items() if k in arch_overrides})
    if random_seed is not None:
        model = StereoModel(cfg).init_weights(random_seed)
    else:
        path = stereo_weights_path(name, weights)  # before building the model
        state = read_checkpoint(path)
        with torch.device("meta"):
            model = StereoModel(cfg)
        model = model.to_empty(device="cpu")
        load_stereo_state(model, state, str(path))
    return model.to(device).eval()
