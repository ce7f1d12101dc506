"""Waveform overviews: per-bucket (min, max) of the samples, for drawing a lane per speaker.

Peaks are cheap to compute but the decode is not, so `cached_peaks` keeps them on disk keyed by
the file's content hash (a file replaced under the same name gets new peaks).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np

from multitalk_desktop.media.atomic import temp_sibling
from multitalk_desktop.media.audio import decode_audio

CACHE_VERSION = 1  # bump when the peaks' meaning changes, so old cache files are ignored


def peaks(samples: np.ndarray, buckets: int) -> np.ndarray:
    """[buckets, 2] float32 of (min, max) over equal slices of `samples`.

    Multi-channel input [n, channels] takes the extremes over all channels. With fewer samples
    than buckets, each bucket holds the nearest sample (min == max).
    """
    if buckets <= 0:
        raise ValueError(f"buckets must be positive; got {buckets}")
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 2:
        lows, highs = data.min(axis=1), data.max(axis=1)
    else:
        lows = highs = data.reshape(-1)
    n = lows.shape[0]
    out = np.zeros((buckets, 2), dtype=np.float32)
    if n == 0:
        return out
    starts = (np.arange(buckets, dtype=np.int64) * n) // buckets
    out[:, 0] = np.minimum.reduceat(lows, starts)
    out[:, 1] = np.maximum.reduceat(highs, starts)
    return out


def file_hash(path: str | os.PathLike) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_peaks(path: str | os.PathLike, buckets: int, cache_dir: str | os.PathLike) -> np.ndarray:
    """peaks() of the decoded file, read from or saved to `cache_dir`."""
    cache = Path(cache_dir)
    key = f"peaks-v{CACHE_VERSION}-{file_hash(path)}-{buckets}.npy"
    target = cache / key
    if target.is_file():
        with contextlib.suppress(OSError, ValueError):
            cached = np.load(target, allow_pickle=False)
            if cached.shape == (buckets, 2):
                return cached
    samples, _ = decode_audio(path)
    result = peaks(samples, buckets)
    with contextlib.suppress(OSError):  # a read-only cache folder only costs speed
        cache.mkdir(parents=True, exist_ok=True)
        tmp = temp_sibling(target)
        with open(tmp, "wb") as f:
            np.save(f, result, allow_pickle=False)
        os.replace(tmp, target)
    return result
