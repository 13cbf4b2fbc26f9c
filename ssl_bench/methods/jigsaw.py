"""The JigSaw branch of InfoMin (Tian et al., 2020, Sec. 5, following PIRL, Misra & van der Maaten,
2020): a view is cut into a ``grid x grid`` puzzle of patches (each a random ``patch x patch`` crop
inside its cell, as the official ``JigsawCrop``: 64 px patches in 85 px cells of a 255 px image),
every patch is encoded by the same backbone, and a head maps the patch features (MLP per patch,
in a random order per image, concatenated, one Linear) to one embedding of the image. The official
head shuffles the patch features; here the patches are cut in the shuffled order, which is the same
since the per-patch MLP treats every patch alike (its code notes the shuffle could be data-side).

Everything runs on the views' device, on batches; the random offsets and orders are drawn on the CPU
for the whole global batch from a generator seeded per step, and each rank takes its slice, so a
run gives the same puzzles on any number of processes and after a resume.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import distributed


def default_patch_size(image_size: int, grid: int = 3) -> int:
    """The official ratio of patch to cell (64 / 85) at this image size: 8 px patches at 32 px."""
    return max(1, round((image_size // grid) * 64 / 85))


def sample_puzzles(batch_size: int, image_size: int, grid: int, patch: int,
                   generator: torch.Generator) -> dict[str, Tensor]:
    """Per-sample puzzle parameters for this rank's ``batch_size`` images, drawn for the global batch
    (``batch_size x world size``) and sliced by rank: ``top, left`` ``(B, grid^2)``, the corners of
    the patches in a random order per image (``order``, ``(B, grid^2)``: the row-major cell of each;
    the grid of ``grid x (size // grid)`` pixels is centred in the view)."""
    cell = image_size // grid
    if patch > cell:
        raise ValueError(f"jigsaw patch {patch} px does not fit a {cell} px cell of a {image_size} px view")
    world, rank = distributed.world_size(), distributed.rank()
    n, k = batch_size * world, grid * grid
    jitter = torch.randint(cell - patch + 1, (n, k, 2), generator=generator)
    order = torch.rand(n, k, generator=generator).argsort(dim=1)
    origin = (image_size - grid * cell) // 2
    cells = torch.arange(k)
    top = (origin + (cells // grid) * cell + jitter[..., 0]).gather(1, order)
    left = (origin + (cells % grid) * cell + jitter[..., 1]).gather(1, order)
    mine = slice(rank * batch_size, (rank + 1) * batch_size)
    return {"top": top[mine], "left": left[mine], "order": order[mine]}


def cut_patches(images: Tensor, top: Tensor, left: Tensor, patch: int) -> Tensor:
    """``(B, C, H, W)`` views and ``(B, K)`` patch corners -> ``(B * K, C, patch, patch)`` patches,
    image-major (the K patches of image 0 first), one gather for the whole batch."""
    b, c, h, w = images.shape
    k = top.shape[1]
    dev = images.device
    steps = torch.arange(patch, device=dev)
    rows = top.to(dev).unsqueeze(2) + steps                            # (B, K, p)
    cols = left.to(dev).unsqueeze(2) + steps
    index = (rows.unsqueeze(3) * w + cols.unsqueeze(2)).view(b, 1, k * patch * patch)
    out = images.reshape(b, c, h * w).gather(2, index.expand(b, c, -1))
    return out.view(b, c, k, patch, patch).transpose(1, 2).reshape(b * k, c, patch, patch)


class JigsawHead(nn.Module):
    """PIRL's / InfoMin's jigsaw head: ``fc1`` (Linear-ReLU-Linear, per patch) -> the patches of each
    image concatenated in the order they were cut -> ``fc2`` (Linear). No BatchNorm: the output of
    an image depends on its own patches only."""

    def __init__(self, in_dim: int, out_dim: int, num_patches: int = 9) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out_dim))
        self.fc2 = nn.Linear(out_dim * num_patches, out_dim)
        self.num_patches = num_patches

    def forward(self, patch_feats: Tensor) -> Tensor:
        """``(B * K, in_dim)`` patch features (image-major) -> ``(B, out_dim)``."""
        return self.fc2(self.fc1(patch_feats).view(-1, self.num_patches * self.fc2.out_features))
