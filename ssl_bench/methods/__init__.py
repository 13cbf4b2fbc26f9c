"""SSL methods: one BaseMethod subclass per file. ``METHODS`` maps config names to classes."""
from .barlow_twins import BarlowTwins
from .base import BaseMethod
from .byol import BYOL
from .momentum import BaseMomentumMethod, ema_update_
from .paws import PAWS
from .simclr import SimCLR
from .simsiam import SimSiam

METHODS: dict[str, type[BaseMethod]] = {
    "simclr": SimCLR,
    "byol": BYOL,
    "simsiam": SimSiam,
    "barlow_twins": BarlowTwins,
    "paws": PAWS,
}

__all__ = ["BaseMethod", "BaseMomentumMethod", "ema_update_", "METHODS", *[c.__name__ for c in METHODS.values()]]
