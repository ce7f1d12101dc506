"""L-RoPE: the label rotary embedding that binds each voice to one person (two speakers only).

Video tokens get a 1-D position from the reference-attention map (which person they look like);
the audio tokens of voice 1 / voice 2 get the centre of that person's label range, so attention
favours matching pairs. Label ranges [0, 4] and [20, 24], background 12 (official defaults).
"""

from __future__ import annotations

import torch

from multitalk_desktop.engine.lean_ops import angle_rope_table, lean_enabled, rotate_pairs


def label_ranges(class_range: int = 24, class_interval: int = 4) -> tuple[tuple[int, int], tuple[int, int], int]:
    """(person-1 range, person-2 range, background label) as the official attention derives them."""
    return (0, class_interval), (class_range - class_interval, class_range), class_range // 2


def speaker_query_positions(
    ref_map: torch.Tensor, class_range: int = 24, class_interval: int = 4, eps: float = 1e-8
) -> torch.Tensor:
    """ref_map [B, 3, L] (person 1, person 2, background) -> label positions [B, L] (float32).

    Each person's map is min-max scaled over ALL tokens into its label range; every token takes the
    value of the class with the largest raw map value (the background maps to its fixed label)."""
    (lo1, hi1), (lo2, hi2), background = label_ranges(class_range, class_interval)
    ref_map = ref_map.float()
    scaled = []
    for row, (lo, hi) in ((ref_map[:, 0], (lo1, hi1)), (ref_map[:, 1], (lo2, hi2))):
        low = row.amin(dim=-1, keepdim=True)
        high = row.amax(dim=-1, keepdim=True)
        scaled.append((row - low) / (high - low + eps) * (hi - lo) + lo)
    scaled.append(torch.full_like(scaled[0], float(background)))
    candidates = torch.stack(scaled, dim=1)  # [B, 3, L]
    winner = ref_map.argmax(dim=1, keepdim=True)  # [B, 1, L]
    return candidates.gather(1, winner).squeeze(1)


def speaker_key_positions(num_tokens: int, class_range: int = 24, class_interval: int = 4) -> torch.Tensor:
    """Positions [num_tokens] of the audio tokens: the first half (voice 1) at the centre of range 1,
    the rest (voice 2) at the centre of range 2."""
    (lo1, hi1), (lo2, hi2), _ = label_ranges(class_range, class_interval)
    positions = torch.full((num_tokens,), (lo2 + hi2) / 2, dtype=torch.float32)
    positions[: num_tokens // 2] = (lo1 + hi1) / 2
    return positions


def rope_1d_angles(positions: torch.Tensor, head_dim: int, device: torch.device, base: float = 10000.0) -> torch.Tensor:
    """positions [..., N] -> angles [..., N, D/2] (float32), the official 1-D frequencies."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=device)[: head_dim // 2] / head_dim
    inv_freq = 1.0 / torch.pow(torch.tensor(base, dtype=torch.float32, device=device), exponents)
    return positions.to(device=device, dtype=torch.float32)[..., None] * inv_freq


def apply_rope_1d(
    x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Rotate x [..., N, H, D] by positions [..., N] (broadcastable) over the full head dim, pairing
    interleaved dims (2i, 2i+1) as the official RotaryPositionalEmbedding1D does. float32 math.
    `out` may be x itself (the caller owns it)."""
    angles = rope_1d_angles(positions, x.shape[-1], x.device, base)
    if lean_enabled():
        return rotate_pairs(x, angle_rope_table(angles), out=out)
    rotated = apply_rope_1d_reference(x, angles)
    if out is None:
        return rotated
    return out.copy_(rotated)


def apply_rope_1d_reference(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """The straightforward form (full-size float32 temporaries): x*cos + rotate_half(x)*sin."""
    angles = angles.repeat_interleave(2, dim=-1)[..., None, :]  # [..., N, 1, D]
    cos, sin = angles.cos(), angles.sin()
    xf = x.float()
    pairs = xf.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return (xf * cos + rotated * sin).type_as(x)
