from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.media.audio import arrange_voices, decode_audio, mix_voices, probe_audio
from tests.media.samples import SR, ffmpeg_make, sine


def test_wav_decodes_bit_exact_with_librosa_at_16k(examples):
    import librosa

    ours, rate = decode_audio(examples / "1-man.WAV", sr=16000)
    ref, _ = librosa.load(str(examples / "1-man.WAV"), sr=16000)
    assert rate == 16000 and ours.dtype == np.float32
    assert np.array_equal(ours, ref)


def test_probe_reads_wav_header(examples):
    info = probe_audio(examples / "1.wav")
    assert info.sample_rate == 44100 and info.channels == 2
    assert info.duration_s == pytest.approx(10.682, abs=0.001)


def test_video_file_sound_track_is_decoded_as_a_voice(talking_mp4):
    samples, rate = decode_audio(talking_mp4, sr=SR)
    assert rate == SR
    assert len(samples) == pytest.approx(2.0 * SR, abs=0.05 * SR)
    # The 220 Hz tone survives AAC: its spectrum peaks at 220 Hz.
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / SR)[spectrum.argmax()] == pytest.approx(220, abs=2)
    assert probe_audio(talking_mp4).duration_s == pytest.approx(2.0, abs=0.05)


def test_mp3_and_m4a_decode_through_ffmpeg(tmp_path):
    for name, codec in (("voice.mp3", "libmp3lame"), ("voice.m4a", "aac")):
        out = ffmpeg_make(tmp_path / name, "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100:duration=1.5",
                          "-ac", "2", "-c:a", codec)
        samples, rate = decode_audio(out)
        assert rate == 44100
        assert len(samples) / rate == pytest.approx(1.5, abs=0.06)
        info = probe_audio(out)
        assert info.channels == 2 and info.duration_s == pytest.approx(1.5, abs=0.06)


def test_video_without_sound_track_says_so(silent_mp4):
    with pytest.raises(MultiTalkError, match="This video has no sound track"):
        decode_audio(silent_mp4)
    with pytest.raises(MultiTalkError, match="no sound track"):
        probe_audio(silent_mp4)


def test_corrupt_wav_is_refused_with_a_sentence(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 20)
    with pytest.raises(MultiTalkError, match="damaged"):
        decode_audio(bad)


def test_truncated_wav_keeps_what_is_there(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(whole, sine(1.0), SR)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + SR])  # header + half a second of 16-bit samples
    samples, _ = decode_audio(cut)
    assert len(samples) == SR // 2


def test_wav_with_only_a_header_has_no_sound(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(whole, sine(1.0), SR)
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(whole.read_bytes()[:44])
    with pytest.raises(MultiTalkError, match="no sound"):
        decode_audio(header_only)


def test_empty_and_missing_files_are_named(tmp_path):
    empty = tmp_path / "empty.mp3"
    empty.touch()
    with pytest.raises(MultiTalkError, match="empty"):
        decode_audio(empty)
    with pytest.raises(MultiTalkError, match="not found"):
        probe_audio(tmp_path / "nowhere.wav")


def test_text_file_named_mp3_is_not_sound(tmp_path):
    fake = tmp_path / "song.mp3"
    fake.write_text("this is not audio\n" * 20)
    with pytest.raises(MultiTalkError, match="damaged or not"):
        decode_audio(fake)


def test_mix_add_plays_voices_one_after_the_other():
    a, b = np.full(3, 0.5, np.float32), np.full(2, -0.25, np.float32)
    placed = arrange_voices([a, b], "add")
    assert [p.tolist() for p in placed] == [[0.5, 0.5, 0.5, 0, 0], [0, 0, 0, -0.25, -0.25]]
    assert mix_voices([a, b], "add").tolist() == [0.5, 0.5, 0.5, -0.25, -0.25]


def test_mix_para_sums_and_pads_the_shorter_voice():
    a, b = np.full(3, 0.5, np.float32), np.full(2, 0.75, np.float32)
    assert mix_voices([a, b], "para").tolist() == [1.0, 1.0, 0.5]  # 1.25 clipped to 1.0
    assert len(arrange_voices([a, b], "para")[1]) == 3


def test_mix_rejects_unknown_audio_type():
    with pytest.raises(MultiTalkError, match="audio type"):
        mix_voices([np.zeros(2), np.zeros(2)], "sideways")
