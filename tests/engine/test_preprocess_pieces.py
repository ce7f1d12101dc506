"""Bucket choice, resize-and-crop and the CLIP input, against the official fixtures and its quirks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from multitalk_desktop.engine import preprocess as pp
from tests.engine.fixture_cases import cases_of, check_piece_case


@pytest.mark.parametrize("stem", cases_of("resize"))
def test_resize_matches_official_fixture(stem):
    result = check_piece_case(stem, "resize")
    assert result.ok, result.line()


def test_crop_offset_rounds_half_to_even():
    # 37 pixels too many: Python round(18.5) = 18, not 19.
    assert pp.crop_offsets(137, 100, 100, 100) == (18, 0)
    assert pp.crop_offsets(139, 100, 100, 100) == (20, 0)


def test_ceil_in_float64_overshoots_like_the_official_code():
    assert pp.cover_size(77, 41, 832, 448) == (842, 449)


def test_bucket_is_the_closest_ratio_and_ties_go_to_the_first_key():
    assert pp.choose_bucket(90, 160) == ("0.50", (448, 896))
    assert pp.choose_bucket(1000, 1000, "720p") == ("1.00", (960, 960))
    # 0.44 is exactly between 0.38 and 0.50: the first key wins.
    assert pp.choose_bucket(44, 100)[0] == "0.38"


def test_unknown_resolution_is_rejected():
    with pytest.raises(ValueError):
        pp.bucket_table("1080p")


def test_prepared_image_is_in_model_range_and_bucket_shaped():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8))
    cond, (th, tw) = pp.prepare_image(image)
    assert (th, tw) == (704, 576)
    assert cond.shape == (1, 3, 1, 704, 576) and cond.dtype == torch.float32
    assert float(cond.min()) >= -1 and float(cond.max()) <= 1


def test_clip_input_is_a_squash_without_clamping():
    frames = torch.zeros(1, 3, 2, 30, 90)
    frames[:, :, -1, :, 45:] = 1.0  # a hard edge makes bicubic overshoot
    out = pp.clip_input(frames[:, :, -1:])
    assert out.shape == (1, 3, 224, 224)
    top = (1.0 - pp.CLIP_MEAN[0]) / pp.CLIP_STD[0]
    assert float(out[0, 0].max()) > top + 1e-3  # overshoot kept: no clamp to [0, 1]
