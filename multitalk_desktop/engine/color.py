"""Colour correction between clips: per-frame Lab mean/std transfer to the reference image.

Long videos drift in colour from clip to clip; the official pipeline pulls every decoded clip back
towards the reference image (before the next clip takes its motion frames) and blends the result
with the frame by `strength`. scikit-image's rgb2lab/lab2rgb do the conversions, as officially.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def _transfer_lab_stats(frame_lab: np.ndarray, ref_lab: np.ndarray) -> np.ndarray:
    """Each Lab channel standardised, then rescaled to the reference's mean/std."""
    out = frame_lab.copy()
    for c in range(3):
        src_mean, src_std = frame_lab[:, :, c].mean(), frame_lab[:, :, c].std()
        ref_mean, ref_std = ref_lab[:, :, c].mean(), ref_lab[:, :, c].std()
        if src_std == 0:
            # A flat channel cannot be rescaled: it takes the reference mean.
            out[:, :, c] = ref_mean
        else:
            out[:, :, c] = (out[:, :, c] - src_mean) * (ref_std / src_std) + ref_mean
    return out


def match_and_blend_colors(source: torch.Tensor, reference: torch.Tensor, strength: float) -> torch.Tensor:
    """Frames [1, 3, T, H, W] in [-1, 1] colour-matched to `reference` [1, 3, 1, H, W].

    Returns (1 - strength) * frames + strength * matched, in [-1, 1], same dtype/device. Input
    values outside [-1, 1] are clipped first (also in the blended part, as officially).
    """
    import torch
    from skimage import color

    if strength == 0.0:
        return source
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour correction strength must be between 0 and 1, got {strength}")

    frames01 = np.clip((source[0].permute(1, 2, 3, 0).cpu().numpy() + 1.0) / 2.0, 0.0, 1.0)  # T,H,W,C
    ref01 = np.clip((reference[0, :, 0].permute(1, 2, 0).cpu().numpy() + 1.0) / 2.0, 0.0, 1.0)  # H,W,C
    ref_lab = color.rgb2lab(ref01)

    blended = []
    for frame in frames01:
        matched = color.lab2rgb(_transfer_lab_stats(color.rgb2lab(frame), ref_lab))
        matched = np.clip(matched, 0.0, 1.0)
        blended.append((1 - strength) * frame + strength * matched)
    out = np.stack(blended) * 2.0 - 1.0
    return torch.from_numpy(out).permute(3, 0, 1, 2)[None].contiguous().to(device=source.device, dtype=source.dtype)
