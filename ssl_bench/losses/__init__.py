"""Loss functions: pure functions, tensors in, scalar tensor out, no state.

- :func:`nt_xent` (SimCLR), :func:`byol_loss` (BYOL), :func:`simsiam_loss` (SimSiam),
  :func:`barlow_twins_loss` (Barlow Twins);
- :func:`infonce` (MoCo: queue negatives), :func:`infomin_loss` (InfoMin: image + JigSaw queries),
  :func:`batch_infonce` (NNCLR, CMC: in-batch negatives), :func:`mocov3_loss` (MoCo v3: gathered keys, no queue),
  :func:`cmc_loss` (CMC view graphs), :func:`sinkhorn` and :func:`swav_loss` (SwAV),
  :func:`deepcluster_loss` (DeepCluster v2);
- :func:`dino_loss` (DINO, with :func:`batch_center` and :func:`ema_center`), :func:`ressl_loss`
  (ReSSL), :func:`vicreg_loss` and its three terms (VICReg), :func:`wmse_loss` with :func:`whiten` (W-MSE);
- SCAN: :func:`scan_loss` (= :func:`scan_consistency` - w * :func:`mean_assignment_entropy`),
  :func:`self_label_loss`.
- masked images: :func:`mae_loss` with :func:`patchify` (MAE), :func:`ijepa_loss` (I-JEPA);
  :func:`self_distillation_loss`, :func:`ibot_patch_loss`, :func:`centered_softmax` (iBOT, DINOv2) and
  :func:`koleo_loss` (DINOv2).
- PAWS: :func:`paws_loss`, :func:`snn_predict`, :func:`sharpen`, :func:`me_max`, :func:`smooth_one_hot`.
- MSN: :func:`msn_loss`, :func:`prototype_logits`, :func:`msn_targets`.
- LeJEPA: :func:`lejepa_loss` (= :func:`lejepa_prediction_loss` + :func:`sigreg` of :func:`epps_pulley`),
  :func:`random_directions`, :func:`quadrature_grid`.
"""
from ssl_bench.losses.barlow_twins import barlow_twins_loss
from ssl_bench.losses.cmc import cmc_loss, cmc_view_pairs
from ssl_bench.losses.contrastive import nt_xent
from ssl_bench.losses.cosine import byol_loss, simsiam_loss
from ssl_bench.losses.deepcluster import deepcluster_loss
from ssl_bench.losses.dino import batch_center, dino_loss, ema_center
from ssl_bench.losses.ibot import centered_softmax, ibot_patch_loss, koleo_loss, self_distillation_loss
from ssl_bench.losses.infomin import infomin_loss
from ssl_bench.losses.infonce import batch_infonce, infonce, mocov3_loss
from ssl_bench.losses.lejepa import (
    epps_pulley,
    lejepa_loss,
    lejepa_prediction_loss,
    quadrature_grid,
    random_directions,
    sigreg,
)
from ssl_bench.losses.masked import ijepa_loss, mae_loss, patchify
from ssl_bench.losses.msn import msn_loss, msn_targets, prototype_logits
from ssl_bench.losses.paws import me_max, paws_loss, sharpen, smooth_one_hot, snn_predict
from ssl_bench.losses.ressl import ressl_loss
from ssl_bench.losses.scan import mean_assignment_entropy, scan_consistency, scan_loss, self_label_loss
from ssl_bench.losses.swav import sinkhorn, sinkhorn_knopp, swav_loss
from ssl_bench.losses.vicreg import covariance_loss, invariance_loss, variance_loss, vicreg_loss
from ssl_bench.losses.wmse import whiten, wmse_loss

__all__ = ["nt_xent", "byol_loss", "simsiam_loss", "barlow_twins_loss", "infonce", "infomin_loss", "batch_infonce",
           "mocov3_loss", "mae_loss", "patchify", "ijepa_loss", "self_distillation_loss", "ibot_patch_loss",
           "centered_softmax", "koleo_loss", "cmc_loss",
           "cmc_view_pairs", "sinkhorn", "sinkhorn_knopp", "swav_loss", "deepcluster_loss", "dino_loss", "batch_center",
           "ema_center", "ressl_loss", "vicreg_loss", "invariance_loss", "variance_loss",
           "covariance_loss", "wmse_loss", "whiten", "scan_loss", "scan_consistency", "mean_assignment_entropy",
           "self_label_loss", "paws_loss", "snn_predict", "sharpen", "me_max", "smooth_one_hot",
           "msn_loss", "msn_targets", "prototype_logits", "lejepa_loss", "lejepa_prediction_loss", "sigreg",
           "epps_pulley", "random_directions", "quadrature_grid"]
