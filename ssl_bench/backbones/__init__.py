"""Backbone registry: torchvision ResNets (optional CIFAR stem), a tiny CPU CNN, any timm model.

>>> module, dim = build_backbone("resnet18", cifar_stem=True)   # dim == 512
"""
from ssl_bench.backbones import resnet, tiny_cnn, vit  # noqa: F401  (register the built-ins)
from ssl_bench.backbones.registry import available_backbones, build_backbone, register_backbone

__all__ = ["build_backbone", "register_backbone", "available_backbones"]
