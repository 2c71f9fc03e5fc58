"""A small Vision Transformer (Dosovitskiy et al. 2021) sized for 28-32 pixel images.

Patch embedding by a strided convolution, a learned class token and position embedding,
``depth`` pre-norm blocks of ``nn.MultiheadAttention`` (batch_first) and a GELU MLP, and a
linear head on the final class token. Attention is PyTorch's own module on purpose: its
``in_proj_weight`` and ``out_proj`` are what :mod:`autosparse.core.layers` treats as prunable
attention weights, so pruning methods see a transformer exactly as they would in user code.

Defaults (dim 128, depth 6, 4 heads, 4x4 patches, MLP ratio 2: about 0.8M weights) keep it
trainable on a CPU; ``patch`` must divide the image size (28x28 -> 7x7 tokens, 32x32 -> 8x8,
8x8 -> 2x2). Initialisation (``init="vit"``) follows the ViT/DeiT recipe: truncated normal
(std 0.02) for linear, attention and embedding weights, LeCun-normal patch embedding, zero
biases, unit LayerNorm; ``init="torch"`` keeps PyTorch's defaults.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from autosparse.core.errors import ConfigError, UnknownNameError
from autosparse.models.registry import register_model

VIT_INITS = ("vit", "torch")


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch embedding, class token + position embedding, encoder ``blocks``, ``norm``, ``head``."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        patch: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        tokens = (h // patch) * (w // patch)
        self.patch_embed = nn.Conv2d(c, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.blocks = nn.Sequential(*(EncoderBlock(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        # Embeddings have no PyTorch default; zeros would make every token position identical.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])

    def reset_vit(self) -> None:
        """ViT/DeiT initialisation (see the module docstring)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.MultiheadAttention):
                nn.init.trunc_normal_(m.in_proj_weight, std=0.02)
                nn.init.zeros_(m.in_proj_bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        pe = self.patch_embed
        fan_in = pe.in_channels * math.prod(pe.kernel_size)
        nn.init.trunc_normal_(pe.weight, std=math.sqrt(1.0 / fan_in))
        if pe.bias is not None:
            nn.init.zeros_(pe.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)


@register_model("vit_tiny", inputs=("image",))
def vit_tiny(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    depth: int = 6,
    dim: int = 128,
    heads: int = 4,
    patch: int = 4,
    mlp_ratio: float = 2.0,
    init: str = "vit",
) -> nn.Module:
    """Small ViT: conv patch embedding, class token, nn.MultiheadAttention blocks, linear head."""
    h, w = input_shape[1:]
    if min(depth, dim, heads, patch) < 1 or not mlp_ratio > 0:
        raise ConfigError(
            f"vit_tiny options depth={depth}, dim={dim}, heads={heads}, patch={patch} must be >= 1 and "
            f"mlp_ratio={mlp_ratio} > 0"
        )
    if dim % heads:
        raise ConfigError(f"vit_tiny option dim={dim} must be divisible by heads={heads}; e.g. dim={heads * 32}")
    if h % patch or w % patch:
        divisors = [p for p in range(1, min(h, w) + 1) if h % p == 0 and w % p == 0]
        raise ConfigError(
            f"vit_tiny cannot cut input shape {input_shape} into {patch}x{patch} patches; use patch= one of {divisors}"
        )
    if init not in VIT_INITS:
        raise UnknownNameError("vit init scheme", init, VIT_INITS)
    model = ViT(input_shape, num_classes, patch=patch, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio)
    if init == "vit":
        model.reset_vit()
    return model
