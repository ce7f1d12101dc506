"""Request validation: every case the issue lists, each reported with its field."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from multitalk_desktop.errors import ValidationFailed
from multitalk_desktop.jobs import spec
from multitalk_desktop.jobs.spec import JobRequest, official_bbox_to_box, validate
from tests.jobs import media_factory


def fields_of(problems) -> set[str]:
    return {p.field for p in problems}


def request(media, **kw) -> JobRequest:
    base = {"image": str(media / "face.png"), "audio": [str(media / "voice4s.wav")]}
    base.update(kw)
    return JobRequest(**base)


def test_good_request_is_ok_and_counts_clips(media):
    report = validate(request(media))
    assert report.ok, report.errors
    assert report.warnings == []
    assert report.frames == 100 and report.clips == 2  # 4 s = 100 frames: 81, then 56 more
    assert report.image_size == (160, 96)


def test_clip_count_follows_the_streaming_loop():
    assert spec.clips_for_frames(81) == 1
    assert spec.clips_for_frames(82) == 2
    assert spec.clips_for_frames(81 + 56) == 2
    assert spec.clips_for_frames(81 + 57) == 3
    assert spec.clips_for_frames(213) == 4  # the official two-speaker example, 8.52 s


def test_missing_image_and_voice_files_are_both_reported(tmp_path):
    report = validate(JobRequest(image=str(tmp_path / "nope.png"), audio=[str(tmp_path / "nope.wav")]))
    assert fields_of(report.errors) == {"image", "audio[1]"}
    assert all("does not exist" in p.message for p in report.errors)


def test_no_image_and_no_voice_given():
    report = validate(JobRequest())
    assert fields_of(report.errors) == {"image", "audio"}


def test_empty_files_are_errors(media, tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "empty.wav").write_bytes(b"")
    report = validate(JobRequest(image=str(tmp_path / "empty.png"), audio=[str(tmp_path / "empty.wav")]))
    assert fields_of(report.errors) == {"image", "audio[1]"}
    assert all("empty" in p.message for p in report.errors)


def test_truncated_wav_is_an_error(media, tmp_path):
    cut = media_factory.truncated_wav(tmp_path / "cut.wav")
    report = validate(request(media, audio=[str(cut)]))
    assert fields_of(report.errors) == {"audio[1]"}
    assert "cut short" in report.errors[0].message


def test_wav_cut_inside_its_header_is_an_error(media, tmp_path):
    good = media_factory.wav(tmp_path / "good.wav", 2.0)
    (tmp_path / "stub.wav").write_bytes(good.read_bytes()[:30])
    report = validate(request(media, audio=[str(tmp_path / "stub.wav")]))
    assert fields_of(report.errors) == {"audio[1]"}


def test_text_file_named_png_is_an_error(media, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("these are my notes, not a picture\n")
    report = validate(request(media, image=str(fake)))
    assert fields_of(report.errors) == {"image"}


def test_one_pixel_image_is_an_error(media, tmp_path):
    tiny = media_factory.png(tmp_path / "dot.png", 1, 1)
    report = validate(request(media, image=str(tiny)))
    assert fields_of(report.errors) == {"image"}
    assert "1x1" in report.errors[0].message


def test_image_header_claiming_20000_square_is_rejected_without_decoding(media, tmp_path):
    import time

    bomb = media_factory.png_header_claiming(tmp_path / "huge.png", 20000, 20000)
    started = time.perf_counter()
    report = validate(request(media, image=str(bomb)))
    assert time.perf_counter() - started < 2.0  # decoding 1.2 GB of pixels would take far longer
    assert fields_of(report.errors) == {"image"}
    assert "large" in report.errors[0].message


def test_boxes_outside_the_image_or_without_area_are_errors(media):
    two = [str(media / "voice2s.wav"), str(media / "voice2s.wav")]
    report = validate(request(media, audio=two, boxes=[(100, 0, 200, 50), (10, 10, 10, 40)]))
    assert fields_of(report.errors) == {"boxes[1]", "boxes[2]"}
    assert "outside" in report.errors[0].message
    assert "no area" in report.errors[1].message


def test_overlapping_boxes_are_a_warning_only(media):
    two = [str(media / "voice2s.wav"), str(media / "voice2s.wav")]
    report = validate(request(media, audio=two, boxes=[(0, 0, 100, 96), (60, 0, 160, 96)]))
    assert report.ok
    assert fields_of(report.warnings) == {"boxes"}
    assert "overlap" in report.warnings[0].message


def test_two_voices_one_box_is_an_error(media):
    two = [str(media / "voice2s.wav"), str(media / "voice2s.wav")]
    report = validate(request(media, audio=two, boxes=[(0, 0, 80, 96)]))
    assert fields_of(report.errors) == {"boxes"}


def test_three_voices_is_an_error(media):
    report = validate(request(media, audio=[str(media / "voice2s.wav")] * 3))
    assert fields_of(report.errors) == {"audio"}
    assert "at most two" in report.errors[0].message


def test_non_utf8_prompt_is_an_error(media):
    prompt = b"caf\xe9 scene".decode("utf-8", errors="surrogateescape")  # what argv gives for Latin-1
    report = validate(request(media, prompt=prompt))
    assert fields_of(report.errors) == {"prompt"}


def test_non_utf8_prompt_in_a_request_file_is_an_error(media, tmp_path):
    body = json.dumps({"cond_image": str(media / "face.png"),
                       "cond_audio": {"person1": str(media / "voice4s.wav")}, "prompt": "PLACEHOLDER"})
    (tmp_path / "req.json").write_bytes(body.encode().replace(b"PLACEHOLDER", b"caf\xe9"))
    report = validate(spec.request_from_official_json(tmp_path / "req.json"))
    assert fields_of(report.errors) == {"prompt"}


@pytest.mark.parametrize("value", [math.nan, -1.0, 21.0, math.inf])
def test_bad_guidance_is_an_error(media, value):
    report = validate(request(media, text_guidance=value, audio_guidance=value))
    assert fields_of(report.errors) == {"text_guidance", "audio_guidance"}


def test_voice_shorter_than_one_clip_is_padded_with_a_warning(media):
    report = validate(request(media, audio=[str(media / "voice2s.wav")]))
    assert report.ok
    assert fields_of(report.warnings) == {"audio"}
    assert "3.24" in report.warnings[0].message and "padded" in report.warnings[0].message
    assert report.frames == 81 and report.clips == 1


def test_two_short_voices_taking_turns_need_no_padding(media):
    report = validate(request(media, audio=[str(media / "voice2s.wav")] * 2, audio_type="add"))
    assert report.ok and report.warnings == []
    assert report.frames == 100


def test_voice_of_a_fifth_of_a_second_is_an_error(media, tmp_path):
    short = media_factory.wav(tmp_path / "blip.wav", 0.2)
    report = validate(request(media, audio=[str(short)]))
    assert fields_of(report.errors) == {"audio[1]"}
    assert "0.4" in report.errors[0].message


def test_video_without_sound_is_an_error(media, tmp_path):
    video = media_factory.silent_video(tmp_path / "mute.mp4")
    report = validate(request(media, audio=[str(video)]))
    assert fields_of(report.errors) == {"audio[1]"}
    assert "sound" in report.errors[0].message or "audio" in report.errors[0].message


def test_wav_with_zero_samples_is_an_error(media, tmp_path):
    zero = media_factory.wav(tmp_path / "zero.wav", 0.0)
    report = validate(request(media, audio=[str(zero)]))
    assert fields_of(report.errors) == {"audio[1]"}


def test_para_voices_of_different_lengths_warn_about_padding(media):
    report = validate(request(media, audio=[str(media / "voice4s.wav"), str(media / "voice2s.wav")],
                              audio_type="para"))
    assert report.ok
    assert "padded" in report.warnings[0].message
    assert report.frames == 100


def test_every_problem_is_reported_at_once(media, tmp_path):
    report = validate(JobRequest(image=str(tmp_path / "missing.png"), audio=[str(media / "voice4s.wav")],
                                 steps=0, seed=-1, color_correction=2, audio_type="both", mode="slow",
                                 resolution="500x500", max_duration=-3))
    assert fields_of(report.errors) == {"image", "steps", "seed", "color_correction", "audio_type",
                                        "mode", "resolution", "max_duration"}
    with pytest.raises(ValidationFailed) as err:
        report.raise_if_invalid()
    assert len(err.value.problems) == 8


def test_720p_needs_the_720p_base_model(media, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    report = validate(request(media, resolution="720p"), models_dir=models)
    assert fields_of(report.errors) == {"resolution"}
    assert spec.MODEL_720P_FOLDER in report.errors[0].message
    (models / spec.MODEL_720P_FOLDER).mkdir()
    assert validate(request(media, resolution="720p"), models_dir=models).ok


def test_max_duration_cuts_and_says_so(media):
    report = validate(request(media, max_duration=3.5))
    assert fields_of(report.warnings) == {"max_duration"}
    assert report.frames == 88 and report.clips == 2


def test_defaults_follow_the_mode():
    quality = JobRequest().resolved()
    fast = JobRequest(mode="fast").resolved()
    assert (quality.steps, quality.text_guidance, quality.audio_guidance) == (40, 5.0, 4.0)
    assert (fast.steps, fast.text_guidance, fast.audio_guidance) == (8, 1.0, 2.0)
    assert JobRequest(mode="fast", steps=12).resolved().steps == 12
    assert quality.prompt == spec.DEFAULT_PROMPT and quality.color_correction == 1.0


def test_random_seed_is_drawn_once_and_then_kept():
    seeds = {JobRequest().resolved().seed for _ in range(20)}
    assert len(seeds) > 1
    fixed = JobRequest().resolved()
    assert fixed.resolved().seed == fixed.seed
    assert JobRequest(seed=123).resolved().seed == 123


def test_request_round_trips_through_a_dict():
    req = JobRequest(image="a.png", audio=["b.wav", "c.wav"], boxes=[(1, 2, 3, 4), (5, 6, 7, 8)],
                     prompt="hi", seed=5)
    again = JobRequest.from_dict(json.loads(json.dumps(req.to_dict())))
    assert again == req


def test_official_bbox_is_top_left_bottom_right():
    assert official_bbox_to_box([10, 20, 110, 220]) == (20, 10, 220, 110)
    with pytest.raises(ValueError):
        official_bbox_to_box([1, 2, 3])


def test_official_example_requests_load_with_paths_beside_the_json(examples):
    multi = spec.request_from_official_json(examples / "multitalk_example_3.json")
    assert multi.audio_type == "para"
    assert [p.rsplit("/", 1)[-1] for p in multi.audio] == ["1-man.WAV", "1-woman.WAV"]
    report = validate(multi)
    assert report.ok, report.errors
    assert report.frames == 213 and report.clips == 4
    single = spec.request_from_official_json(examples / "single_example_1.json")
    assert len(single.audio) == 1 and single.image.endswith("single1.png")


def test_request_file_bbox_becomes_our_boxes(media, tmp_path):
    (tmp_path / "req.json").write_text(json.dumps({
        "cond_image": str(media / "face.png"),
        "cond_audio": {"person1": str(media / "voice2s.wav"), "person2": str(media / "voice2s.wav")},
        "bbox": {"person1": [0, 0, 96, 80], "person2": [0, 80, 96, 160]}}))
    req = spec.request_from_official_json(tmp_path / "req.json")
    assert req.boxes == [(0, 0, 80, 96), (80, 0, 160, 96)]
    assert validate(req).ok


def parse(argv: list[str]) -> JobRequest:
    parser = argparse.ArgumentParser()
    spec.add_request_arguments(parser)
    return spec.request_from_args(parser.parse_args(argv))


def test_flags_override_the_request_file(examples):
    req = parse(["--request", str(examples / "single_example_1.json"), "--mode", "fast", "--seed", "9",
                 "--box", "1,2,300,400", "--prompt", "other"])
    assert req.image.endswith("single1.png")
    assert (req.mode, req.seed, req.prompt, req.boxes) == ("fast", 9, "other", [(1, 2, 300, 400)])
    assert req.resolved().steps == 8


def test_flag_defaults_leave_choices_to_the_request():
    req = parse(["--image", "a.png", "--audio", "a.wav", "--audio", "b.wav"])
    assert req.audio == ["a.wav", "b.wav"] and req.steps is None and req.seed is None
    assert req.audio_type == "add" and req.resolution == "480p" and req.mode == "quality"
