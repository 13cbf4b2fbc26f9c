"""SSL methods: one BaseMethod subclass per file. ``METHODS`` maps config names to classes."""
from .barlow_twins import BarlowTwins
from .base import BaseMethod
from .byol import BYOL
from .cmc import CMC
from .deepcluster import DeepClusterV2
from .momentum import BaseMomentumMethod, ema_update_
from .moco import MoCoV2Plus
from .nnclr import NNCLR
from .simclr import SimCLR
from .simsiam import SimSiam
from .swav import SwAV

METHODS: dict[str, type[BaseMethod]] = {
    "simclr": SimCLR,
    "byol": BYOL,
    "simsiam": SimSiam,
    "barlow_twins": BarlowTwins,
    "moco_v2plus": MoCoV2Plus,
    "nnclr": NNCLR,
    "swav": SwAV,
    "deepcluster_v2": DeepClusterV2,
    "cmc": CMC,
}

__all__ = ["BaseMethod", "BaseMomentumMethod", "ema_update_", "METHODS", *[c.__name__ for c in METHODS.values()]]
