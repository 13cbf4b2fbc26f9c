"""SSL methods: one BaseMethod subclass per file. ``METHODS`` maps config names to classes."""
from .barlow_twins import BarlowTwins
from .base import BaseMethod
from .byol import BYOL
from .dino import DINO
from .momentum import BaseMomentumMethod, ema_update_
from .ressl import ReSSL
from .simclr import SimCLR
from .simsiam import SimSiam
from .vicreg import VICReg
from .wmse import WMSE

METHODS: dict[str, type[BaseMethod]] = {
    "simclr": SimCLR,
    "byol": BYOL,
    "simsiam": SimSiam,
    "barlow_twins": BarlowTwins,
    "dino": DINO,
    "ressl": ReSSL,
    "vicreg": VICReg,
    "wmse": WMSE,
}

__all__ = ["BaseMethod", "BaseMomentumMethod", "ema_update_", "METHODS", *[c.__name__ for c in METHODS.values()]]
