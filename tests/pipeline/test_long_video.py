"""Long voices: several clips, finished clips kept, and a resumed job equal to an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest

from multitalk_desktop.engine.protocol import CancelToken
from multitalk_desktop.errors import Cancelled
from multitalk_desktop.media.video import probe_video

from .helpers import duration, run_job


@pytest.fixture(scope="module")
def uninterrupted(engine, voices, tmp_path_factory):
    return run_job(engine, tmp_path_factory.mktemp("long"), [voices["long"]], name="whole", keep_clips=True)


def test_a_voice_long_enough_for_three_clips_gives_a_video_as_long_as_the_voice(uninterrupted, voices):
    assert {e.clips for e in uninterrupted.events if e.phase == "denoising"} == {3}
    info = probe_video(uninterrupted.output)
    voice = duration(voices["long"])
    assert info.frames == int(voice * 25) - 3
    assert info.audio_duration_s == pytest.approx(voice, abs=0.05)


def test_resume_after_a_stop_between_clips_continues_after_the_last_finished_clip(
    engine, voices, uninterrupted, tmp_path
):
    work = tmp_path / "work-resumed"
    first_clip = work / "clips" / "clip_0000.npz"
    cancel = CancelToken()
    # The job is stopped as soon as clip 1 is on disk: between clips, as a crash or a quit would.
    cancel.add_check(first_clip.exists)
    with pytest.raises(Cancelled):
        run_job(engine, tmp_path, [voices["long"]], name="resumed", cancel=cancel, keep_clips=True)
    assert first_clip.exists() and not (work / "clips" / "clip_0001.npz").exists()
    assert not (tmp_path / "resumed.mp4").exists()
    kept = first_clip.stat().st_mtime_ns

    resumed = run_job(engine, tmp_path, [voices["long"]], name="resumed", keep_clips=True)
    denoised_clips = {e.clip for e in resumed.events if e.phase == "denoising"}
    assert denoised_clips == {2, 3}  # clip 1 was reused, not generated again
    assert first_clip.stat().st_mtime_ns == kept
    assert any("Resumed after clip 1 of 3" in note for note in resumed.result.notes)

    whole = uninterrupted.result.output_path.parent / "work-whole" / "clips"
    for k in range(3):
        with np.load(whole / f"clip_{k:04d}.npz") as a, np.load(work / "clips" / f"clip_{k:04d}.npz") as b:
            assert np.array_equal(a["frames"], b["frames"]), f"clip {k + 1} differs after the resume"
    assert probe_video(resumed.output).frames == probe_video(uninterrupted.output).frames


def test_changed_settings_do_not_reuse_old_clips_and_a_max_duration_is_honoured_and_reported(
    engine, voices, tmp_path
):
    cancel = CancelToken()
    work = tmp_path / "work-job"
    cancel.add_check((work / "clips" / "clip_0000.npz").exists)
    with pytest.raises(Cancelled):
        run_job(engine, tmp_path, [voices["long"]], name="job", cancel=cancel, seed=1)
    other = run_job(engine, tmp_path, [voices["long"]], name="job", seed=2, max_duration=1.0)
    assert not any("Resumed" in note for note in other.result.notes)
    assert {e.clip for e in other.events if e.phase == "denoising"} == {1}
    info = probe_video(other.output)
    assert info.frames == 25
    assert info.audio_duration_s == pytest.approx(1.0, abs=0.05)
    assert any("Capped at 1.00 s" in note for note in other.result.notes)
