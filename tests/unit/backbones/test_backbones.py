"""Backbones: every one builds with random weights at a small image size; published
weights (in their file format) load strictly; offline without weights fails clearly."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from dscl.backbones import backbone_names, build_backbone, get_backbone, network


@pytest.mark.slow
@pytest.mark.parametrize("name,dim", [("googlenet", 1024), ("bninception", 1024), ("resnet50", 2048)])
def test_every_backbone_with_random_weights(name, dim):
    model = build_backbone(name, "none", seed=0).eval()
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, dim) and torch.isfinite(out).all()
    # seeded: the same random initialisation twice
    again = build_backbone(name, "none", seed=0).eval()
    with torch.no_grad():
        assert torch.equal(again(x), out)


def test_pixels_backbone_is_the_scaled_image():
    model = build_backbone("pixels", "none")
    x = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4)
    assert torch.allclose(model(x), x.float().reshape(1, 16) / 255)


def test_unknown_backbone_and_weights():
    with pytest.raises(ValueError, match=r"unknown backbone 'vgg16'; valid names: \['pixels', 'googlenet'"):
        get_backbone("vgg16")
    with pytest.raises(ValueError, match="features.weights must be 'imagenet', 'none' or the path"):
        build_backbone("googlenet", "imagenet21k")


def test_bninception_published_format_loads_strictly(tmp_path):
    """A file in the published port's format: batch-norm vectors of shape (1, C), no
    num_batches_tracked, a 1000-class last_linear."""
    reference = build_backbone("bninception", "none", seed=3).eval()
    published = {}
    for k, v in reference.body.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        published[k] = v.reshape(1, -1) if "_bn." in k else v
    published["last_linear.weight"] = torch.randn(1000, 1024)
    published["last_linear.bias"] = torch.randn(1000)
    torch.save(published, tmp_path / "bn_inception.pth")
    loaded = build_backbone("bninception", str(tmp_path / "bn_inception.pth"), seed=99).eval()
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(loaded(x), reference(x))
    bad = dict(published)
    del bad["inception_5b_1x1.weight"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="inception_5b_1x1.weight"):
        build_backbone("bninception", str(tmp_path / "bad.pth"))


def test_bninception_preprocessing_is_bgr_0_255_minus_mean():
    model = build_backbone("bninception", "none")
    x = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    x[0, 0] = 200  # red
    normalized = model.normalize(x)
    assert torch.allclose(normalized[0, :, 0, 0], torch.tensor([0 - 104.0, 0 - 117.0, 200 - 128.0]))


@pytest.mark.parametrize("name", ["googlenet", "resnet50"])
def test_torchvision_weights_file_loads(tmp_path, name):
    """A full torchvision checkpoint (classifier and auxiliary heads included)."""
    from torchvision import models

    if name == "googlenet":
        full = models.googlenet(weights=None, aux_logits=True, init_weights=True, transform_input=True)
    else:
        full = models.resnet50(weights=None)
    torch.save(full.state_dict(), tmp_path / "w.pth")
    model = build_backbone(name, str(tmp_path / "w.pth")).eval()
    full.eval().fc = torch.nn.Identity()
    full = full.to(memory_format=torch.channels_last)  # the same kernels as the backbone's
    x = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        reference = full(model.normalize(x).contiguous(memory_format=torch.channels_last))
        assert torch.allclose(model(x), reference, atol=1e-5)


def test_imagenet_weights_offline_fail_before_any_work(tmp_path, monkeypatch):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch/hub"))

    def offline(url, *a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    try:
        spec = get_backbone("googlenet")
        with pytest.raises(RuntimeError) as err:
            build_backbone("googlenet", "imagenet")
        message = str(err.value)
        assert network.weights_url(spec) in message
        assert str(network.weights_cache_path(spec)) in message and "weights: none" in message
    finally:
        torch.hub.set_dir(previous)


def test_registry_is_complete():
    assert backbone_names() == [
        "bninception",
        "efficientnet_lite0",
        "googlenet",
        "pixels",
        "resnet50",
        "resnet50_v2",
    ]


def test_torchvision_weights_come_from_its_enums():
    """GoogLeNet and ResNet-50 download the files torchvision's weight enums name (and
    hash-check); ResNet-50 takes IMAGENET1K_V1, the weights of the metric-learning papers."""
    from torchvision.models import GoogLeNet_Weights, ResNet50_Weights

    assert network.weights_url(get_backbone("googlenet")) == GoogLeNet_Weights.IMAGENET1K_V1.url
    assert network.weights_url(get_backbone("resnet50")) == ResNet50_Weights.IMAGENET1K_V1.url
    assert network.weights_url(get_backbone("resnet50_v2")) == ResNet50_Weights.IMAGENET1K_V2.url


def test_bninception_crop_sizes_are_checked_before_any_work():
    from dscl.backbones import bninception_accepts as accepts
    from dscl.backbones.bninception import BNInception
    from dscl.config import FeatureConfig as DatasetFeatureParams

    net = BNInception().eval()
    for size in (56, 64, 112, 200, 224, 227):  # the rule agrees with the network itself
        try:
            with torch.no_grad():
                net(torch.zeros(1, 3, size, size))
            went_through = True
        except RuntimeError:
            went_through = False
        assert went_through == accepts(size), size
    assert accepts(227) and accepts(224) and not accepts(299)
    DatasetFeatureParams("bninception", "none", resize=256, crop=227)
    with pytest.raises(ValueError, match=r"cannot take 299 x 299 crops.*valid crops near 299: \[287,"):
        DatasetFeatureParams("bninception", "none", resize=320, crop=299)


def test_saved_models_are_byte_identical(tmp_path):
    from dscl.atomic import save_torch

    state = {"w": torch.arange(6.0).reshape(2, 3), "record": {"step": 3}}
    save_torch(tmp_path / "a" / "model.pt", state)
    save_torch(tmp_path / "b" / "model.pt", state)  # another folder, another temporary name
    assert (tmp_path / "a/model.pt").read_bytes() == (tmp_path / "b/model.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a/model.pt")["w"], state["w"])
