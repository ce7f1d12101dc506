"""Conditioning-image preprocessing: bucket choice, resize-and-centre-crop, normalisation and the
CLIP input, reproducing the official arithmetic pixel for pixel.

Details that matter for exactness: the resized size is `ceil(scale * size)` computed in float64
(it overshoots the target by one pixel for a few percent of source sizes), the image is resized
with PIL BILINEAR, the crop offsets use Python's round-half-to-even, and the CLIP input is a plain
bicubic squash to 224x224 (no antialiasing, no aspect-preserving crop, no clamping).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

# Bucket tables: key = height/width ratio as written officially, value = (height, width).
# Dict order matters: ties go to the first key.
BUCKETS_480: dict[str, tuple[int, int]] = {
    "0.26": (320, 1216), "0.38": (384, 1024), "0.50": (448, 896), "0.67": (512, 768),
    "0.82": (576, 704), "1.00": (640, 640), "1.22": (704, 576), "1.50": (768, 512),
    "1.86": (832, 448), "2.00": (896, 448), "2.50": (960, 384), "2.83": (1088, 384),
    "3.60": (1152, 320), "3.80": (1216, 320), "4.00": (1280, 320),
}
BUCKETS_720: dict[str, tuple[int, int]] = {
    "0.22": (448, 2048), "0.29": (512, 1792), "0.36": (576, 1600), "0.45": (640, 1408),
    "0.55": (704, 1280), "0.63": (768, 1216), "0.76": (832, 1088), "0.88": (896, 1024),
    "1.00": (960, 960), "1.14": (1024, 896), "1.31": (1088, 832), "1.50": (1152, 768),
    "1.58": (1216, 768), "1.82": (1280, 704), "1.91": (1344, 704), "2.20": (1408, 640),
    "2.30": (1472, 640), "2.67": (1536, 576), "2.89": (1664, 576), "3.62": (1856, 512),
    "3.75": (1920, 512),
}
BUCKET_TABLES = {"multitalk-480": BUCKETS_480, "multitalk-720": BUCKETS_720}

CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def bucket_table(resolution: str) -> dict[str, tuple[int, int]]:
    """The bucket table of "multitalk-480"/"multitalk-720" (also "480", "480p", "720", "720p")."""
    key = resolution if resolution.startswith("multitalk-") else f"multitalk-{resolution.rstrip('p')}"
    try:
        return BUCKET_TABLES[key]
    except KeyError:
        raise ValueError(f"unknown resolution {resolution!r}; expected one of {sorted(BUCKET_TABLES)}") from None


def choose_bucket(height: int, width: int, resolution: str = "multitalk-480") -> tuple[str, tuple[int, int]]:
    """(key, (target_h, target_w)) of the bucket whose ratio is closest to height/width."""
    table = bucket_table(resolution)
    ratio = height / width
    # min() keeps the first of equal keys, like the official stable sort.
    key = min(table, key=lambda k: abs(float(k) - ratio))
    return key, table[key]


def cover_size(src_h: int, src_w: int, target_h: int, target_w: int) -> tuple[int, int]:
    """(final_h, final_w): the size that covers the target, as ceil(scale*size) in float64."""
    scale = max(target_h / src_h, target_w / src_w)
    return math.ceil(scale * src_h), math.ceil(scale * src_w)


def crop_offsets(size_h: int, size_w: int, target_h: int, target_w: int) -> tuple[int, int]:
    """(top, left) of a centre crop; Python round() (half to even), like torchvision center_crop."""
    return int(round((size_h - target_h) / 2.0)), int(round((size_w - target_w) / 2.0))


def resize_and_centercrop_image(image: Image.Image, target_h: int, target_w: int) -> np.ndarray:
    """The conditioning image resized to cover (PIL BILINEAR) and centre-cropped: uint8 [th, tw, 3]."""
    from PIL import Image as PILImage

    final_h, final_w = cover_size(image.height, image.width, target_h, target_w)
    resized = np.asarray(image.convert("RGB").resize((final_w, final_h), resample=PILImage.BILINEAR))
    top, left = crop_offsets(final_h, final_w, target_h, target_w)
    return resized[top:top + target_h, left:left + target_w].copy()


def resize_and_centercrop_masks(masks: torch.Tensor, target_h: int, target_w: int) -> torch.Tensor:
    """Masks [N, H, W] resized to cover with PyTorch `nearest` and centre-cropped: [N, th, tw]."""
    import torch.nn.functional as F

    final_h, final_w = cover_size(masks.shape[-2], masks.shape[-1], target_h, target_w)
    resized = F.interpolate(masks[None].float(), size=(final_h, final_w), mode="nearest")[0]
    top, left = crop_offsets(final_h, final_w, target_h, target_w)
    return resized[:, top:top + target_h, left:left + target_w].contiguous()


def to_model_range(crop_u8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [1, 3, 1, H, W] in [-1, 1] ((x/255 - 0.5) * 2, as official)."""
    import torch

    pixels = torch.as_tensor(np.asarray(crop_u8)).permute(2, 0, 1)[None, :, None]
    return (pixels / 255 - 0.5) * 2


def clip_input(frames: torch.Tensor) -> torch.Tensor:
    """CLIP vision input [N, 3, 224, 224] from frames [1, 3, T, H, W] in [-1, 1].

    Pass the LAST conditioning frame (`frames[:, :, -1:]`): that is what the official pipeline
    gives CLIP (the reference image on the first clip, the last motion frame afterwards).
    """
    import torch
    import torch.nn.functional as F

    squashed = torch.cat([
        F.interpolate(video.transpose(0, 1), size=(CLIP_SIZE, CLIP_SIZE), mode="bicubic", align_corners=False)
        for video in frames
    ])
    unit = squashed * 0.5 + 0.5
    mean = torch.tensor(CLIP_MEAN, dtype=unit.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=unit.dtype).view(1, 3, 1, 1)
    return (unit - mean) / std


def prepare_image(image: Image.Image, resolution: str = "multitalk-480") -> tuple[torch.Tensor, tuple[int, int]]:
    """Bucket choice + resize/crop + normalisation: (cond_image [1,3,1,th,tw] in [-1,1], (th, tw))."""
    _, (target_h, target_w) = choose_bucket(image.height, image.width, resolution)
    crop = resize_and_centercrop_image(image, target_h, target_w)
    return to_model_range(crop), (target_h, target_w)
