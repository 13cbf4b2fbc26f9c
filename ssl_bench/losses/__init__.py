"""Loss functions: pure functions, tensors in, scalar tensor out, no state.

- :func:`nt_xent` (SimCLR), :func:`byol_loss` (BYOL), :func:`simsiam_loss` (SimSiam),
  :func:`barlow_twins_loss` (Barlow Twins).
"""
from ssl_bench.losses.barlow_twins import barlow_twins_loss
from ssl_bench.losses.contrastive import nt_xent
from ssl_bench.losses.cosine import byol_loss, simsiam_loss

__all__ = ["nt_xent", "byol_loss", "simsiam_loss", "barlow_twins_loss"]
