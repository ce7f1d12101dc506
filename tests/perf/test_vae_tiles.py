"""VAE decode tiles planned per clip: few even tiles within the budget, exactly the tiles diffusers'
loop makes from them, and the VAE's own settings back afterwards."""

from __future__ import annotations

import pytest
import torch

from multitalk_desktop.engine.profiles import PROFILES, vae_tile_area
from multitalk_desktop.engine.vae_tiles import OVERLAP_LATENT, plan_tiles, planned_tiling


def diffusers_starts(size: int, stride: int) -> list[int]:
    return list(range(0, size, stride))  # AutoencoderKLWan.tiled_decode's loop


@pytest.mark.parametrize("latent_hw", [(60, 104), (90, 160), (104, 60), (64, 64), (33, 57)])
@pytest.mark.parametrize("fraction", [0.2, 0.35, 0.5, 0.7])
def test_plan_fits_the_budget_and_matches_diffusers_loop(latent_hw, fraction):
    height, width = latent_hw
    budget = int(fraction * height * width)
    plan = plan_tiles(latent_hw, budget)
    assert plan is not None
    assert min(plan.tile_hw[0], height) * min(plan.tile_hw[1], width) <= budget
    assert len(diffusers_starts(height, plan.stride_hw[0])) == plan.rows
    assert len(diffusers_starts(width, plan.stride_hw[1])) == plan.cols
    for size, stride, tile, count in ((height, plan.stride_hw[0], plan.tile_hw[0], plan.rows),
                                      (width, plan.stride_hw[1], plan.tile_hw[1], plan.cols)):
        if count > 1:
            assert stride >= OVERLAP_LATENT and tile - stride == OVERLAP_LATENT
            assert (count - 1) * stride + tile >= size  # the tiles cover the frame
    assert plan.decoded_area >= height * width


def test_480p_plan_is_the_measured_one_and_fewer_tiles_than_diffusers():
    plan = plan_tiles((60, 104), vae_tile_area(PROFILES["fp8"]))
    # bench/logs/2026-11-26_h200_vae_tiles.log: 1x4 of 60x34, +3.10 GiB, 3.58 s (diffusers: 15 tiles, 5.85 s)
    assert (plan.rows, plan.cols, plan.tile_hw) == (1, 4, (60, 34))
    assert plan.decoded_area / (60 * 104) < 1.25


def test_a_frame_within_the_budget_is_decoded_whole_and_full_is_never_tiled():
    assert plan_tiles((30, 52), 30 * 52) is None
    assert vae_tile_area(PROFILES["full"]) is None
    assert all(vae_tile_area(PROFILES[name]) for name in ("fp8", "balanced", "low"))


class FakeTilingSettings:
    """Only the attributes planned_tiling reads and writes (the real VAE is tested below)."""

    spatial_compression_ratio = 8
    use_tiling = True
    tile_sample_min_height = tile_sample_min_width = 256
    tile_sample_stride_height = tile_sample_stride_width = 192


def test_planned_tiling_restores_the_vae_settings_even_on_error():
    vae = FakeTilingSettings()
    with pytest.raises(RuntimeError), planned_tiling(vae, (60, 104), 2000) as plan:
        assert (vae.tile_sample_min_height, vae.tile_sample_min_width) == (plan.tile_hw[0] * 8, plan.tile_hw[1] * 8)
        raise RuntimeError("decode failed")
    assert (vae.use_tiling, vae.tile_sample_min_width, vae.tile_sample_stride_width) == (True, 256, 192)
    with planned_tiling(vae, (10, 10), 2000) as plan:
        assert plan is None and vae.use_tiling is False
    assert vae.use_tiling is True


def _tiny_vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, attn_scales=[],
                            temperal_downsample=[False, True, True]).eval()


def test_planned_tiles_decode_what_diffusers_decodes_with_those_tiles():
    vae = _tiny_vae()
    latents = torch.randn(1, 4, 2, 24, 40, generator=torch.Generator().manual_seed(1))
    vae.enable_tiling()
    with torch.no_grad():
        with planned_tiling(vae, (24, 40), 24 * 40 // 2) as plan:
            planned = vae.decode(latents).sample
        vae.enable_tiling(*plan.sample_sizes(8))
        direct = vae.decode(latents).sample
        with planned_tiling(vae, (24, 40), 24 * 40) as whole_plan:
            whole = vae.decode(latents).sample
        vae.use_tiling = False
        untiled = vae.decode(latents).sample
    assert plan.rows * plan.cols > 1 and whole_plan is None
    assert torch.equal(planned, direct)
    assert torch.equal(whole, untiled)
