"""Helpers that make real media for the media tests (frames, tones, ffmpeg-made files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from multitalk_desktop.media.ffmpeg import run_ffmpeg

FPS = 25
SR = 16000


def gradient_frames(count: int, height: int = 96, width: int = 128) -> np.ndarray:
    """Smooth frames whose brightness rises with the frame index (easy to recognise after H.264)."""
    ys, xs = np.mgrid[0:height, 0:width]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        level = int(20 + 200 * i / max(count - 1, 1))
        frames[i, ..., 0] = level
        frames[i, ..., 1] = (xs * 255 // max(width - 1, 1)).astype(np.uint8)
        frames[i, ..., 2] = (ys * 255 // max(height - 1, 1)).astype(np.uint8)
    return frames


def sine(seconds: float, freq: float = 220.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)




def ffmpeg_make(out: Path, *args: str) -> Path:
    run_ffmpeg([*args, str(out)])
    return out
