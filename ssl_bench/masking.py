"""Patch masks for masked-image methods, as batched tensor operations on the device.

Every function draws from an explicit ``torch.Generator`` (on the device of the result), one draw
per sample, so a mask depends only on the generator's state: ``step_generator(seed, step, rank)``
gives a method a generator per optimiser step derived from its run seed (no state to checkpoint;
ranks draw different masks). Patches are numbered row-major on an ``(H, W)`` grid, ``N = H * W``.

- :func:`random_masking`: MAE's uniform random masking by ratio (He et al. 2022, Sec. 3), the same
  number of visible patches in every sample;
- :func:`block_masking`: BEiT / iBOT blockwise masking (Bao et al. 2022, Alg. 1): rectangles of
  random area and log-uniform aspect ratio, each capped by what is left to mask, up to the target ratio; :func:`ibot_masks`
  draws a ratio per image and masks only some images (iBOT, DINOv2);
- :func:`multiblock_masks`: I-JEPA's context and target blocks (Assran et al. 2023, Sec. 3);
- :func:`gather_tokens` / :func:`restore_tokens`: drop the masked tokens before the encoder, and
  put the kept ones back at their positions among mask tokens (MAE's decoder input).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import ConfigError

_MASK63 = (1 << 63) - 1


def step_generator(seed: int, step: int, rank: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded from (run seed, optimiser step, rank): the masks of a step are
    a function of these three, so a resumed run draws the masks an uninterrupted one would have."""
    mixed = (int(seed) * 6364136223846793005 + int(step) * 1442695040888963407 + int(rank) * 2654435761 + 1) & _MASK63
    return torch.Generator(device=device).manual_seed(mixed)


@dataclass(frozen=True)
class TokenMask:
    """``keep`` (B, n) long: indices of the visible patches (the encoder's input, in this order);
    ``mask`` (B, N) bool: True where a patch is masked (hidden from the encoder)."""

    keep: Tensor
    mask: Tensor


def _rand(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    return torch.rand(shape, generator=generator, device=generator.device)


def random_masking(batch: int, num_patches: int, ratio: float, generator: torch.Generator) -> TokenMask:
    """MAE's random masking (He et al. 2022, Sec. 3 "Masking"; ratio 0.75, Fig. 5): each sample keeps
    ``int(N * (1 - ratio))`` patches chosen uniformly without replacement (argsort of uniform noise,
    as the official code), so every sample has exactly the same number of visible patches."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"random_masking: ratio must be in [0, 1), got {ratio}")
    n_keep = max(1, int(num_patches * (1.0 - ratio)))
    keep = _rand((batch, num_patches), generator).argsort(dim=1)[:, :n_keep]
    mask = torch.ones(batch, num_patches, dtype=torch.bool, device=keep.device)
    mask.scatter_(1, keep, False)
    return TokenMask(keep, mask)


def gather_tokens(tokens: Tensor, index: Tensor) -> Tensor:
    """Rows ``index`` (B, n) of ``tokens`` (B, N, D) -> (B, n, D)."""
    return torch.gather(tokens, 1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def restore_tokens(kept: Tensor, keep: Tensor, num_patches: int, fill: Tensor) -> Tensor:
    """(B, N, D) tokens: ``kept`` (B, n, D) back at positions ``keep`` (B, n), ``fill`` (D,) (a mask
    token) everywhere else; gradients flow to both."""
    b, _, d = kept.shape
    full = fill.reshape(1, 1, d).to(kept.dtype).expand(b, num_patches, d)
    return full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, d), kept)


def indices_of(mask: Tensor, count: int) -> Tensor:
    """The first ``count`` indices (ascending) where ``mask`` (B, N) is True, per row -> (B, count).
    Rows with fewer True entries are padded with the lowest False indices (callers pick
    ``count <= mask.sum(1).min()``)."""
    n = mask.shape[1]
    pos = torch.arange(n, device=mask.device).expand_as(mask)
    return torch.where(mask, pos, pos + n).argsort(dim=1)[:, :count]


# ----------------------------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class Blocks:
    """Rectangles on the patch grid, one per sample (each field (B,) long): rows ``top .. top+height-1``,
    columns ``left .. left+width-1``."""

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor

    def mask(self, grid: tuple[int, int]) -> Tensor:
        """(B, N) bool: True inside each sample's rectangle."""
        h, w = grid
        rows = torch.arange(h, device=self.top.device)
        cols = torch.arange(w, device=self.top.device)
        in_rows = (rows >= self.top[:, None]) & (rows < (self.top + self.height)[:, None])
        in_cols = (cols >= self.left[:, None]) & (cols < (self.left + self.width)[:, None])
        return (in_rows[:, :, None] & in_cols[:, None, :]).reshape(len(self.top), h * w)


def _sides(area: Tensor, aspect: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Height and width of rectangles of ``area`` patches and aspect ratio height / width, rounded and
    clipped to the grid."""
    height = torch.round(torch.sqrt(area * aspect)).long().clamp(1, grid[0])
    width = torch.round(torch.sqrt(area / aspect)).long().clamp(1, grid[1])
    return height, width


def sample_blocks(batch: int, grid: tuple[int, int], area: tuple[float, float] | tuple[Tensor, Tensor],
                  aspect: tuple[float, float],
                  generator: torch.Generator, log_aspect: bool = False, same_size: bool = False) -> Blocks:
    """One rectangle per sample: area (in patches) uniform in ``area`` (floats, or (batch,) tensors: one
    range per sample), aspect ratio (height / width)
    uniform in ``aspect`` (log-uniform with ``log_aspect``, as BEiT), position uniform over the places
    where it fits. ``same_size``: one size for the whole batch (I-JEPA's collator), positions per sample."""
    n_sizes = 1 if same_size else batch
    u = _rand((2, n_sizes), generator)
    a = area[0] + (area[1] - area[0]) * u[0]
    if log_aspect:
        lo, hi = math.log(aspect[0]), math.log(aspect[1])
        r = torch.exp(lo + (hi - lo) * u[1])
    else:
        r = aspect[0] + (aspect[1] - aspect[0]) * u[1]
    height, width = _sides(a, r, grid)
    height, width = height.expand(batch), width.expand(batch)
    pos = _rand((2, batch), generator)
    top = (pos[0] * (grid[0] - height + 1)).long()
    left = (pos[1] * (grid[1] - width + 1)).long()
    return Blocks(top, left, height, width)


def block_masking(batch: int, grid: tuple[int, int], ratio: float | Tensor, generator: torch.Generator,
                  min_block: int = 4, aspect: tuple[float, float] = (0.3, 1 / 0.3), tries: int = 10) -> Tensor:
    """BEiT's blockwise masking (Bao et al. 2022, Algorithm 1; iBOT and DINOv2 use it with ratios
    0.1-0.5). Each sample masks ``t = round(ratio * N)`` patches by adding rectangles one at a time:
    with ``r`` patches still to mask, a rectangle has area uniform in ``[min_block, r]`` and aspect
    ratio log-uniform in ``aspect``, must be smaller than the grid on both sides, and is kept only if
    it masks between 1 and ``r`` new patches; after ``tries`` rejected rectangles in a row the sample
    stops (the official generator's rule, so a few samples end a little short of ``t``; none exceed it).

    Batched: each round draws ``tries`` rectangles for every unfinished sample at once and keeps the
    first acceptable one, which has the law of drawing them one after another (the mask does not change
    between rejected tries). ``ratio``: one for the batch, or (B,) one per sample (iBOT); a sample whose
    target rounds to 0 is left unmasked. Returns (B, N) bool, True = masked."""
    height, width = grid
    device = generator.device
    target = torch.round(torch.as_tensor(ratio, dtype=torch.float32, device=device).expand(batch) * height * width).long()
    mask = torch.zeros(batch, height * width, dtype=torch.bool, device=device)
    count = torch.zeros(batch, dtype=torch.long, device=device)
    active = target > 0
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    while bool(active.any()):
        left_to_mask = (target - count)[:, None].float()                              # (B, 1)
        u = _rand((4, batch, tries), generator)
        area = min_block + (left_to_mask - min_block) * u[0]                          # uniform(min_block, r)
        r = torch.exp(log_lo + (log_hi - log_lo) * u[1])
        h = torch.round(torch.sqrt(area * r)).long()
        w = torch.round(torch.sqrt(area / r)).long()
        fits = (h < height) & (w < width)
        top = (u[2] * (height - h + 1).clamp(min=1)).long()
        left = (u[3] * (width - w + 1).clamp(min=1)).long()
        block = Blocks(top.flatten(), left.flatten(), h.flatten(), w.flatten()).mask(grid).reshape(batch, tries, -1)
        new = (block & ~mask[:, None]).sum(-1)                                        # (B, T)
        ok = fits & (new > 0) & (new <= left_to_mask.long()) & active[:, None]
        found = ok.any(1)
        first = ok.float().argmax(1)                                                  # the first acceptable try
        chosen = block[torch.arange(batch, device=device), first] & found[:, None]
        mask |= chosen
        count += torch.where(found, new.gather(1, first[:, None]).squeeze(1), torch.zeros_like(count))
        active = found & (count < target)
    return mask


def ibot_masks(batch: int, grid: tuple[int, int], generator: torch.Generator, ratio: tuple[float, float] = (0.1, 0.5),
               prob: float = 0.5, min_block: int = 4) -> Tensor:
    """iBOT's student masks (Zhou et al. 2022, Sec. 3.3 and Appendix; DINOv2 keeps them): each image is
    masked with probability ``prob`` (0.5); a masked image draws its ratio uniformly in ``ratio``
    ((0.1, 0.5)) and gets BEiT's block mask of that ratio (:func:`block_masking`), the others none.
    Returns (B, N) bool, True = masked."""
    if not 0.0 <= ratio[0] <= ratio[1] < 1.0 or not 0.0 <= prob <= 1.0:
        raise ValueError(f"ibot_masks: need 0 <= ratio[0] <= ratio[1] < 1 and prob in [0, 1], got {ratio}, {prob}")
    u = _rand((2, batch), generator)
    r = ratio[0] + (ratio[1] - ratio[0]) * u[1]
    return block_masking(batch, grid, torch.where(u[0] < prob, r, torch.zeros_like(r)), generator, min_block)


def multiblock_masks(batch: int, grid: tuple[int, int], generator: torch.Generator, num_targets: int = 4,
                     target_scale: tuple[float, float] = (0.15, 0.2), target_aspect: tuple[float, float] = (0.75, 1.5),
                     context_scale: tuple[float, float] = (0.85, 1.0), min_context: int = 4,
                     max_tries: int = 20) -> tuple[Tensor, Tensor]:
    """I-JEPA's masks (Assran et al. 2023, Sec. 3 and Appendix C: M = 4 target blocks of scale
    (0.15, 0.2) and aspect ratio (0.75, 1.5), one context block of scale (0.85, 1.0) and aspect 1,
    with the target patches removed from the context). Block sizes are drawn once per batch and
    positions per sample (the official collator), so every target block has the same number of
    patches; contexts are truncated to the smallest context of the batch (as the collator does).
    A sample whose context keeps fewer than ``min_context`` patches redraws its context position; a
    ConfigError (one line) if some sample still has none after ``max_tries`` draws.

    Returns ``context`` (B, n_ctx) patch indices (ascending) and ``targets`` (B, M, n_tgt)."""
    n = grid[0] * grid[1]
    targets = [sample_blocks(batch, grid, (target_scale[0] * n, target_scale[1] * n), target_aspect, generator,
                             same_size=True) for _ in range(num_targets)]
    target_masks = torch.stack([t.mask(grid) for t in targets], dim=1)             # (B, M, N)
    per_block = int(target_masks[0, 0].sum())
    target_idx = indices_of(target_masks.reshape(batch * num_targets, n), per_block).reshape(batch, num_targets, per_block)
    covered = target_masks.any(1)
    ctx_size = sample_blocks(1, grid, (context_scale[0] * n, context_scale[1] * n), (1.0, 1.0), generator)
    context = torch.zeros(batch, n, dtype=torch.bool, device=covered.device)
    todo = torch.ones(batch, dtype=torch.bool, device=covered.device)
    for _ in range(max_tries):
        pos = _rand((2, batch), generator)
        top = (pos[0] * (grid[0] - ctx_size.height + 1)).long()
        left = (pos[1] * (grid[1] - ctx_size.width + 1)).long()
        block = Blocks(top, left, ctx_size.height.expand(batch), ctx_size.width.expand(batch)).mask(grid) & ~covered
        context = torch.where(todo[:, None], block, context)
        todo = context.sum(1) < min_context
        if not bool(todo.any()):
            break
    else:
        raise ConfigError(f"I-JEPA masks: no context block keeps >= {min_context} patches outside the "
                          f"{num_targets} target blocks of the {grid[0]}x{grid[1]} patch grid after {max_tries} draws; "
                          "use fewer or smaller targets (num_targets, target_scale), a larger context_scale "
                          "or a finer grid (smaller patch_size)")
    return indices_of(context, int(context.sum(1).min())), target_idx
