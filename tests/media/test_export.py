from __future__ import annotations

import pytest
from PIL import Image

from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.media.audio import decode_audio
from multitalk_desktop.media.streams import probe_streams
from multitalk_desktop.media.video import export, probe_video


def test_mp4_high_copies_streams_unchanged(talking_mp4, tmp_path):
    progress = []
    out = export(talking_mp4, tmp_path / "high.mp4", "mp4-high", on_progress=progress.append)
    info = probe_video(out)
    assert (info.frames, info.width, info.height) == (50, 128, 96)
    assert info.audio_duration_s == pytest.approx(2.0, abs=0.05)
    assert progress[-1] == 1.0 and progress == sorted(progress)


def test_mp4_small_without_audio(talking_mp4, tmp_path):
    out = export(talking_mp4, tmp_path / "small.mp4", "mp4-small", include_audio=False)
    info = probe_video(out)
    assert info.frames == 50 and not info.has_audio
    assert out.stat().st_size < talking_mp4.stat().st_size


def test_webm_is_vp9_and_opus(talking_mp4, tmp_path):
    out = export(talking_mp4, tmp_path / "clip.webm", "webm")
    streams = probe_streams(out)
    assert streams.video.codec == "vp9" and streams.audio.codec == "opus"
    assert probe_video(out).frames == 50
    assert len(decode_audio(out, sr=16000)[0]) == pytest.approx(32000, abs=800)


def test_png_frames_folder_has_every_frame_and_the_sound(talking_mp4, tmp_path):
    folder = export(talking_mp4, tmp_path / "frames", "png-frames")
    pngs = sorted(folder.glob("frame_*.png"))
    assert len(pngs) == 50
    assert Image.open(pngs[0]).size == (128, 96)
    assert (folder / "audio.wav").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # no temporary folder left


def test_png_frames_refuses_a_folder_with_files(talking_mp4, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(MultiTalkError, match="not an empty folder"):
        export(talking_mp4, target, "png-frames")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_failed_export_leaves_nothing(tmp_path, silent_mp4):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(silent_mp4.read_bytes()[:-2000])  # lose the end of the video data
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(MultiTalkError):
        export(broken, out_dir / "x.webm", "webm")
    with pytest.raises(MultiTalkError, match="not found"):
        export(tmp_path / "nothing.mp4", out_dir / "y.mp4", "mp4-high")
    assert list(out_dir.iterdir()) == []


def test_unknown_preset_is_refused(talking_mp4, tmp_path):
    with pytest.raises(MultiTalkError, match="Unknown export format"):
        export(talking_mp4, tmp_path / "x.gif", "gif")
