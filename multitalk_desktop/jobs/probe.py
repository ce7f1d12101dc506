"""Header-only looks at the request's files, for validation.

Thin wrappers over `multitalk_desktop.media` (probe_audio / probe_image), plus the one check
media does not make: a WAV cut short after its header. Validation never decodes a whole image or
voice just to know its size or length. Every failure is a `MultiTalkError` whose message a creator
understands.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from multitalk_desktop.errors import MultiTalkError


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class AudioHeader:
    duration_s: float
    sample_rate: int
    channels: int


def probe_image(path: Path) -> ImageHeader:
    """Size and format from the header only (nothing is decoded)."""
    from multitalk_desktop.media.image import probe_image as media_probe

    info = media_probe(path)
    return ImageHeader(int(info.width), int(info.height), str(info.format).upper())


def probe_audio(path: Path) -> AudioHeader:
    """Length, rate and channels of a voice file, or a video file's audio track."""
    from multitalk_desktop.media.audio import probe_audio as media_probe

    _check_wav_not_truncated(Path(path))
    info = media_probe(path)
    return AudioHeader(float(info.duration_s), int(info.sample_rate), int(info.channels))


def _check_wav_not_truncated(path: Path) -> None:
    """libsndfile quietly reads a cut-off WAV as a shorter one; a creator should hear that their
    file is damaged instead of getting a video that stops early. Files that do not start like a
    WAV are left to the general probe (an MP3 renamed .wav still works)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return
        endian = "<" if head[:4] == b"RIFF" else ">"
        offset = 12
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                raise MultiTalkError(f"{path.name} is cut short: the WAV file ends before its sound data.")
            cid, csize = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
            if cid == b"data":
                if offset + 8 + csize > size and csize != 0xFFFFFFFF:
                    have = size - offset - 8
                    raise MultiTalkError(
                        f"{path.name} is cut short (truncated): it declares {csize} bytes of sound "
                        f"but only {max(have, 0)} are there. Export or copy the file again."
                    )
                return
            offset += 8 + csize + (csize & 1)
            fh.seek(offset)
