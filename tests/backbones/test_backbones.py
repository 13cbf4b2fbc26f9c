"""Backbone registry: shapes and feature dims, CIFAR stem resolution, timm, registration, errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ssl_bench.backbones import available_backbones, build_backbone, register_backbone
from ssl_bench.backbones import registry


def _forward(model: nn.Module, size: int = 32, batch: int = 2) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.randn(batch, 3, size, size))


def _layer1_input_hw(model: nn.Module) -> tuple[int, int]:
    seen = []
    handle = model.layer1.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[-2:]))
    _forward(model, batch=1)
    handle.remove()
    return tuple(seen[0])


def test_builtins_listed():
    assert {"resnet18", "resnet50", "tiny_cnn"} <= set(available_backbones())
    assert available_backbones() == sorted(available_backbones())


@pytest.mark.parametrize("cifar_stem, layer1_hw", [(False, (8, 8)), (True, (32, 32))])
def test_resnet18_shapes_and_stem(cifar_stem, layer1_hw):
    model, dim = build_backbone("resnet18", cifar_stem=cifar_stem)
    assert dim == 512
    assert _forward(model).shape == (2, 512)
    assert _layer1_input_hw(model) == layer1_hw
    assert isinstance(model.fc, nn.Identity)
    if cifar_stem:
        assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
        assert isinstance(model.maxpool, nn.Identity)


def test_resnet_never_pretrained_and_fresh():
    a, _ = build_backbone("resnet18")
    b, _ = build_backbone("resnet18")
    assert not torch.equal(a.conv1.weight, b.conv1.weight)  # random init each time, no shared weights


def test_resnet50_shape():
    model, dim = build_backbone("resnet50", cifar_stem=True)
    assert dim == 2048
    assert _forward(model, batch=1).shape == (1, 2048)


@pytest.mark.parametrize("width, size", [(32, 32), (8, 8), (4, 16)])
def test_tiny_cnn(width, size):
    model, dim = build_backbone("tiny_cnn", width=width)
    assert dim == 4 * width
    assert _forward(model, size=size).shape == (2, dim)
    assert build_backbone("tiny_cnn")[1] == 128


def test_tiny_cnn_spatial_path():
    """Strides (1, 2, 2, 2): 32x32 ends at 4x4 before pooling; widths 32, 64, 128, 128."""
    model, _ = build_backbone("tiny_cnn")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 128]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert model[:4].eval()(x).shape == (1, 128, 4, 4)


def test_tiny_cnn_bad_width():
    with pytest.raises(ValueError, match="width"):
        build_backbone("tiny_cnn", width=0)


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "timm:vit_tiny_patch16_224"])
def test_timm_vit_tiny(name):
    model, dim = build_backbone(name, img_size=32, patch_size=8, depth=2)
    assert dim == 192
    assert _forward(model).shape == (2, 192)


def test_timm_prefix_overrides_registry():
    ours, _ = build_backbone("resnet18")
    theirs, dim = build_backbone("timm:resnet18")
    assert type(ours).__module__.startswith("torchvision") and type(theirs).__module__.startswith("timm")
    assert dim == 512 and _forward(theirs).shape == (2, 512)


def test_timm_head_hidden_size():
    """MobileNetV3's pre-logits feature is its head_hidden_size, not num_features."""
    model, dim = build_backbone("mobilenetv3_small_050")
    assert _forward(model).shape == (2, dim)


def test_register_backbone_round_trip():
    name = "test_linear_backbone"

    @register_backbone(name)
    def factory(dim: int = 5) -> tuple[nn.Module, int]:
        return nn.Sequential(nn.Flatten(1), nn.LazyLinear(dim)), dim

    try:
        assert name in available_backbones()
        model, dim = build_backbone(name, dim=3)
        assert dim == 3 and _forward(model, size=8).shape == (2, 3)
        with pytest.raises(ValueError, match="already registered"):
            register_backbone(name)(lambda: (nn.Identity(), 1))
        with pytest.raises(ValueError, match=f"backbone '{name}'.*'bogus'"):
            build_backbone(name, bogus=1)
        assert f"known: {', '.join(available_backbones())}, or any timm" in _unknown_message()
    finally:
        registry._REGISTRY.pop(name, None)
    assert name not in available_backbones()


def test_register_backbone_bad_return():
    name = "test_bad_backbone"
    register_backbone(name)(lambda: nn.Identity())
    try:
        with pytest.raises(ValueError, match="must return"):
            build_backbone(name)
    finally:
        registry._REGISTRY.pop(name, None)


def _unknown_message() -> str:
    with pytest.raises(ValueError) as info:
        build_backbone("xyz")
    return str(info.value)


def test_unknown_name_message():
    known = ", ".join(available_backbones())  # other test files may have registered more names
    assert {"resnet18", "resnet50", "tiny_cnn"} <= set(known.split(", "))
    assert _unknown_message() == (
        f"unknown backbone 'xyz'; known: {known}, or any timm model name (see timm.list_models())"
    )
    with pytest.raises(ValueError, match="unknown backbone 'timm:xyz'"):
        build_backbone("timm:xyz")


@pytest.mark.parametrize("name, key", [("resnet18", "foo"), ("resnet10t", "foo"), ("resnet50", "weights")])
def test_bad_option_message(name, key):
    with pytest.raises(ValueError) as info:
        build_backbone(name, **{key: 1})
    msg = str(info.value)
    assert "\n" not in msg and f"'{name}'" in msg and f"'{key}'" in msg


def test_timm_rejects_pretrained():
    with pytest.raises(ValueError, match="pretrained"):
        build_backbone("resnet10t", pretrained=True)
