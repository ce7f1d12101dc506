from __future__ import annotations

import numpy as np
import soundfile as sf

from multitalk_desktop.media.waveform import cached_peaks, peaks


def naive_peaks(samples: np.ndarray, buckets: int) -> np.ndarray:
    n = len(samples)
    out = []
    for i in range(buckets):
        lo, hi = i * n // buckets, (i + 1) * n // buckets
        chunk = samples[lo : max(hi, lo + 1)]
        out.append((chunk.min(), chunk.max()))
    return np.array(out, dtype=np.float32)


def test_peaks_match_a_plain_loop():
    samples = np.random.default_rng(1).standard_normal(10_007).astype(np.float32)
    for buckets in (1, 7, 100, 999):
        assert np.array_equal(peaks(samples, buckets), naive_peaks(samples, buckets))


def test_fewer_samples_than_buckets_repeat_the_nearest_sample():
    result = peaks(np.array([0.1, -0.2, 0.3], np.float32), 6)
    assert result.shape == (6, 2)
    assert np.allclose(result[:, 0], [0.1, 0.1, -0.2, -0.2, 0.3, 0.3])
    assert np.array_equal(result[:, 0], result[:, 1])


def test_empty_samples_give_flat_peaks():
    assert not peaks(np.zeros(0, np.float32), 4).any()


def test_cached_peaks_are_reused_and_follow_the_file_content(tmp_path):
    wav = tmp_path / "voice.wav"
    sf.write(wav, np.linspace(-0.5, 0.5, 1600, dtype=np.float32), 16000, subtype="FLOAT")
    cache = tmp_path / "cache"
    first = cached_peaks(wav, 8, cache)
    assert first[0, 0] == -0.5 and first[-1, 1] == 0.5
    files = list(cache.iterdir())
    assert len(files) == 1
    # Doctor the cache file: a second call must return it rather than decode again.
    np.save(files[0], np.full((8, 2), 0.25, np.float32))
    assert np.all(cached_peaks(wav, 8, cache) == 0.25)
    sf.write(wav, np.zeros(1600, np.float32), 16000, subtype="FLOAT")  # new content, new key
    assert not cached_peaks(wav, 8, cache).any()
    assert len(list(cache.iterdir())) == 2
