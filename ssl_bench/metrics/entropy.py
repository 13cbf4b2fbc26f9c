"""Entropy and reconstruction estimators of the ER bound.

Rodriguez-Galvez, Blaas, Rodriguez, Golinski, Suau, Ramapuram, Busbridge, Zappella, "The role of
entropy and reconstruction in multi-view self-supervised learning" (ICML 2023):

    I(Z1; Z2) >= H(Z2) - E[-log q(Z2 | Z1)]        (entropy minus reconstruction error)

For l2-normalised embeddings on S^{d-1} both terms use the von Mises-Fisher (vMF) density
``vMF(z; mu, kappa) = C_d(kappa) exp(kappa mu.z)``:

- entropy: a vMF kernel density estimate over the batch, evaluated at the batch itself, with
  either reduction of the authors' public code apple/ml-entropy-reconstruction: the
  resubstitution mean ``"average"`` (Joe 1989; our default) or the plug-in ``"expectation"``
  (their default); the self term j = i is included unless ``leave_one_out``;
- reconstruction: ``q(z2 | z1) = vMF(z2; z1, kappa)``.

For softmax heads (DINO, SwAV) the entropy is that of the batch-mean distribution and the
reconstruction the cross-entropy to the target distribution. Every estimator runs in float32
(float64 inputs stay float64) with autocast disabled, and is differentiable.

Default kappa for monitoring: ``DEFAULT_KAPPA = 10``, the default of the authors' public code
(``entropy`` and ``reconstruction`` in apple/ml-entropy-reconstruction); use the same kappa for
both terms so that H - reconstruction is the ER bound. Reading the numbers: with resubstitution
the self term bounds the estimate, ``-log C_d(k) - k <= H <= -log C_d(k) - k + log N``
(lower end: all embeddings equal; upper end: all pairwise cosines << 1 at scale 1/kappa); as
kappa -> 0 every batch gives ``log |S^{d-1}|``.

``log C_d(kappa)`` is computed in log space from the power series of the modified Bessel
function (see ``log_vmf_normalizer``); ``I_{d/2-1}`` itself underflows (small kappa) or
overflows (large kappa) in float64 for d >= ~512, which is why ``scipy.special.iv`` is not used.
"""
from __future__ import annotations

import math
from functools import lru_cache, wraps
from typing import Callable, ParamSpec, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_KAPPA = 10.0
P = ParamSpec("P")
R = TypeVar("R")


def log_sphere_area(dim: int) -> float:
    """log of the surface area of S^{dim-1} in R^dim: log(2 pi^{d/2} / Gamma(d/2))."""
    return math.log(2.0) + 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim)


def _log_normalised_series(nu: float, kappa: Tensor) -> Tensor:
    """log S(k), S(k) = Gamma(nu+1) (k/2)^{-nu} I_nu(k) = sum_m Gamma(nu+1) (k/2)^{2m} / (m! Gamma(m+nu+1)).

    All terms are positive, so a logsumexp over them is exact up to rounding. The terms peak near
    m* = (sqrt(nu^2 + k^2) - nu) / 2 with spread <= sqrt(m* + 1); the window
    m* +- (12 sqrt(m* + 1) + 30) leaves out less than e^-60 of the sum. ``kappa`` is float64.
    """
    k_max = float(kappa.detach().max()) if kappa.numel() else 0.0
    k_min = float(kappa.detach().min()) if kappa.numel() else 0.0
    peak_hi = 0.5 * (math.sqrt(nu * nu + k_max * k_max) - nu)
    peak_lo = 0.5 * (math.sqrt(nu * nu + k_min * k_min) - nu)
    lo = max(0, math.floor(peak_lo - 12.0 * math.sqrt(peak_lo + 1.0) - 30.0))
    hi = math.ceil(peak_hi + 12.0 * math.sqrt(peak_hi + 1.0) + 30.0)
    m = torch.arange(lo, hi + 1, dtype=torch.float64, device=kappa.device)
    log_coef = math.lgamma(nu + 1.0) - torch.lgamma(m + 1.0) - torch.lgamma(m + nu + 1.0)
    # xlogy gives 0 * log(0) = 0, so kappa = 0 yields S = 1 exactly.
    terms = torch.special.xlogy(2.0 * m, kappa.unsqueeze(-1) / 2.0) + log_coef
    return torch.logsumexp(terms, dim=-1)


@lru_cache(maxsize=256)
def _log_vmf_normalizer_float(dim: int, kappa: float) -> float:
    log_s = _log_normalised_series(0.5 * dim - 1.0, torch.tensor(kappa, dtype=torch.float64))
    return -log_sphere_area(dim) - float(log_s)


def log_vmf_normalizer(dim: int, kappa: float | Tensor) -> Tensor:
    """log C_d(kappa) of the vMF density on S^{d-1}, C_d(k) = k^{d/2-1} / ((2 pi)^{d/2} I_{d/2-1}(k)).

    Computed as ``-log|S^{d-1}| - log S(k)`` with ``S(k) = Gamma(nu+1) (k/2)^{-nu} I_nu(k)``,
    nu = d/2 - 1 (the k^nu factors cancel analytically), and log S by logsumexp over the terms of
    the Bessel power series (Abramowitz & Stegun 9.6.10). Finite for any d >= 1 and kappa >= 0
    (d = 2048, kappa in [1e-3, 1e4] included); kappa = 0 gives -log|S^{d-1}| (the uniform density).
    Cost grows like kappa (about kappa/2 + 12 sqrt(kappa) terms). A float kappa returns a float64
    scalar (cached); a tensor kappa is differentiable and returns its own dtype, shape and device.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not isinstance(kappa, Tensor):
        kappa = float(kappa)
        if not (kappa >= 0.0 and math.isfinite(kappa)):
            raise ValueError(f"kappa must be finite and >= 0, got {kappa}")
        return torch.tensor(_log_vmf_normalizer_float(int(dim), kappa), dtype=torch.float64)
    if bool((kappa < 0).any()) or not bool(torch.isfinite(kappa).all()):
        raise ValueError("kappa must be finite and >= 0")
    out_dtype = kappa.dtype if kappa.is_floating_point() else torch.float64
    log_s = _log_normalised_series(0.5 * dim - 1.0, kappa.to(torch.float64))
    return (-log_sphere_area(dim) - log_s).to(out_dtype)


def _log_c_like(dim: int, kappa: float, like: Tensor) -> Tensor:
    """log C_d(kappa) as a scalar with the dtype (at least float32) and device of ``like``."""
    dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
    return log_vmf_normalizer(dim, kappa).to(device=like.device, dtype=dtype)


def _as_float(z: Tensor) -> Tensor:
    """float16/bfloat16/int inputs are upcast to float32; float32/float64 are kept."""
    return z if z.dtype in (torch.float32, torch.float64) else z.float()


def _full_precision(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with autocast disabled on every device type, so matmuls and logsumexps stay in
    the (at least float32) dtype of their inputs: under bf16/fp16 autocast ``z @ z.T`` would
    otherwise be rounded to 8 bits of mantissa, far coarser than the nats being estimated."""
    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return fn(*args, **kwargs)
    return wrapper


REDUCTIONS = ("average", "expectation")


def vmf_kde_log_density(z: Tensor, kappa: float, leave_one_out: bool = False) -> Tensor:
    """log p_hat(z_i) (N,) of the vMF kernel density estimate over the l2-normalised rows of ``z``.

    ``p_hat(x) = 1/M sum_j C_d(kappa) exp(kappa x . z_j)``, the sum over all j (M = N), or over
    j != i when ``leave_one_out`` (M = N - 1; needs N >= 2).
    """
    if z.dim() != 2 or z.shape[0] < 1:
        raise ValueError(f"z must be (N, d) with N >= 1, got shape {tuple(z.shape)}")
    n, d = z.shape
    if leave_one_out and n < 2:
        raise ValueError("leave_one_out needs at least 2 rows")
    z = F.normalize(_as_float(z), dim=1)
    logits = kappa * (z @ z.T)
    if leave_one_out:
        logits = logits.masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), float("-inf"))
    m = n - 1 if leave_one_out else n
    return _log_c_like(d, kappa, z) + torch.logsumexp(logits, dim=1) - math.log(m)


@_full_precision
def vmf_kde_entropy(z: Tensor, kappa: float, reduction: str = "average", leave_one_out: bool = False) -> Tensor:
    """Entropy (nats) of the l2-normalised rows of ``z`` (N, d) by a vMF kernel density estimate.

    Rodriguez-Galvez et al. 2023, Sec. 4.1, with ``l_i = log p_hat(z_i)`` from
    :func:`vmf_kde_log_density` (the self term j = i included unless ``leave_one_out``):

    - ``reduction="average"``: Joe's (1989) resubstitution estimator ``H = -1/N sum_i l_i``;
    - ``reduction="expectation"``: the plug-in estimator ``H = -sum_i w_i l_i`` with
      ``w = softmax(l)``, i.e. -E[log p_hat] with the expectation taken under p_hat restricted to
      the sample (the default of the authors' public code).

    Differentiable in ``z`` (through the weights too); computed in float32 (float64 inputs stay
    float64) even under autocast.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    log_density = vmf_kde_log_density(z, kappa, leave_one_out)
    if reduction == "average":
        return -log_density.mean()
    return -(torch.softmax(log_density, dim=0) * log_density).sum()


def vmf_entropy(dim: int, kappa: float) -> float:
    """Closed-form differential entropy (nats) of vMF(mu, kappa) on S^{dim-1}:
    ``H = -log C_d(kappa) - kappa A_d(kappa)``, ``A_d = I_{d/2}(kappa) / I_{d/2-1}(kappa)`` (the
    mean resultant length), with the Bessel ratio from the same log-space series as the normaliser.
    kappa = 0 gives log |S^{d-1}|."""
    nu = 0.5 * dim - 1.0
    k = torch.tensor(float(kappa), dtype=torch.float64)
    if kappa == 0:
        return log_sphere_area(dim)
    # I_nu(k) = S_nu(k) (k/2)^nu / Gamma(nu + 1), so I_{nu+1}/I_nu = S_{nu+1}/S_nu * (k/2) / (nu + 1)
    log_ratio = (_log_normalised_series(nu + 1.0, k) - _log_normalised_series(nu, k)
                 + math.log(kappa / 2.0) - math.log(nu + 1.0))
    return float(-log_vmf_normalizer(dim, kappa) - kappa * torch.exp(log_ratio))


@_full_precision
def vmf_reconstruction(z1: Tensor, z2: Tensor, kappa: float) -> Tensor:
    """Reconstruction error E[-log q(z2 | z1)] with q = vMF(z2; mu = z1, kappa), in nats.

    Rodriguez-Galvez et al. 2023 (ER bound, Sec. 3-4): the mean over the batch of
    -(log C_d(kappa) + kappa z1 . z2) on l2-normalised rows of ``z1``, ``z2`` (N, d).
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must both be (N, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    z1 = F.normalize(_as_float(z1), dim=1)
    z2 = F.normalize(_as_float(z2), dim=1)
    cos = (z1 * z2).sum(dim=1)
    return -(_log_c_like(z1.shape[1], kappa, z1) + kappa * cos).mean()


@_full_precision
def softmax_entropy(probs: Tensor) -> Tensor:
    """Entropy (nats) of the batch-mean distribution of softmax outputs ``probs`` (N, K).

    Rodriguez-Galvez et al. 2023 (discrete support, DINO/SwAV heads): H(mean_i p_i) =
    -sum_k pbar_k log pbar_k, with 0 log 0 = 0 (no epsilon).
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be (N, K), got shape {tuple(probs.shape)}")
    p_bar = _as_float(probs).mean(dim=0)
    return torch.special.entr(p_bar).sum()


@_full_precision
def softmax_reconstruction(logits: Tensor, target: Tensor) -> Tensor:
    """Reconstruction error of a softmax head: the cross-entropy ``E[-sum_k t_k log q_k]`` (nats)
    between target probabilities ``target`` (N, K) (rows summing to 1: a teacher's sharpened
    softmax, Sinkhorn codes) and the prediction ``q = softmax(logits)`` (N, K). Rodriguez-Galvez
    et al. 2023 (discrete support): q(W2 | Z1) is the predicted categorical distribution. Logits
    rather than probabilities, so that log q is exact where q underflows; target entries of 0
    contribute 0."""
    if logits.dim() != 2 or logits.shape != target.shape:
        raise ValueError(f"logits and target must both be (N, K), got {tuple(logits.shape)} and {tuple(target.shape)}")
    log_q = torch.log_softmax(_as_float(logits), dim=1)
    return -(_as_float(target) * log_q).sum(dim=1).mean()


def softmax_window_sums(entropy_logits: Tensor, pair: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, int]:
    """A batch's share of the collapse monitor's softmax window: the sum over the batch of
    ``softmax(entropy_logits)`` (K,), the summed cross-entropy of ``pair`` (prediction logits, target
    probabilities; ``softmax_reconstruction``) as a scalar, and the batch size. No gradient."""
    with torch.no_grad():
        probs = torch.softmax(_as_float(entropy_logits), dim=1)
        ce = softmax_reconstruction(*pair) * probs.shape[0]
    return probs.sum(dim=0), ce, int(probs.shape[0])
