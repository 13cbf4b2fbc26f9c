"""SSL methods: one BaseMethod subclass per file. ``METHODS`` maps config names to classes."""
from .barlow_twins import BarlowTwins
from .base import BaseMethod
from .byol import BYOL
from .cmc import CMC
from .deepcluster import DeepClusterV2
from .dino import DINO
from .dinov2 import DINOv2
from .ibot import IBOT
from .ijepa import IJEPA
from .infomin import InfoMin
from .lejepa import LeJEPA
from .mae import MAE
from .moco import MoCoV2Plus
from .msn import MSN
from .mocov3 import MoCoV3
from .momentum import BaseMomentumMethod, ema_update_
from .nnclr import NNCLR
from .paws import PAWS
from .ressl import ReSSL
from .simclr import SimCLR
from .simsiam import SimSiam
from .swav import SwAV
from .vicreg import VICReg
from .wmse import WMSE

METHODS: dict[str, type[BaseMethod]] = {
    "simclr": SimCLR,
    "byol": BYOL,
    "simsiam": SimSiam,
    "barlow_twins": BarlowTwins,
    "moco_v2plus": MoCoV2Plus,
    "infomin": InfoMin,
    "nnclr": NNCLR,
    "swav": SwAV,
    "deepcluster_v2": DeepClusterV2,
    "cmc": CMC,
    "dino": DINO,
    "ressl": ReSSL,
    "vicreg": VICReg,
    "wmse": WMSE,
    "paws": PAWS,
    "mocov3": MoCoV3,
    "mae": MAE,
    "ijepa": IJEPA,
    "msn": MSN,
    "lejepa": LeJEPA,
    "ibot": IBOT,
    "dinov2": DINOv2,
}

__all__ = ["BaseMethod", "BaseMomentumMethod", "ema_update_", "METHODS", *[c.__name__ for c in METHODS.values()]]
