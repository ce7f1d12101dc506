from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.media.video import extract_frames, probe_video, write_mp4
from tests.media.samples import FPS, SR, gradient_frames, sine


def test_mp4_round_trip_keeps_frames_rate_and_sound(talking_mp4):
    info = probe_video(talking_mp4)
    assert info.frames == 50 and info.fps == 25.0
    assert (info.width, info.height) == (128, 96)
    assert info.duration_s == pytest.approx(2.0)
    assert info.audio_duration_s == pytest.approx(2.0, abs=0.05)


def test_mp4_pixels_survive_encoding(talking_mp4):
    source = gradient_frames(50)
    decoded = extract_frames(talking_mp4, [0.0, 1.0, 1.96])
    for got, index in zip(decoded, (0, 25, 49), strict=True):
        assert np.abs(got.astype(int) - source[index].astype(int)).mean() < 4


def test_frames_stream_from_a_generator(tmp_path):
    produced = []

    def frames():
        for frame in gradient_frames(30):
            produced.append(1)
            yield frame

    out = write_mp4(frames(), FPS, tmp_path / "streamed.mp4", audio=sine(1.2), sample_rate=SR)
    info = probe_video(out)
    assert len(produced) == 30 and info.frames == 30
    assert info.audio_duration_s == pytest.approx(1.2, abs=0.05)


def test_odd_frame_size_is_cropped_to_even(tmp_path):
    out = write_mp4(gradient_frames(5, height=51, width=77), FPS, tmp_path / "odd.mp4")
    info = probe_video(out)
    assert (info.width, info.height, info.frames) == (76, 50, 5)
    assert info.audio_duration_s == 0.0 and not info.has_audio


def test_sound_track_from_a_file(tmp_path, examples):
    out = write_mp4(gradient_frames(25), FPS, tmp_path / "with_wav.mp4", audio=examples / "1.wav")
    assert probe_video(out).audio_duration_s == pytest.approx(10.68, abs=0.05)


def test_failure_midway_leaves_nothing_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "result.mp4"
    out.write_bytes(b"previous good video")

    def frames():
        yield from gradient_frames(5)
        raise RuntimeError("engine crashed")

    with pytest.raises(RuntimeError, match="engine crashed"):
        write_mp4(frames(), FPS, out, audio=sine(1.0))
    assert out.read_bytes() == b"previous good video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.mp4"]


def test_ffmpeg_failure_raises_plain_error_and_leaves_nothing(tmp_path):
    with pytest.raises(MultiTalkError, match="could not be written"):
        write_mp4(gradient_frames(3), FPS, tmp_path / "bad.mp4", preset="no-such-preset")
    assert list(tmp_path.iterdir()) == []


def test_mismatched_frame_sizes_leave_nothing(tmp_path):
    frames = [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)]
    with pytest.raises(ValueError, match="same size"):
        write_mp4(frames, FPS, tmp_path / "mixed.mp4")
    assert list(tmp_path.iterdir()) == []


def test_no_frames_is_an_error(tmp_path):
    with pytest.raises(MultiTalkError, match="no frames"):
        write_mp4([], FPS, tmp_path / "empty.mp4")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE stands in for a full disk")
def test_full_disk_says_so_and_leaves_nothing(tmp_path):
    # A file-size limit stops ffmpeg's writes partway, as a full disk would (EFBIG/SIGXFSZ
    # rather than ENOSPC: the same handling, without needing a tiny file system).
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        import numpy as np
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        from multitalk_desktop.errors import MultiTalkError
        from multitalk_desktop.media.video import write_mp4
        rng = np.random.default_rng(0)
        frames = (rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(200))
        try:
            write_mp4(frames, 25, {str(tmp_path / "full.mp4")!r}, crf=0, preset="ultrafast")
        except MultiTalkError as err:
            print("ERROR:", err.user_text())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "ERROR:" in result.stdout, result.stderr
    assert "no room for it: the disk is full" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_thumbnails_have_the_asked_size_and_clamp_past_the_end(talking_mp4):
    thumbs = extract_frames(talking_mp4, [0.5, 99.0], size=(64, 0))
    assert [t.shape for t in thumbs] == [(48, 64, 3), (48, 64, 3)]
    last = gradient_frames(50)[49, ..., 0].mean()
    assert abs(thumbs[1][..., 0].mean() - last) < 8  # the red level of the final frame


def test_probe_refuses_audio_only_file(examples):
    with pytest.raises(MultiTalkError, match="no video"):
        probe_video(examples / "1.wav")
