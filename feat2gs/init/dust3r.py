"""``init=dust3r`` / ``init=mast3r``: pose-free initialisation from a two-view network + our global alignment.

1. The train images are resized (not cropped) to the network input: long side ``input_size`` (512, the
   released models' training resolution), both sides multiples of 16.
2. Pairs from the scene graph ``graph`` (``complete`` by default, symmetrised; ``swin-K``, ``knn-K`` for long
   sequences, k-NN on the mean encoder token); every image is encoded once, the pairs decoded ``batch_size``
   at a time (``feat2gs.posefree.pairwise``).
3. Global alignment (``feat2gs.posefree.alignment``): MST initialisation, ``steps`` (300) Adam steps at ``lr``
   (0.01) with the ``schedule`` (linear), ``shared_focal`` (default true, as the reference's ``focal_avg``),
   point cleaning (``clean``, ``clean_tol``), pixels kept when their confidence >= ``min_conf`` (1.0: all, as
   the reference).
4. Depth, validity and confidence are resampled (nearest) to the train images' resolution, the cameras
   rescaled; the points are the unprojected depths.

Weights: ``weights`` (a file or folder) or the Hugging Face cache (``feat2gs weights fetch dust3r``);
``random_seed`` builds fixed-seed random weights (tests only: the result is not a reconstruction).
``arch_overrides`` changes the network config (tiny test models). The result is cached on disk per
(images, options, weights file) -- see ``feat2gs.posefree.reconstruction``; test views are registered by a
joint run on train + test and a Umeyama similarity on the train views' per-pixel points (confidence-weighted).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..posefree.alignment import AlignmentOptions, global_alignment
from ..posefree.graph import make_pairs, parse_graph
from ..posefree.pairwise import PairwisePrediction, pairwise_inference
from ..posefree.reconstruction import PoseFreeInitialiser, Reconstruction
from ..scene import working_size
from .base import INITIALISERS


def _nearest(t: torch.Tensor, H: int, W: int) -> torch.Tensor:
    return F.interpolate(t[:, None].float(), size=(H, W), mode="nearest-exact")[:, 0]


@INITIALISERS.register("dust3r")
class Dust3RInit(PoseFreeInitialiser):
    """DUSt3R point maps + global alignment (see the module doc for the options)."""

    name = "dust3r"
    model_name = "dust3r"

    def __init__(self, weights: Optional[str] = None, random_seed: Optional[int] = None,
                 arch_overrides: Optional[dict] = None, input_size: int = 512, graph: str = "complete",
                 batch_size: int = 4, steps: int = 300, lr: float = 0.01, schedule: str = "linear",
                 shared_focal: bool = True, clean: bool = True, clean_tol: float = 0.001, min_conf: float = 1.0,
                 device: str = "auto", cache: bool = True, cache_dir: Optional[str] = None, seed: int = 0):
        super().__init__(cache, cache_dir)
        parse_graph(graph)
        if int(input_size) < 16:
            raise InputError(f"init.{self.name}.input_size", f"must be >= 16, got {input_size}")
        self.weights, self.random_seed = weights, random_seed
        self.arch_overrides = dict(arch_overrides or {})
        self.input_size, self.graph, self.batch_size = int(input_size), str(graph), int(batch_size)
        self.align = AlignmentOptions(steps=int(steps), lr=float(lr), schedule=str(schedule),
                                      shared_focal=bool(shared_focal), clean=bool(clean), clean_tol=float(clean_tol))
        self.align.validate()
        self.shared_intrinsics = bool(shared_focal)
        self.min_conf = float(min_conf)
        self.device = device
        self.seed = int(seed)
        self._model = None

    def _device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return str(self.device)

    def model(self):
        if self._model is None:
            from backbones.croco_stereo import build_stereo_model

            self._model = build_stereo_model(self.model_name, self.weights, self.arch_overrides, self.random_seed,
                                             device=self._device())
        return self._model

    def _weights_id(self):
        if self.random_seed is not None:
            return {"random_seed": int(self.random_seed)}
        from backbones.croco_stereo import stereo_weights_path
        from backbones.weights import file_fingerprint

        fp = file_fingerprint(stereo_weights_path(self.model_name, self.weights))
        return {"path": fp["path"], "size": fp["size"]} if fp else None

    def cache_options(self) -> dict:
        return {"method": self.name, "weights": self._weights_id(), "arch": self.arch_overrides,
                "input_size": self.input_size, "graph": self.graph, "align": self.align.__dict__,
                "min_conf": self.min_conf}

    def _reconstruct(self, images: torch.Tensor, names: list[str], masks, dense: bool = True) -> Reconstruction:
        H, W = images.shape[-2:]
        p = 16 if "patch_size" not in self.arch_overrides else int(self.arch_overrides["patch_size"])
        w, h = working_size(W, H, self.input_size, p)
        x = F.interpolate(images, size=(h, w), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
        pred = self.predict_pairs(x, names)
        pairs = pred.pairs
        res = global_alignment(pred, self.align, device=self._device())
        valid = res.valid & (res.confidence >= self.min_conf)
        cams = res.cameras.resized(W, H)
        depth = _nearest(res.depth * valid, H, W)
        valid_hr = _nearest(valid.float(), H, W) > 0.5
        conf = _nearest(res.confidence, H, W)
        meta = {"method": self.name, "model_input": [w, h], "graph": self.graph, "pairs": len(pairs),
                "alignment": {k: v for k, v in res.meta.items() if k != "mst_order"},
                "focal_px": [float(f) for f in cams.K[:, 0, 0]], "valid_fraction": float(valid_hr.float().mean())}
        if masks is not None:
            valid_hr &= masks.bool()
        return Reconstruction(cams, depth * valid_hr, valid_hr, conf, None, meta)

    def predict_pairs(self, x: torch.Tensor, names: list[str]) -> PairwisePrediction:
        """The network's pairwise point maps of images ``x`` (V, 3, h, w) at the network input size over the
        scene graph."""
        model, dev = self.model(), self._device()
        descriptors = None
        if self.graph.startswith("knn"):
            with torch.no_grad():
                descriptors = model.encode(x.to(dev)).tokens.mean(1).cpu()
        pairs = make_pairs(x.shape[0], self.graph, descriptors=descriptors)
        return pairwise_inference(_OnDevice(model, dev), x, pairs, self.batch_size)

    def unit_confidence(self, rec: Reconstruction):
        """DUSt3R's confidence c = 1 + exp(x) >= 1 mapped to [0, 1) by 1 - 1/c (monotone; 0 where invalid)."""
        return (1 - 1 / rec.confidence.clamp_min(1.0)) * rec.valid

    def register_points(self, joint: Reconstruction, ref: Reconstruction, n_train: int):
        both = joint.valid[:n_train] & ref.valid
        if int(both.sum()) < 3:
            return None
        src = joint.cameras.subset(range(n_train)).unproject(joint.depth[:n_train])[both]
        dst = ref.points[both]
        w = None
        if joint.confidence is not None and ref.confidence is not None:
            w = (joint.confidence[:n_train][both] * ref.confidence[both]).double()
        return src.double(), dst.double(), w


@INITIALISERS.register("mast3r")
class MASt3RInit(Dust3RInit):
    """The MASt3R network's point maps (its 3D head) + the same global alignment."""

    name = "mast3r"
    model_name = "mast3r"


class _OnDevice:
    """Moves images to the model's device for ``pairwise_inference``."""

    def __init__(self, model, device: str):
        self.model, self.device = model, device

    def encode(self, images):
        return self.model.encode(images.to(self.device))

    def decode(self, a, b):
        return self.model.decode(a, b)
