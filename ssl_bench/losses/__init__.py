"""Loss functions: pure functions, tensors in, scalar tensor out, no state.

- :func:`nt_xent` (SimCLR), :func:`byol_loss` (BYOL), :func:`simsiam_loss` (SimSiam),
  :func:`barlow_twins_loss` (Barlow Twins), :func:`dino_loss` (DINO, with :func:`batch_center` and
  :func:`ema_center`), :func:`ressl_loss` (ReSSL), :func:`vicreg_loss` and its three terms (VICReg),
  :func:`wmse_loss` with :func:`whiten` (W-MSE).
"""
from ssl_bench.losses.barlow_twins import barlow_twins_loss
from ssl_bench.losses.contrastive import nt_xent
from ssl_bench.losses.cosine import byol_loss, simsiam_loss
from ssl_bench.losses.dino import batch_center, dino_loss, ema_center
from ssl_bench.losses.ressl import ressl_loss
from ssl_bench.losses.vicreg import covariance_loss, invariance_loss, variance_loss, vicreg_loss
from ssl_bench.losses.wmse import whiten, wmse_loss

__all__ = ["nt_xent", "byol_loss", "simsiam_loss", "barlow_twins_loss", "dino_loss", "batch_center",
           "ema_center", "ressl_loss", "vicreg_loss", "invariance_loss", "variance_loss",
           "covariance_loss", "wmse_loss", "whiten"]
