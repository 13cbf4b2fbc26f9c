"""torchvision ResNets (He et al., 2016) as feature extractors, never pretrained.

``cifar_stem=True`` applies the standard CIFAR adaptation (SimCLR, Chen et al. 2020, Appendix
B.9): conv1 becomes a 3x3 stride-1 convolution and the first max-pool is removed, so a 32x32
image enters layer1 at 32x32 instead of 8x8. ``in_chans`` (default 3) sets the input channels of
conv1, e.g. 1 for the L and 2 for the ab view of CMC. The classifier ``fc`` is replaced by ``Identity``:
the output is the 512-d (ResNet-18) or 2048-d (ResNet-50) global-average-pooled feature.
"""
from __future__ import annotations

from typing import Callable

from torch import nn
from torchvision.models import ResNet, resnet18 as tv_resnet18, resnet50 as tv_resnet50

from ssl_bench.backbones.registry import register_backbone


def _features(model: ResNet, cifar_stem: bool, in_chans: int = 3) -> tuple[nn.Module, int]:
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"backbone resnet: in_chans must be a positive int, got {in_chans!r}")
    if cifar_stem or in_chans != 3:
        kernel, stride, padding = (3, 1, 1) if cifar_stem else (7, 2, 3)
        model.conv1 = nn.Conv2d(in_chans, model.conv1.out_channels, kernel_size=kernel, stride=stride,
                                padding=padding, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision
    if cifar_stem:
        model.maxpool = nn.Identity()
    dim = model.fc.in_features
    model.fc = nn.Identity()
    return model, dim


@register_backbone("resnet18")
def resnet18(
    cifar_stem: bool = False,
    zero_init_residual: bool = False,
    norm_layer: Callable[[int], nn.Module] | None = None,
    in_chans: int = 3,
) -> tuple[nn.Module, int]:
    """torchvision ResNet-18 (random init), D = 512."""
    model = tv_resnet18(weights=None, zero_init_residual=zero_init_residual, norm_layer=norm_layer)
    return _features(model, cifar_stem, in_chans)


@register_backbone("resnet50")
def resnet50(
    cifar_stem: bool = False,
    zero_init_residual: bool = False,
    norm_layer: Callable[[int], nn.Module] | None = None,
    in_chans: int = 3,
) -> tuple[nn.Module, int]:
    """torchvision ResNet-50 (random init), D = 2048."""
    model = tv_resnet50(weights=None, zero_init_residual=zero_init_residual, norm_layer=norm_layer)
    return _features(model, cifar_stem, in_chans)
