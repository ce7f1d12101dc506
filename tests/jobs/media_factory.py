"""Small real input files for the jobs tests: PNGs, WAVs (whole, cut short, silent), a video with
no sound, an image whose header lies about its size."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np


def png(path: Path, width: int = 160, height: int = 96, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)).save(path)
    return path


def wav(path: Path, seconds: float, rate: int = 16000, freq: float = 220.0) -> Path:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, subtype="PCM_16")
    return path


def truncated_wav(path: Path, seconds: float = 4.0) -> Path:
    """A WAV whose header promises `seconds` but whose data stops halfway (a cut-off copy)."""
    wav(path, seconds)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def png_header_claiming(path: Path, width: int, height: int) -> Path:
    """Only a PNG header (no pixel data): opening it must not try to allocate width x height."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) +
                     chunk(b"IEND", b""))
    return path


def silent_video(path: Path, seconds: float = 1.0) -> Path:
    """An MP4 with a picture and no sound track."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi",
                    "-i", f"color=c=gray:s=64x64:d={seconds}", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(path)], check=True, timeout=60)
    return path


def ffprobe_text(path: Path) -> str:
    import imageio_ffmpeg

    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          capture_output=True, text=True, timeout=60).stderr


def first_frame(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(out, dtype=np.uint8)
