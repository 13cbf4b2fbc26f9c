"""Loss functions: pure functions, tensors in, scalar tensor out, no state.

- :func:`nt_xent` (SimCLR), :func:`byol_loss` (BYOL), :func:`simsiam_loss` (SimSiam),
  :func:`barlow_twins_loss` (Barlow Twins).
- SCAN: :func:`scan_loss` (= :func:`scan_consistency` - w * :func:`mean_assignment_entropy`),
  :func:`self_label_loss`.
- PAWS: :func:`paws_loss`, :func:`snn_predict`, :func:`sharpen`, :func:`me_max`, :func:`smooth_one_hot`.
"""
from ssl_bench.losses.barlow_twins import barlow_twins_loss
from ssl_bench.losses.contrastive import nt_xent
from ssl_bench.losses.cosine import byol_loss, simsiam_loss
from ssl_bench.losses.paws import me_max, paws_loss, sharpen, smooth_one_hot, snn_predict
from ssl_bench.losses.scan import mean_assignment_entropy, scan_consistency, scan_loss, self_label_loss

__all__ = ["nt_xent", "byol_loss", "simsiam_loss", "barlow_twins_loss",
           "scan_loss", "scan_consistency", "mean_assignment_entropy", "self_label_loss",
           "paws_loss", "snn_predict", "sharpen", "me_max", "smooth_one_hot"]
