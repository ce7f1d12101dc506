"""A cheap preview image from latents, no VAE: a fixed linear map from Wan2.1's 16 latent
channels to RGB (the factors ComfyUI uses for Wan2.1 previews), applied to the current estimate of
the clean latent. Approximate colours, latent resolution; costs microseconds."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# [16, 3] latent channel -> RGB, and the RGB bias (for normalised Wan2.1 latents).
WAN21_LATENT_RGB = (
    (-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747),
    (0.0372, 0.2344, 0.1420), (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665),
    (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975), (-0.0412, 0.0267, -0.1364),
    (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950),
    (0.1984, 0.0913, 0.1861),
)
WAN21_LATENT_RGB_BIAS = (-0.1835, -0.0868, -0.3360)
PREVIEW_SCALE = 4  # latent pixels -> preview pixels (nearest), 8x would be the video size


def latent_preview_png(latent: torch.Tensor, frame: int | None = None) -> bytes:
    """PNG bytes of one latent frame ([16, T, h, w]; the middle frame by default)."""
    import numpy as np
    import torch
    from PIL import Image

    t = latent.shape[1] // 2 if frame is None else frame
    lat = latent[:, t].float().cpu()  # [16, h, w]
    factors = torch.tensor(WAN21_LATENT_RGB)  # [16, 3]
    bias = torch.tensor(WAN21_LATENT_RGB_BIAS)
    rgb = torch.einsum("chw,cr->hwr", lat, factors) + bias  # roughly [-1, 1]
    img = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    pil = Image.fromarray(np.ascontiguousarray(img), "RGB")
    pil = pil.resize((pil.width * PREVIEW_SCALE, pil.height * PREVIEW_SCALE), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()
