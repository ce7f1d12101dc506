"""Where each speaker is: the reference target masks (person 1, person 2, background).

Our boxes are (x0, y0, x1, y1) in source-image pixels. The official JSON `bbox` is
[top, left, bottom, right] (it is used as `mask[a:c, b:d]`, the first pair indexing rows, despite
its x/y names). `official_bbox_to_box` / `box_to_official_bbox` are the ONE place where the two
orders are converted; this module imports torch only inside functions, so the request spec can use
them without loading torch.

The masks are built in source pixels, resized to cover the bucket size with PyTorch `nearest` and
centre-cropped like the image, then resized (`nearest`) to the latent grid. Inside the model they
are resized once more to the patch grid. An empty person mask there divides by zero in the
reference-attention map and turns the whole official video black, so `reference_masks` rejects it
with a message instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from multitalk_desktop.errors import MultiTalkError

if TYPE_CHECKING:
    import torch

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels (x1, y1 exclusive)

DEFAULT_FACE_SCALE = 0.05  # margin of the default left/right halves
VAE_STRIDE = 8
PATCH_HW = (2, 2)
CLASS_NAMES = ("speaker 1", "speaker 2", "background")


def official_bbox_to_box(bbox: Sequence[float]) -> Box:
    """Official [top, left, bottom, right] -> our (x0, y0, x1, y1); int() truncation as official."""
    if len(bbox) != 4:
        raise ValueError(f"a bbox has 4 numbers [top, left, bottom, right], got {list(bbox)!r}")
    top, left, bottom, right = (int(v) for v in bbox)
    return (left, top, right, bottom)


def box_to_official_bbox(box: Sequence[float]) -> list[int]:
    """Our (x0, y0, x1, y1) -> official [top, left, bottom, right]."""
    if len(box) != 4:
        raise ValueError(f"a box has 4 numbers (x0, y0, x1, y1), got {list(box)!r}")
    x0, y0, x1, y1 = (int(v) for v in box)
    return [y0, x0, y1, x1]


def clamp_box(box: Sequence[float], width: int, height: int) -> Box | None:
    """The box limited to the image, or None when nothing of it is left (zero area or outside).

    The official slicing would wrap negative coordinates around; clamping keeps what the user drew.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    x0, x1 = max(0, min(x0, width)), max(0, min(x1, width))
    y0, y1 = max(0, min(y0, height)), max(0, min(y1, height))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1)


def source_masks(height: int, width: int, num_speakers: int, boxes: Sequence[Sequence[float]] | None = None,
                 face_scale: float = DEFAULT_FACE_SCALE) -> torch.Tensor:
    """float32 [3, H, W] masks (speaker 1, speaker 2, background) in source pixels.

    One speaker: three all-ones maps (the official layout; the model ignores them then).
    Two speakers without boxes: left and right halves with a `face_scale` margin.
    """
    import torch

    if num_speakers == 1:
        return torch.ones(3, height, width)
    if num_speakers != 2:
        raise MultiTalkError(f"MultiTalk animates one or two speakers, not {num_speakers}.")
    people = torch.zeros(2, height, width)
    if boxes is not None:
        if len(boxes) != 2:
            raise MultiTalkError(f"Two speakers need two boxes, got {len(boxes)}.")
        for k, box in enumerate(boxes):
            clamped = clamp_box(box, width, height)
            if clamped is None:
                raise MultiTalkError(
                    f"The box of {CLASS_NAMES[k]} {tuple(box)} has no area inside the {width}x{height} image.",
                    "Draw the box around that person's face and body.")
            x0, y0, x1, y1 = clamped
            people[k, y0:y1, x0:x1] = 1
    else:
        top, bottom = int(height * face_scale), int(height * (1 - face_scale))
        half = width // 2
        left0, left1 = int(half * face_scale), int(half * (1 - face_scale))
        people[0, top:bottom, left0:left1] = 1
        people[1, top:bottom, int(half * face_scale + half):int(half * (1 - face_scale) + half)] = 1
    background = (people.sum(0) == 0).float()
    return torch.cat([people, background[None]])


def latent_masks(masks: torch.Tensor, target_hw: tuple[int, int], vae_stride: int = VAE_STRIDE) -> torch.Tensor:
    """Source masks [3, H, W] -> 0/1 float32 [3, th/8, tw/8]: cover-resize and crop, then latent grid."""
    import torch.nn.functional as F

    from multitalk_desktop.engine.preprocess import resize_and_centercrop_masks

    target_h, target_w = target_hw
    cropped = resize_and_centercrop_masks(masks, target_h, target_w)
    latent = F.interpolate(cropped[None], size=(target_h // vae_stride, target_w // vae_stride), mode="nearest")[0]
    return (latent > 0).float()


def empty_classes(latent: torch.Tensor, patch_hw: tuple[int, int] = PATCH_HW) -> list[int]:
    """Indices of the mask classes with no token left on the model's patch grid."""
    import torch.nn.functional as F

    grid = (latent.shape[-2] // patch_hw[0], latent.shape[-1] // patch_hw[1])
    tokens = F.interpolate(latent[None], size=grid, mode="nearest")[0] > 0
    return [k for k in range(tokens.shape[0]) if not bool(tokens[k].any())]


def reference_masks(height: int, width: int, target_hw: tuple[int, int], num_speakers: int,
                    boxes: Sequence[Sequence[float]] | None = None, face_scale: float = DEFAULT_FACE_SCALE,
                    vae_stride: int = VAE_STRIDE, patch_hw: tuple[int, int] = PATCH_HW) -> torch.Tensor:
    """The model's `ref_target_masks` [3, th/8, tw/8] for a source image of height x width.

    Raises MultiTalkError when a speaker (or the background) has no area left after the crop:
    the official code would produce NaN there and a black video.
    """
    latent = latent_masks(source_masks(height, width, num_speakers, boxes, face_scale), target_hw, vae_stride)
    if num_speakers == 2:
        lost = empty_classes(latent, patch_hw)
        if lost:
            names = ", ".join(CLASS_NAMES[k] for k in lost)
            raise MultiTalkError(
                f"After cropping the image to the {target_hw[1]}x{target_hw[0]} video frame, nothing is left "
                f"of the region of {names}.",
                "Move the speaker boxes towards the centre of the image (or leave some background "
                "outside them), or crop the image yourself first.")
    return latent
