"""Header-only looks at the request's files, for validation.

Uses `multitalk_desktop.media` (probe_audio / probe_image) when that layer provides them, and a
small private fallback otherwise, so validation never decodes a whole image or voice just to know
its size or length. Every failure is a `MultiTalkError` whose message a creator understands.
"""

from __future__ import annotations

import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from multitalk_desktop.errors import MultiTalkError

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
SOUNDFILE_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")


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
    """Size and format from the header only (PIL opens lazily; nothing is decoded)."""
    try:
        from multitalk_desktop.media.image import probe_image as media_probe
    except ImportError:
        media_probe = None
    if media_probe is not None:
        info = media_probe(path)
        return ImageHeader(int(info.width), int(info.height), str(info.format).upper())
    from PIL import Image, UnidentifiedImageError

    # The bomb check inside Image.open would refuse huge headers with its own wording; our
    # validation reports sizes itself, so read the header without that guard.
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            return ImageHeader(int(im.width), int(im.height), str(im.format or "").upper())
    except UnidentifiedImageError as err:
        raise MultiTalkError(f"{path.name} is not an image this app can read.") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise MultiTalkError(f"{path.name} is a damaged image file ({err}).") from err
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def probe_audio(path: Path) -> AudioHeader:
    """Length, rate and channels of a voice file, or a video file's audio track."""
    _check_wav_not_truncated(path)
    try:
        from multitalk_desktop.media.audio import probe_audio as media_probe
    except ImportError:
        media_probe = None
    if media_probe is not None:
        info = media_probe(path)
        return AudioHeader(float(info.duration_s), int(info.sample_rate), int(info.channels))
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        import soundfile

        try:
            info = soundfile.info(str(path))
        except Exception as err:  # libsndfile raises its own RuntimeError subclasses
            raise MultiTalkError(f"{path.name} is not a sound file this app can read.") from err
        return AudioHeader(info.frames / float(info.samplerate), int(info.samplerate), int(info.channels))
    return _probe_with_ffmpeg(path)


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


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_AUDIO_STREAM = re.compile(r"Stream #\S+.*?Audio:.*?(\d+) Hz(?:,\s*([^,]+))?")


def _probe_with_ffmpeg(path: Path) -> AudioHeader:
    """MP3/M4A/video: ask the bundled ffmpeg (no system ffmpeg can be assumed)."""
    import imageio_ffmpeg

    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    text = proc.stderr
    if "Invalid data found" in text or "could not find codec" in text.lower():
        raise MultiTalkError(f"{path.name} is not an audio or video file this app can read.")
    stream = _AUDIO_STREAM.search(text)
    if stream is None:
        if "Stream #" in text:
            raise MultiTalkError(f"{path.name} has no audio track.")
        raise MultiTalkError(f"{path.name} is not an audio or video file this app can read.")
    duration = _DURATION.search(text)
    if duration is None:
        raise MultiTalkError(f"The length of {path.name} cannot be read; the file may be damaged.")
    h, m, s = duration.groups()
    layout = (stream.group(2) or "").strip()
    channels = {"mono": 1, "stereo": 2}.get(layout, 2)
    return AudioHeader(int(h) * 3600 + int(m) * 60 + float(s), int(stream.group(1)), channels)
