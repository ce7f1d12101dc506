"""Draws the app icon (two speech bubbles, one with a voice waveform) into resources/icons/.

Run once when the design changes: `python installers/make_icons.py`. The PNGs are committed, so
builds need no drawing step. Drawn at 1024 px and scaled down for clean edges at every size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
MASTER = 1024


def gradient(size: int, top_left: tuple[int, int, int], bottom_right: tuple[int, int, int]) -> Image.Image:
    ys, xs = np.mgrid[0:size, 0:size]
    t = ((xs + ys) / (2 * (size - 1)))[..., None]
    rgb = (1 - t) * np.array(top_left) + t * np.array(bottom_right)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def bubble(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], tail_left: bool, fill) -> None:
    x0, y0, x1, y1 = box
    draw.rounded_rectangle(box, radius=(y1 - y0) // 3, fill=fill)
    w = x1 - x0
    if tail_left:
        tail = [(x0 + w * 0.18, y1 - 10), (x0 + w * 0.10, y1 + 110), (x0 + w * 0.42, y1 - 10)]
    else:
        tail = [(x1 - w * 0.42, y1 - 10), (x1 - w * 0.10, y1 + 110), (x1 - w * 0.18, y1 - 10)]
    draw.polygon(tail, fill=fill)


def master() -> Image.Image:
    size = MASTER
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rounded_rectangle((40, 40, size - 40, size - 40), radius=220, fill=255)
    icon = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    icon.paste(gradient(size, (91, 108, 255), (160, 84, 240)), mask=mask)
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    bubble(draw, (420, 190, 900, 520), tail_left=False, fill=(255, 138, 128, 235))  # second speaker
    bubble(draw, (124, 400, 660, 760), tail_left=True, fill=(255, 255, 255, 255))  # first speaker
    # A voice: waveform bars in the front bubble.
    heights = (90, 190, 260, 160, 230, 120, 70)
    cx0, cy = 190, 580
    for i, h in enumerate(heights):
        x = cx0 + i * 60
        draw.rounded_rectangle((x, cy - h // 2, x + 34, cy + h // 2), radius=17, fill=(91, 108, 255, 255))
    return Image.alpha_composite(icon, layer)


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    big = master()
    for s in SIZES:
        big.resize((s, s), Image.Resampling.LANCZOS).save(ICONS / f"multitalk-desktop-{s}.png", optimize=True)
    big.resize((256, 256), Image.Resampling.LANCZOS).save(
        ICONS / "multitalk-desktop.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])


if __name__ == "__main__":
    main()
