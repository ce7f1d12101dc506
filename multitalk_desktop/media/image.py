"""Portrait images: checking them from the header alone, and loading them as RGB.

`probe_image` never decodes pixels: a 20000 x 20000 claim or a text file named .png is refused
in milliseconds, before anything allocates hundreds of megabytes.
"""

from __future__ import annotations

import os
import struct
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
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def _orientation(img: Image.Image, path: str | os.PathLike) -> int:
    try:
        if img.format != "PNG":
            # JPEG, WebP, TIFF...: the EXIF block was read with the header.
            return int(img.getexif().get(_EXIF_ORIENTATION, 1))
        # PIL's PNG getexif() decodes every pixel to look for an eXIf chunk after the image
        # data. The base method reads only what the header pass found (an eXIf chunk before the
        # pixels, EXIF in a text chunk, XMP); a late eXIf chunk is found by hopping over chunks.
        orientation = Image.Image.getexif(img).get(_EXIF_ORIENTATION)
        if orientation is None and "exif" not in img.info:
            late = _png_exif_chunk(path)
            if late is not None:
                exif = Image.Exif()
                exif.load(b"Exif\x00\x00" + late)
                orientation = exif.get(_EXIF_ORIENTATION)
        return int(orientation or 1)
    except Exception:  # a broken EXIF block must not make a good picture unusable
        return 1


def _png_exif_chunk(path: str | os.PathLike) -> bytes | None:
    """The data of a PNG's eXIf chunk, read by seeking from chunk header to chunk header (the
    compressed pixels are skipped, never read); None when there is none or the file ends first."""
    with open(path, "rb") as fh:
        if fh.read(8) != _PNG_SIGNATURE:
            return None
        while len(head := fh.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if kind == b"eXIf":
                data = fh.read(length)
                return data if len(data) == length else None
            if kind == b"IEND":
                return None
            fh.seek(length + 4, os.SEEK_CUR)  # the chunk's data and its CRC
    return None


def probe_image(path: str | os.PathLike) -> ImageInfo:
    """Size and format from the header only (no pixel decode)."""
    img = _open(path)
    try:
        w, h = img.size
        if _orientation(img, path) in _SWAPS_AXES:
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
