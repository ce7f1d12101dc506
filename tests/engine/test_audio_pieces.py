"""Audio preparation: fixtures of the official code, plus the cases it crashes on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multitalk_desktop.engine import audio
from multitalk_desktop.errors import MultiTalkError
from tests.engine.fixture_cases import cases_of, check_piece_case


@pytest.mark.parametrize("stem", cases_of("audio_prep"))
def test_audio_prep_matches_official_fixture(stem):
    result = check_piece_case(stem, "audio_prep")
    assert result.ok, result.line()


def _voice(seconds: float, freq: float = 220.0, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_para_pads_the_shorter_voice_instead_of_crashing():
    long, short = _voice(1.0), _voice(0.5, 330.0)
    track1, track2, mix = audio.prepare_two(long, short, "para")
    assert len(track1) == len(track2) == len(mix) == len(long)
    assert np.all(track2[len(short):] == 0)
    assert np.allclose(mix, track1 + track2)


def test_add_lays_voices_end_to_end():
    a, b = _voice(0.6), _voice(0.8, 330.0)
    track1, track2, mix = audio.prepare_two(a, b, "add")
    assert len(mix) == len(a) + len(b)
    assert np.all(track1[len(a):] == 0) and np.all(track2[:len(a)] == 0)
    assert np.any(track1[:len(a)] != 0) and np.any(track2[len(a):] != 0)


def test_missing_voice_is_silence_of_the_other_length():
    b = _voice(0.7)
    track1, track2, _ = audio.prepare_two(None, b, "para")
    assert len(track1) == len(b) and not track1.any()


def test_normalised_voice_reaches_minus_23_lufs():
    import pyloudnorm

    out = audio.prepare_single(_voice(2.0, level=0.5))
    assert pyloudnorm.Meter(audio.SAMPLE_RATE).integrated_loudness(out) == pytest.approx(-23.0, abs=0.01)


def test_digital_silence_is_returned_unchanged():
    silence = np.zeros(audio.SAMPLE_RATE, dtype=np.float32)
    assert audio.loudness_norm(silence) is silence


def test_clip_shorter_than_loudness_block_raises_a_plain_error():
    with pytest.raises(MultiTalkError, match="too short"):
        audio.loudness_norm(_voice(0.3))


def test_unknown_audio_type_is_rejected():
    with pytest.raises(MultiTalkError):
        audio.combine_two(_voice(0.5), _voice(0.5), "mix")


def test_frame_windows_clamp_at_both_ends_with_sizes_from_arguments():
    emb = torch.arange(10, dtype=torch.float32)[:, None, None].expand(10, 3, 2).clone()
    windows = audio.frame_windows(emb, start=0, num_frames=10, window=7)
    assert windows.shape == (10, 7, 3, 2)
    assert windows[0, :, 0, 0].tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert windows[9, :, 0, 0].tolist() == [6, 7, 8, 9, 9, 9, 9]
    assert audio.frame_windows(emb, start=4, num_frames=2)[:, :, 0, 0].tolist() == [[2, 3, 4, 5, 6], [3, 4, 5, 6, 7]]


def test_video_frames_follow_official_int_of_seconds_times_25():
    assert audio.video_frames_for(33600) == 52
    assert audio.video_frames_for(15999) == 24


def test_compressed_audio_is_decoded_through_ffmpeg(tmp_path):
    import soundfile as sf

    from multitalk_desktop.media.ffmpeg import run_ffmpeg

    wav = tmp_path / "voice.wav"
    sf.write(str(wav), _voice(1.0), 16000, subtype="PCM_16")
    m4a = tmp_path / "voice.m4a"
    run_ffmpeg(["-y", "-i", wav, "-c:a", "aac", "-b:a", "96k", m4a], what="encode")
    decoded = audio.load_16k(m4a)
    assert decoded.dtype == np.float32
    assert abs(len(decoded) - 16000) < 2000
    assert np.abs(decoded).max() > 0.05
