"""Loss functions: pure functions, tensors in, scalar tensor out, no state.

- :func:`nt_xent` (SimCLR), :func:`byol_loss` (BYOL), :func:`simsiam_loss` (SimSiam),
  :func:`barlow_twins_loss` (Barlow Twins);
- :func:`infonce` (MoCo: queue negatives), :func:`batch_infonce` (NNCLR, CMC: in-batch negatives),
  :func:`cmc_loss` (CMC view graphs), :func:`sinkhorn` and :func:`swav_loss` (SwAV),
  :func:`deepcluster_loss` (DeepCluster v2).
"""
from ssl_bench.losses.barlow_twins import barlow_twins_loss
from ssl_bench.losses.cmc import cmc_loss, cmc_view_pairs
from ssl_bench.losses.contrastive import nt_xent
from ssl_bench.losses.cosine import byol_loss, simsiam_loss
from ssl_bench.losses.deepcluster import deepcluster_loss
from ssl_bench.losses.infonce import batch_infonce, infonce
from ssl_bench.losses.swav import sinkhorn, swav_loss

__all__ = ["nt_xent", "byol_loss", "simsiam_loss", "barlow_twins_loss", "infonce", "batch_infonce", "cmc_loss",
           "cmc_view_pairs", "sinkhorn", "swav_loss", "deepcluster_loss"]
