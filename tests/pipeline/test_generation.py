"""End-to-end generation on tiny models: the real pipeline, real encoders, real MP4s."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from multitalk_desktop.engine.protocol import CancelToken
from multitalk_desktop.errors import Cancelled
from multitalk_desktop.media.video import probe_video, write_mp4

from .helpers import SR, duration, run_job

FPS = 25


def expected_frames(seconds: float) -> int:
    # int(seconds * 25) audio frames, the official tail leaves 3 of them without video
    return int(seconds * FPS) - 3


@pytest.fixture(scope="module")
def one_speaker(engine, voices, tmp_path_factory):
    return run_job(engine, tmp_path_factory.mktemp("one"), [voices["man"]], preview_every=1)


def test_one_speaker_mp4_has_25fps_the_whole_voice_and_video_up_to_3_frames_shorter(one_speaker, voices):
    info = probe_video(one_speaker.output)
    voice = duration(voices["man"])
    assert info.fps == pytest.approx(25.0)
    assert info.frames == expected_frames(voice) == one_speaker.result.frames
    assert info.audio_duration_s == pytest.approx(voice, abs=0.05)
    assert 0 <= info.audio_duration_s - info.duration_s <= 0.15
    assert (info.width, info.height) == (64, 32)


def test_progress_events_are_monotone_and_end_complete(one_speaker):
    events = one_speaker.events
    assert events[0].phase == "encoding" and events[-1].phase == "exporting"
    percents = [e.percent for e in events]
    assert percents == sorted(percents) and percents[-1] == 100.0
    elapsed = [e.elapsed_s for e in events]
    assert elapsed == sorted(elapsed)
    denoise = [(e.clip, e.step) for e in events if e.phase == "denoising"]
    assert denoise == sorted(denoise) and denoise[-1] == (1, 2)
    assert all(e.eta_s is not None for e in events if e.phase == "denoising")
    assert [e.phase for e in events].index("decoding") > [e.phase for e in events].index("denoising")


def test_latent_preview_is_a_small_png(one_speaker):
    previews = [e.preview_png for e in one_speaker.events if e.preview_png]
    assert len(previews) == 2  # preview_every=1, two steps
    image = Image.open(io.BytesIO(previews[0]))
    assert image.format == "PNG" and image.size == (8 * 4, 4 * 4)  # latent 8x4, shown 4x larger


def voice_as_video(voice, folder):
    import soundfile

    samples, _ = soundfile.read(str(voice), dtype="float32")
    clip = folder / f"{voice.stem}.mp4"
    write_mp4(np.zeros((25, 32, 32, 3), np.uint8), 25, clip, audio=samples, sample_rate=SR, preset="ultrafast")
    return clip


def test_two_speakers_taking_turns_with_unequal_voices_keep_all_audio(engine, voices, tmp_path):
    run = run_job(engine, tmp_path, [voices["man"], voices["woman"]], audio_type="add")
    total = duration(voices["man"]) + duration(voices["woman"])
    info = probe_video(run.output)
    assert info.audio_duration_s == pytest.approx(total, abs=0.05)
    assert info.frames == expected_frames(total)


def test_two_speakers_at_once_last_as_long_as_the_longer_voice_given_as_a_video_file(engine, voices, tmp_path):
    # voice 2 comes as a video: its audio track is used
    run = run_job(engine, tmp_path, [voices["man"], voice_as_video(voices["woman"], tmp_path)],
                  audio_type="para")
    longer = max(duration(voices["man"]), duration(voices["woman"]))
    info = probe_video(run.output)
    assert info.audio_duration_s == pytest.approx(longer, abs=0.05)
    assert info.frames == expected_frames(longer)


def test_cancel_mid_way_stops_promptly_and_writes_nothing(engine, voices, tmp_path):
    cancel = CancelToken()
    seen = []

    def on_event(event):
        seen.append(event)
        if event.phase == "denoising" and event.step == 1:
            cancel.cancel()

    from multitalk_desktop.engine.protocol import GenerationInputs

    from .helpers import EXAMPLES

    inputs = GenerationInputs(image=EXAMPLES / "multi3.png", audio=[voices["long"]],
                              output_path=tmp_path / "never.mp4", work_dir=tmp_path / "work",
                              resolution="64x32", steps=3, seed=1)
    with pytest.raises(Cancelled):
        engine.generate(inputs, on_progress=on_event, cancel=cancel)
    assert not (tmp_path / "never.mp4").exists()
    # the step after the cancel never ran, nor did any decode
    assert [e.step for e in seen if e.phase == "denoising"] == [1]
    assert not any(e.phase == "decoding" for e in seen)


def test_fast_mode_merges_the_lora_and_quality_mode_restores_the_exact_weights(engine, voices, tmp_path):
    import torch

    transformer = engine.models.transformer
    original = {k: v.clone() for k, v in transformer.state_dict().items()}
    fast = run_job(engine, tmp_path, [voices["woman"]], name="fast", mode="fast", steps=2,
                   text_guidance=1.0, audio_guidance=2.0)
    changed = [k for k, v in transformer.state_dict().items() if not torch.equal(v, original[k])]
    assert any(".attn1.to_q.weight" in k for k in changed) and any(".ffn.net.2.weight" in k for k in changed)
    assert any(k.endswith("attn1.to_out.0.bias") for k in changed)  # the diff_b entries
    assert probe_video(fast.output).frames == expected_frames(duration(voices["woman"]))
    engine.use_mode("quality", None)  # what the next quality job does first
    assert engine.lora is None
    assert all(torch.equal(v, original[k]) for k, v in transformer.state_dict().items())
