"""The ER switch: any method's loss becomes ``reconstruction - weight * entropy`` (Rodriguez-Galvez
et al., ICML 2023, Sec. 5 "ER as a training objective"), without a copy of the method.

A method opts in by declaring its ER inputs in the dict its ``ssl_loss`` returns::

    return {"loss": loss, "z": [z1, z2],
            "er": ERInputs.sphere(entropy=[z1, z2], pairs=[(p1, t2), (p2, t1)])}

- ``entropy``: one tensor per view whose entropy the ER term raises, with gradients (the caller's
  online/student branch: the target branch usually has none);
- ``pairs``: ``(prediction, target)`` tensors of the reconstruction term q(target | prediction),
  exactly as the method's own loss pairs them (targets detached where the method stops gradients);
- support ``"sphere"`` (continuous embeddings, any scale: they are l2-normalised) or ``"softmax"``
  (``entropy`` and predictions are logits, targets are probabilities; use ``ERInputs.softmax``).

The declaration costs nothing when ER is off. :class:`ERSettings` (built by ``BaseMethod`` from its
``er_*`` arguments) then replaces ``out["loss"]`` in ``BaseMethod.training_step``; the pure loss
functions are in :mod:`ssl_bench.losses.er`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..distributed import gather_with_grad
from ..errors import ConfigError
from ..losses.er import SUPPORTS, Pair, er_entropy, er_loss, er_reconstruction
from ..metrics.entropy import REDUCTIONS

#: reconstruction forms: "auto" = "vmf" for sphere inputs, "cross_entropy" for softmax inputs;
#: "native" keeps the method's own loss as the reconstruction term (loss - weight * entropy)
RECONSTRUCTIONS = ("auto", "vmf", "cross_entropy", "native")
_FORM_SUPPORT = {"vmf": "sphere", "cross_entropy": "softmax"}


@dataclass
class ERInputs:
    """What a method hands to the ER objective (see the module docstring)."""

    support: str
    entropy: list[Tensor]
    pairs: list[Pair]

    def __post_init__(self) -> None:
        if self.support not in SUPPORTS:
            raise ValueError(f"ERInputs.support must be one of {', '.join(SUPPORTS)}, got {self.support!r}")
        if not self.entropy or not self.pairs:
            raise ValueError("ERInputs needs at least one entropy input and one (prediction, target) pair")

    @classmethod
    def sphere(cls, entropy: list[Tensor], pairs: list[Pair]) -> "ERInputs":
        """Continuous embeddings (vMF entropy and reconstruction)."""
        return cls("sphere", list(entropy), list(pairs))

    @classmethod
    def softmax(cls, entropy_logits: list[Tensor], pairs: list[Pair]) -> "ERInputs":
        """Softmax heads: ``entropy_logits`` and the pairs' predictions are logits, the pairs'
        targets probabilities (rows summing to 1)."""
        return cls("softmax", list(entropy_logits), list(pairs))

    def detached(self) -> "ERInputs":
        return ERInputs(self.support, [e.detach() for e in self.entropy],
                        [(p.detach(), t.detach()) for p, t in self.pairs])


@dataclass(frozen=True)
class ERSettings:
    """The method's ``er_*`` arguments, validated. ``entropy_weight=None`` means ER is off (the
    method's own loss is trained); a number (0 included: reconstruction only) turns it on. The same
    ``kappa``/``reduction``/``leave_one_out`` drive the collapse monitor's entropy/reconstruction."""

    entropy_weight: float | None = None
    reconstruction: str = "auto"
    kappa: float = 10.0
    reduction: str = "average"
    leave_one_out: bool = False

    def __post_init__(self) -> None:
        if self.reconstruction not in RECONSTRUCTIONS:
            raise ConfigError(f"model.er_reconstruction must be one of {', '.join(RECONSTRUCTIONS)}, "
                              f"got {self.reconstruction!r}")
        if self.reduction not in REDUCTIONS:
            raise ConfigError(f"model.er_entropy_reduction must be one of {', '.join(REDUCTIONS)}, "
                              f"got {self.reduction!r}")
        if not self.kappa > 0:
            raise ConfigError(f"model.er_kappa must be > 0, got {self.kappa}")
        if self.entropy_weight is not None and self.entropy_weight < 0:
            raise ConfigError(f"model.er_entropy_weight must be >= 0 or null (ER off), got {self.entropy_weight}")

    @property
    def enabled(self) -> bool:
        return self.entropy_weight is not None

    def entropy(self, inputs: ERInputs) -> Tensor:
        """Entropy of the declared inputs on the global batch (each entropy input gathered over
        ranks with gradients, so every rank computes the single-process value)."""
        entropy_inputs = [gather_with_grad(e) for e in inputs.entropy]
        return er_entropy(entropy_inputs, inputs.support, self.kappa, self.reduction, self.leave_one_out)

    def terms(self, inputs: ERInputs) -> tuple[Tensor, Tensor]:
        """(reconstruction, entropy) of the declared inputs; the reconstruction is a per-sample mean
        (the local batch; DDP averages its gradients over ranks)."""
        return er_reconstruction(inputs.pairs, inputs.support, self.kappa), self.entropy(inputs)

    def apply(self, out: dict[str, Any], method: str) -> dict[str, Any]:
        """``out`` with ``loss`` replaced by the ER objective and the terms added as
        ``er_reconstruction`` / ``er_entropy`` (detached); unchanged when ER is off."""
        if not self.enabled:
            return out
        inputs = out.get("er")
        if not isinstance(inputs, ERInputs):
            raise ConfigError(f"model.er_entropy_weight is set but {method} declares no ER inputs "
                              "(its ssl_loss must return 'er': ERInputs.sphere(...) or ERInputs.softmax(...))")
        form = self.reconstruction
        if form in _FORM_SUPPORT and _FORM_SUPPORT[form] != inputs.support:
            raise ConfigError(f"model.er_reconstruction '{form}' needs {_FORM_SUPPORT[form]} ER inputs; "
                              f"{method} declares {inputs.support} ones (use 'auto')")
        if form == "native":
            reconstruction, entropy = out["loss"], self.entropy(inputs)
        else:
            reconstruction, entropy = self.terms(inputs)
        assert self.entropy_weight is not None
        return {**out, "loss": er_loss(reconstruction, entropy, self.entropy_weight),
                "er_reconstruction": reconstruction.detach(), "er_entropy": entropy.detach()}
