"""The fake engine behaves like the real one where the app can tell."""

from __future__ import annotations

import re

import pytest

from multitalk_desktop.engine.protocol import CancelToken, GenerationInputs
from multitalk_desktop.engine.test_engine import TestEngine
from multitalk_desktop.errors import Cancelled
from tests.jobs import media_factory


def inputs(media, tmp_path, voices=("voice1s.wav",), **kw) -> GenerationInputs:
    base = dict(image=media / "face.png", audio=[media / v for v in voices], output_path=tmp_path / "out.mp4",
                work_dir=tmp_path, steps=2, seed=1)
    base.update(kw)
    return GenerationInputs(**base)


def test_writes_a_real_mp4_with_the_voice(media, tmp_path):
    events = []
    result = TestEngine().generate(inputs(media, tmp_path, voices=("voice4s.wav",), steps=3), events.append)
    assert result.produced_by == "test-engine" and result.frames == 100
    text = media_factory.ffprobe_text(result.output_path)
    assert re.search(r"Video: h264", text) and re.search(r"Audio: aac", text)
    duration = re.search(r"Duration: 00:00:(\d+\.\d+)", text)
    assert 3.8 < float(duration.group(1)) < 4.3
    denoising = [(e.clip, e.step) for e in events if e.phase == "denoising"]
    assert denoising == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]  # 2 clips x 3 steps
    assert events[-1].percent == 100.0


def test_short_voice_is_padded_to_one_clip(media, tmp_path):
    result = TestEngine().generate(inputs(media, tmp_path))
    assert result.frames == 81 and any("padded" in n for n in result.notes)


@pytest.mark.parametrize(("audio_type", "seconds"), [("add", 6.0), ("para", 4.0)])
def test_two_voices_are_mixed_as_the_audio_type_says(media, tmp_path, audio_type, seconds):
    result = TestEngine().generate(inputs(media, tmp_path, voices=("voice4s.wav", "voice2s.wav"),
                                          audio_type=audio_type))
    assert result.audio_seconds == pytest.approx(seconds, abs=0.01)


def test_another_seed_gives_other_frames(media, tmp_path):
    frames = {}
    for seed in (1, 2, 1):
        out = tmp_path / f"seed{seed}-{len(frames)}.mp4"
        TestEngine().generate(inputs(media, tmp_path, seed=seed, output_path=out, work_dir=tmp_path / f"w{len(frames)}"))
        frames[len(frames)] = media_factory.first_frame(out)
    assert (frames[0] != frames[1]).any()
    assert (frames[0] == frames[2]).all()


def test_cancel_stops_at_a_step_and_writes_nothing(media, tmp_path):
    token = CancelToken()
    seen = []

    def on_progress(event):
        seen.append(event)
        if event.phase == "denoising" and event.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        TestEngine().generate(inputs(media, tmp_path, steps=10), on_progress, token)
    assert max(e.step for e in seen) == 2
    assert not (tmp_path / "out.mp4").exists()


def test_finished_clips_are_skipped_on_resume(media, tmp_path):
    work = tmp_path / "clips"
    work.mkdir()
    (work / "clip_001.done").write_text("ok")
    events = []
    TestEngine().generate(inputs(media, tmp_path, voices=("voice4s.wav",)), events.append)
    assert {e.clip for e in events if e.phase == "denoising"} == {2}
