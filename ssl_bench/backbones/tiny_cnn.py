"""A small CNN for fast CPU tests: 4 conv(3x3)-BN-ReLU blocks and global average pooling.

Widths (w, 2w, 4w, 4w) with w = ``width`` (default 32: 32, 64, 128, 128) and strides (1, 2, 2, 2),
so a 32x32 input ends at 4x4 and an 8x8 input at 1x1 before pooling. D = 4w. ``in_chans`` (default
3) is the number of input channels.
"""
from __future__ import annotations

from torch import nn

from ssl_bench.backbones.registry import register_backbone


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@register_backbone("tiny_cnn")
def tiny_cnn(width: int = 32, in_chans: int = 3) -> tuple[nn.Module, int]:
    """Build the tiny CNN with base width ``width``; returns (module, 4 * width)."""
    for key, value in (("width", width), ("in_chans", in_chans)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"backbone 'tiny_cnn': {key} must be a positive int, got {value!r}")
    widths = (width, 2 * width, 4 * width, 4 * width)
    strides = (1, 2, 2, 2)
    layers: list[nn.Module] = []
    c_in = in_chans
    for c_out, stride in zip(widths, strides):
        layers.append(_block(c_in, c_out, stride))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    return nn.Sequential(*layers), widths[-1]
