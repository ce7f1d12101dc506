"""The clip plan of long audio: official fixture, frame accounting, the cap and short voices."""

from __future__ import annotations

import pytest
import torch

from multitalk_desktop.engine import streaming as st
from multitalk_desktop.errors import MultiTalkError
from tests.engine.fixture_cases import cases_of, check_piece_case


@pytest.mark.parametrize("stem", cases_of("streaming"))
def test_clip_schedule_matches_official_fixture(stem):
    result = check_piece_case(stem, "streaming")
    assert result.ok, result.line()


def test_sixty_seconds_without_cap_keeps_all_but_the_last_three_frames():
    plan = st.plan_clips(60 * 25)
    assert plan.num_clips == 27
    assert plan.audio_start_idx[:3] == [0, 56, 112] and plan.audio_start_idx[-1] == 26 * 56
    assert plan.generated_frames == 81 + 26 * 56
    assert plan.output_frames == 1497 and plan.dropped_audio_frames == 3


def test_sixty_seconds_with_official_cap_reports_what_was_cut():
    plan = st.plan_clips(60 * 25, max_frames=1000)
    assert plan.num_clips == 18
    assert plan.output_frames == 1000
    assert plan.dropped_audio_frames == 500  # said, not silent


def test_tail_padding_is_time_reversed_and_only_seen_by_the_last_clip():
    plan = st.plan_clips(200)
    assert plan.padding[0] == tuple(range(199, 199 - 52, -1))
    last = plan.window_indices(plan.clips[-1])
    assert last[80].tolist() == [153, 152, 151, 150, 149]  # positions 246..250 mirror 153..149
    earlier = plan.window_indices(plan.clips[-2])
    assert int(earlier.max()) <= 199


def test_voice_shorter_than_one_clip_runs_one_padded_clip():
    plan = st.plan_clips(60)
    assert plan.num_clips == 1 and plan.output_frames == 57
    windows = plan.window_indices(plan.clips[0])
    assert windows.shape == (81, 5) and int(windows.max()) == 59 and int(windows.min()) == 0


def test_very_short_voice_bounces_back_and_forth():
    plan = st.plan_clips(10)
    assert len(plan.padding[0]) == 81 - 10 + 3
    assert plan.padding[0][:12] == (9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 1)


def test_clip_mode_gives_exactly_one_clip_of_frame_num():
    plan = st.plan_clips(500, streaming=False)
    assert plan.num_clips == 1 and plan.output_frames == 81


def test_clip_sizes_are_parameters():
    plan = st.plan_clips(100, frame_num=21, motion_frames=5)
    assert plan.audio_start_idx[:3] == [0, 16, 32]
    assert plan.output_frames == 97


def test_clip_length_that_is_not_4n_plus_1_is_rejected():
    with pytest.raises(MultiTalkError, match="4n\\+1"):
        st.plan_clips(200, frame_num=80)


def test_condition_mask_marks_motion_frames_per_latent():
    assert st.condition_mask(1)[:, :, 0, 0].sum(dim=0).tolist() == [4.0] + [0.0] * 20
    msk = st.condition_mask(25)[:, :, 0, 0]
    assert msk.shape == (4, 21) and msk[:, :7].all() and not msk[:, 7:].any()
    assert st.motion_latent_frames(25) == 7


def test_motion_renoising_uses_t0_first_then_each_next_timestep():
    schedule = torch.tensor([1000.0, 600.0, 0.0])
    assert [(label, float(t)) for label, t in st.renoise_times(schedule)] == [
        ("step_init", 1000.0), ("after_step0", 600.0), ("after_step1", 0.0)]
    latent = torch.zeros(2, 5, 1, 1)
    motion = torch.ones(2, 3, 1, 1)
    st.inject_motion(latent, motion, torch.zeros_like(motion), torch.tensor([0.0]))
    assert latent[:, :3].eq(1).all() and latent[:, 3:].eq(0).all()
