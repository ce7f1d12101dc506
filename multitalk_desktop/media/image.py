"""Portrait images: checking them from the header alone, and loading them as RGB.

`probe_image` never decodes pixels: a 20000 x 20000 claim or a text file named .png is refused
in milliseconds, before anything allocates hundreds of megabytes.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.media.streams import check_readable_file

# Larger than any camera or generated portrait we expect; the model works at 480p/720p anyway.
MAX_SIDE = 16384
MAX_PIXELS = 120_000_000
SUPPORTED_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "BMP", "TIFF", "GIF"}
_EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees


@dataclass(frozen=True)
class ImageInfo:
    width: int  # as displayed, i.e. after the EXIF orientation is applied
    height: int
    format: str  # PIL's name: PNG, JPEG, WEBP, ...


def _open(path: str | os.PathLike) -> Image.Image:
    p = check_readable_file(path, "picture")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(p)
    except Image.DecompressionBombError as err:
        raise MultiTalkError(
            f"{p.name} is far too large a picture to use ({err}).",
            f"Use a picture under {MAX_SIDE} pixels on each side.",
        ) from err
    except UnidentifiedImageError as err:
        raise MultiTalkError(
            f"{p.name} is not a picture MultiTalk Desktop can read.",
            "Use a PNG, JPEG or WEBP image.",
        ) from err
    except OSError as err:
        raise MultiTalkError(f"{p.name} could not be read: {err}.") from err
    if img.format not in SUPPORTED_FORMATS:
        fmt = img.format
        img.close()
        raise MultiTalkError(f"{p.name} is a {fmt} picture, which is not supported.", "Use a PNG, JPEG or WEBP image.")
    w, h = img.size
    if w <= 0 or h <= 0:
        img.close()
        raise MultiTalkError(f"{p.name} says it is {w} x {h} pixels: it is damaged.")
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        img.close()
        raise MultiTalkError(
            f"{p.name} is {w} x {h} pixels, too large to use.",
            f"Scale it down to at most {MAX_SIDE} pixels on each side (a 2000-pixel portrait is plenty).",
        )
    return img


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not make a good picture unusable
        return 1


def probe_image(path: str | os.PathLike) -> ImageInfo:
    """Size and format from the header only (no pixel decode)."""
    img = _open(path)
    try:
        w, h = img.size
        if _orientation(img) in _SWAPS_AXES:
            w, h = h, w
        return ImageInfo(w, h, str(img.format))
    finally:
        img.close()


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """The picture as displayed (EXIF orientation applied) in RGB.

    Transparency: fully opaque alpha is dropped, exactly like the official `.convert("RGB")`;
    real transparency is composited onto white, so a cut-out portrait doesn't get the arbitrary
    colours stored under its transparent pixels.
    """
    img = _open(path)
    name = os.path.basename(os.fspath(path))
    try:
        img.load()
        oriented = ImageOps.exif_transpose(img) or img
        return _to_rgb(oriented)
    except (OSError, SyntaxError, ValueError) as err:
        raise MultiTalkError(
            f"{name} could not be read: it is damaged or truncated ({err}).",
            "Re-export the picture, or use another copy of it.",
        ) from err
    finally:
        img.close()


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = rgba.getchannel("A")
        if alpha.getextrema()[0] < 255:
            background = Image.new("RGB", rgba.size, (255, 255, 255))
            background.paste(rgba, mask=alpha)
            return background
        return rgba.convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img.copy()
