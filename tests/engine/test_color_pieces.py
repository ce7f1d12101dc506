"""Lab colour matching between clips."""

from __future__ import annotations

import pytest
import torch

from multitalk_desktop.engine.color import match_and_blend_colors
from tests.engine.fixture_cases import cases_of, check_piece_case


@pytest.mark.parametrize("stem", cases_of("colorcorr"))
def test_colour_match_matches_official_fixture(stem):
    result = check_piece_case(stem, "colorcorr")
    assert result.ok, result.line()


def _frames(t: int = 2) -> torch.Tensor:
    return torch.rand(1, 3, t, 8, 10, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_strength_zero_returns_the_frames_untouched():
    frames = _frames()
    assert match_and_blend_colors(frames, _frames(1), 0.0) is frames


def test_full_strength_moves_frame_mean_towards_the_reference():
    frames = _frames() * 0.3 - 0.5  # dark
    reference = _frames(1) * 0.3 + 0.5  # bright
    out = match_and_blend_colors(frames, reference, 1.0)
    assert out.shape == frames.shape and out.dtype == frames.dtype
    assert abs(float(out.mean()) - float(reference.mean())) < abs(float(frames.mean()) - float(reference.mean())) / 4


def test_flat_frame_takes_the_reference_mean_instead_of_dividing_by_zero():
    out = match_and_blend_colors(torch.zeros(1, 3, 1, 6, 6), _frames(1)[..., :6, :6], 1.0)
    assert torch.isfinite(out).all()


def test_strength_outside_zero_to_one_is_rejected():
    with pytest.raises(ValueError):
        match_and_blend_colors(_frames(), _frames(1), 1.5)
