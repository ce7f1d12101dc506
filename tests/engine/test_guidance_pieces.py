"""Text/audio guidance and APG against the official fixtures, plus the per-clip buffer rules."""

from __future__ import annotations

import pytest
import torch

from multitalk_desktop.engine import guidance as g
from tests.engine.fixture_cases import cases_of, check_piece_case


@pytest.mark.parametrize("stem", cases_of("cfg"))
def test_guidance_matches_official_fixture(stem):
    result = check_piece_case(stem, "cfg")
    assert result.ok, result.line()


def _preds(*names: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return {n: torch.randn(4, 2, 3, 3, generator=gen) for n in names}


def test_text_scale_one_uses_two_passes():
    assert g.pass_names(1.0 + 1e-12) == ("cond", "drop_audio")
    assert g.pass_names(5.0) == ("cond", "drop_text", "uncond")


def test_vanilla_three_pass_weights_sum_to_one():
    preds = _preds("cond", "drop_text", "uncond")
    out = g.Guidance(5.0, 4.0).combine(preds)
    expected = 5 * preds["cond"] - preds["drop_text"] - 3 * preds["uncond"]
    assert torch.allclose(out, expected, atol=1e-5)


def test_apg_buffer_keeps_unclipped_running_sum():
    buf = g.MomentumBuffer(-0.75)
    big = torch.full((2, 1, 2, 2), 100.0)
    g.adaptive_projected_guidance(big, torch.ones_like(big), buf, norm_threshold=1.0)
    assert torch.equal(buf.running_average, big)
    g.adaptive_projected_guidance(big, torch.ones_like(big), buf, norm_threshold=1.0)
    assert torch.allclose(buf.running_average, big * 0.25)


def test_apg_result_is_orthogonal_to_cond_and_clipped():
    preds = _preds("diff", "cond")
    out = g.adaptive_projected_guidance(preds["diff"] * 100, preds["cond"], None, norm_threshold=5.0)
    assert abs(float((out.double() * preds["cond"].double()).sum())) < 1e-3
    assert float(out.norm()) <= 5.0 + 1e-4


def test_new_clip_resets_the_momentum():
    preds = _preds("cond", "drop_text", "uncond")
    guide = g.Guidance(5.0, 4.0, use_apg=True)
    first = guide.combine(preds)
    second = guide.combine(preds)
    guide.new_clip()
    assert not torch.allclose(first, second)
    assert torch.equal(guide.combine(preds), first)
