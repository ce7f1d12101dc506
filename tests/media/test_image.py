from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.media.image import load_rgb, probe_image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG claiming a size, with only a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def test_probe_reads_size_and_format(examples):
    info = probe_image(examples / "single1.png")
    assert (info.width, info.height, info.format) == (2366, 1318, "PNG")


def test_huge_header_claim_is_refused_without_decoding(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_claiming(20000, 20000))
    started = time.perf_counter()
    with pytest.raises(MultiTalkError, match="too large"):
        probe_image(huge)
    with pytest.raises(MultiTalkError, match="too large"):
        load_rgb(huge)
    assert time.perf_counter() - started < 1.0


def test_text_file_named_png_is_not_a_picture(tmp_path):
    fake = tmp_path / "portrait.png"
    fake.write_text("hello, I am text\n")
    with pytest.raises(MultiTalkError, match="not a picture"):
        probe_image(fake)


def test_truncated_png_fails_on_load_with_a_sentence(tmp_path, examples):
    cut = tmp_path / "cut.png"
    cut.write_bytes((examples / "multi3.png").read_bytes()[:50_000])
    assert probe_image(cut).width == 2146  # the header is intact
    with pytest.raises(MultiTalkError, match="damaged or truncated"):
        load_rgb(cut)


def test_exif_rotation_is_applied_to_size_and_pixels(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif)
    info = probe_image(path)
    assert (info.width, info.height, info.format) == (20, 40, "JPEG")
    assert load_rgb(path).size == (20, 40)


def test_opaque_rgba_matches_plain_rgb_conversion(examples):
    ours = np.asarray(load_rgb(examples / "multi3.png"))
    official = np.asarray(Image.open(examples / "multi3.png").convert("RGB"))
    assert ours.shape == official.shape and np.array_equal(ours, official)


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red everywhere, but the left half fully transparent
    rgba[:, 2:, 3] = 255
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = np.asarray(load_rgb(path))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 3].tolist() == [255, 0, 0]


def png_with_late_exif(path, orientation: int) -> None:
    """A 40 x 20 PNG whose eXIf chunk comes after the pixel data (allowed, and what some tools
    write): only a chunk walk or a full decode finds it."""
    Image.new("RGB", (40, 20), (10, 200, 10)).save(path)
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = path.read_bytes()
    iend = body.rindex(b"IEND") - 4
    path.write_bytes(body[:iend] + png_chunk(b"eXIf", exif.tobytes()) + body[iend:])


def test_png_probe_never_decodes_pixels(tmp_path, examples, monkeypatch):
    from PIL import ImageFile

    plain = tmp_path / "plain.png"
    Image.open(examples / "multi3.png").save(plain)  # no EXIF at all
    late = tmp_path / "late.png"
    png_with_late_exif(late, 6)
    loads = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self) or real_load(self))
    assert (probe_image(plain).width, probe_image(plain).height) == (2146, 1324)
    assert (probe_image(late).width, probe_image(late).height) == (20, 40)
    assert loads == []


def test_png_exif_after_the_pixels_rotates_size_and_pixels_alike(tmp_path):
    path = tmp_path / "late.png"
    png_with_late_exif(path, 6)
    info = probe_image(path)
    assert (info.width, info.height, info.format) == (20, 40, "PNG")
    assert load_rgb(path).size == (20, 40)
