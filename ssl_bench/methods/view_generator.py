"""InfoMin's learned views (Tian et al., 2020, Sec. 4): an invertible, pixel-wise flow g on the colour
channels turns an image X into X_hat = g(X), split into two views (channel 1 vs channels 2-3, the
shape of CMC's L vs ab), and is trained adversarially against the contrastive critic: the encoders
maximise the InfoNCE bound I_NCE(v1; v2), the generator minimises it (Eq. 6),
    min_g max_f  I_NCE^f(g(X)_1; g(X)_{2:3}),
optionally with the semi-supervised term (Eq. 7) that keeps the label in both views: classifiers
c1, c2 on the views, trained with g to predict y, ``min_{g,c} -L_NCE + lambda (CE(c1(v1), y) + CE(c2(v2), y))``.

The flow is pixel-wise (a 1x1 map, the same at every pixel) and invertible by construction: blocks
of an invertible 3x3 channel mixing (LU-parameterised, as Glow's 1x1 convolution, a random rotation
at init) and affine couplings (identity at init: channels 2-3 scaled and shifted by a per-pixel MLP
of channel 1, then the roles swap).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses


class ChannelMix(nn.Module):
    """Invertible 3x3 per-pixel channel mixing ``W = P L (U + diag(s))``, a random rotation at init
    (Glow's invertible 1x1 convolution)."""

    def __init__(self, channels: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=g))
        p, lower, upper = torch.linalg.lu(q)
        self.register_buffer("perm", p)
        self.lower = nn.Parameter(lower.tril(-1))
        self.upper = nn.Parameter(upper.triu(1))
        self.log_scale = nn.Parameter(upper.diagonal().abs().log())
        self.register_buffer("sign", upper.diagonal().sign())

    def weight(self) -> Tensor:
        eye = torch.eye(len(self.log_scale), device=self.lower.device)
        lower = self.lower.tril(-1) + eye
        upper = self.upper.triu(1) + torch.diag(self.sign * self.log_scale.exp())
        return self.perm @ lower @ upper

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("ij,bjhw->bihw", self.weight(), x)

    def inverse(self, y: Tensor) -> Tensor:
        return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.weight()), y)


class Coupling(nn.Module):
    """Affine coupling on channels: ``y_b = x_b * exp(s(x_a)) + t(x_a)``, ``y_a = x_a`` (per pixel),
    ``s`` bounded by tanh; ``a`` is channel 0 and ``b`` channels 1-2, or the reverse (``flip``)."""

    def __init__(self, hidden: int = 16, flip: bool = False) -> None:
        super().__init__()
        self.flip = flip
        n_a = 2 if flip else 1
        self.net = nn.Sequential(nn.Conv2d(n_a, hidden, 1), nn.Tanh(), nn.Conv2d(hidden, 2 * (3 - n_a), 1))
        nn.init.zeros_(self.net[-1].weight)               # identity at init
        nn.init.zeros_(self.net[-1].bias)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return (x[:, 1:], x[:, :1]) if self.flip else (x[:, :1], x[:, 1:])

    def _join(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([b, a], 1) if self.flip else torch.cat([a, b], 1)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self._split(x)
        s, t = self.net(a).chunk(2, dim=1)
        return self._join(a, b * torch.tanh(s).exp() + t)

    def inverse(self, y: Tensor) -> Tensor:
        a, b = self._split(y)
        s, t = self.net(a).chunk(2, dim=1)
        return self._join(a, (b - t) * (-torch.tanh(s)).exp())


class PixelFlow(nn.Module):
    """The view generator: ``blocks`` x (channel mixing, coupling 0 -> 12, coupling 12 -> 0), per pixel."""

    def __init__(self, blocks: int = 2, hidden: int = 16, seed: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(blocks):
            layers += [ChannelMix(3, seed + i), Coupling(hidden), Coupling(hidden, flip=True)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def inverse(self, y: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y

    def views(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``X -> (g(X)_1, g(X)_{2:3})``."""
        y = self.forward(x)
        return y[:, :1], y[:, 1:]


def critic_nce(encoders: nn.ModuleList, v1: Tensor, v2: Tensor, temperature: float = 0.1) -> Tensor:
    """The critic's symmetric in-batch InfoNCE loss ``L_NCE`` (I_NCE = log N - L_NCE)."""
    z1, z2 = encoders[0](v1), encoders[1](v2)
    return 0.5 * (losses.batch_infonce(z1, z2, temperature) + losses.batch_infonce(z2, z1, temperature))


def critic_step(flow: PixelFlow, encoders: nn.ModuleList, images: Tensor, critic_opt: torch.optim.Optimizer,
                temperature: float = 0.1) -> float:
    """The critic's half of Eq. 6: the encoders descend ``L_NCE`` on the generator's current views
    (the flow is not updated), raising the bound. Returns ``L_NCE`` before the update."""
    with torch.no_grad():
        v1, v2 = flow.views(images)
    loss = critic_nce(encoders, v1, v2, temperature)
    critic_opt.zero_grad()
    loss.backward()
    critic_opt.step()
    return float(loss.detach())


def generator_step(flow: PixelFlow, encoders: nn.ModuleList, images: Tensor, generator_opt: torch.optim.Optimizer,
                   labels: Tensor | None = None, classifiers: nn.ModuleList | None = None,
                   label_weight: float = 1.0, temperature: float = 0.1) -> tuple[float, float]:
    """The generator's half (with the classifiers, whose parameters ``generator_opt`` must hold too):
    descend ``-L_NCE + label_weight * (CE(c1(v1), y) + CE(c2(v2), y))``, lowering the bound while
    keeping the label (Eq. 7); the critic is not updated. Returns (``L_NCE``, CE) before the update."""
    v1, v2 = flow.views(images)
    nce = critic_nce(encoders, v1, v2, temperature)
    gen_loss = -nce
    ce = torch.zeros(())
    if labels is not None and classifiers is not None:
        ce = F.cross_entropy(classifiers[0](v1), labels) + F.cross_entropy(classifiers[1](v2), labels)
        gen_loss = gen_loss + label_weight * ce
    generator_opt.zero_grad()
    encoders.zero_grad(set_to_none=True)
    gen_loss.backward()
    generator_opt.step()
    encoders.zero_grad(set_to_none=True)  # the generator's backward also reached the encoders: drop it
    return float(nce.detach()), float(ce.detach())


def adversarial_step(flow: PixelFlow, encoders: nn.ModuleList, images: Tensor, critic_opt: torch.optim.Optimizer,
                     generator_opt: torch.optim.Optimizer, labels: Tensor | None = None,
                     classifiers: nn.ModuleList | None = None, label_weight: float = 1.0,
                     temperature: float = 0.1) -> dict[str, float]:
    """One round of Eq. 6 (and Eq. 7 with ``labels`` and ``classifiers``) on one batch: ``critic_step``
    then ``generator_step``. Returns the losses before each update."""
    critic = critic_step(flow, encoders, images, critic_opt, temperature)
    nce, ce = generator_step(flow, encoders, images, generator_opt, labels, classifiers, label_weight, temperature)
    return {"critic_nce": critic, "generator_nce": nce, "ce": ce}
