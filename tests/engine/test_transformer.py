"""The MultiTalk DiT port: conformance with the official model on the reference fixtures, and the
behaviour around it (shapes, frame counts, masks, audio context reuse, L-RoPE)."""

from __future__ import annotations

import json

import pytest
import torch

from multitalk_desktop.engine.conformance.units_model import HANDLERS
from multitalk_desktop.engine.lrope import (
    apply_rope_1d,
    speaker_key_positions,
    speaker_query_positions,
)
from multitalk_desktop.engine.transformer import MultiTalkTransformer3DModel, token_ref_masks
from multitalk_desktop.errors import MultiTalkError
from tests.engine.fixture_cases import FIXTURES, load_model_case

TRANSFORMER_CASES = sorted(
    p.stem for p in FIXTURES.glob("transformer_*.json") if json.loads(p.read_text()).get("case") != "common"
)
ATOL, RTOL = 5e-5, 1e-5


def test_fixture_set_has_one_and_two_speaker_cases():
    assert len(TRANSFORMER_CASES) >= 5


@pytest.mark.parametrize("stem", TRANSFORMER_CASES)
def test_transformer_case_matches_official_outputs(stem):
    case = load_model_case(stem)
    results = HANDLERS["transformer"](case)
    skipped = results.pop("__skipped__")
    expected = [k for k in case.tensors if k.startswith("out.")]
    assert sorted(list(results) + list(skipped)) == sorted(expected)
    for name, value in results.items():
        reference = case.tensors[name].float()
        assert value.shape == reference.shape, name
        excess = (value.float() - reference).abs() - (ATOL + RTOL * reference.abs())
        assert excess.max().item() <= 0, f"{name}: max error {(value - reference).abs().max().item():.3g}"
    # Only the reference-attention map may be skipped, and only when one voice drives the forward.
    assert all(k.endswith("x_ref_attn_map") for k in skipped)
    assert bool(skipped) == (case.tensors["in.audio"].shape[0] == 1)


def _tiny_model(**overrides) -> MultiTalkTransformer3DModel:
    config = dict(
        num_attention_heads=2, attention_head_dim=8, in_channels=12, out_channels=4, text_dim=8,
        freq_dim=8, ffn_dim=32, num_layers=2, image_dim=12, added_kv_proj_dim=16, text_len=6,
        audio_window=5, vae_scale=4, intermediate_dim=8, output_dim=6, context_tokens=3,
        audio_blocks=2, audio_channels=4,
    )
    config.update(overrides)
    torch.manual_seed(0)
    return MultiTalkTransformer3DModel(**config).eval()


def _inputs(model, speakers: int, video_frames: int = 9, hw=(4, 6)):
    cfg = model.config
    latent_frames = (video_frames - 1) // cfg.vae_scale + 1
    masks = torch.zeros(3, *hw)
    masks[0, :, : hw[1] // 2] = 1
    masks[1, :, hw[1] // 2:] = 1
    return dict(
        hidden_states=torch.randn(1, cfg.in_channels, latent_frames, *hw),
        timestep=torch.tensor([731.25]),
        encoder_hidden_states=torch.randn(1, 4, cfg.text_dim),
        encoder_hidden_states_image=torch.randn(1, 5, cfg.image_dim),
        audio=torch.randn(speakers, video_frames, cfg.audio_window, cfg.audio_blocks, cfg.audio_channels),
        ref_target_masks=masks,
    )


@pytest.mark.parametrize("speakers", [1, 2])
def test_output_and_audio_context_shapes(speakers):
    model = _tiny_model()
    inputs = _inputs(model, speakers)
    with torch.no_grad():
        context = model.project_audio(inputs["audio"])
        out = model(**inputs).sample
    assert context.shape == (1, 3, speakers * 3, 6)
    assert out.shape == (1, 4, 3, 4, 6) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_precomputed_audio_context_gives_the_same_prediction():
    model = _tiny_model()
    inputs = _inputs(model, 2)
    with torch.no_grad():
        direct = model(**inputs).sample
        context = model.project_audio(inputs.pop("audio"))
        reused = model(**inputs, audio_context=context).sample
    assert torch.equal(direct, reused)


def test_audio_changes_the_prediction():
    model = _tiny_model()
    inputs = _inputs(model, 1)
    with torch.no_grad():
        with_audio = model(**inputs).sample
        inputs["audio"] = torch.zeros_like(inputs["audio"])
        silent = model(**inputs).sample
    assert (with_audio - silent).abs().max() > 1e-4


@pytest.mark.parametrize("frames", [8, 10, 12])
def test_frame_counts_not_4n_plus_1_are_rejected(frames):
    model = _tiny_model()
    inputs = _inputs(model, 1)
    inputs["audio"] = torch.randn(1, frames, 5, 2, 4)
    with pytest.raises(MultiTalkError, match=r"4n\+1 video frames"):
        model(**inputs)


def test_audio_and_video_lengths_must_agree():
    model = _tiny_model()
    inputs = _inputs(model, 1, video_frames=9)
    inputs["audio"] = torch.randn(1, 13, 5, 2, 4)
    with pytest.raises(MultiTalkError, match="latent frames"):
        model(**inputs)


def test_empty_person_mask_is_rejected_instead_of_a_black_video():
    model = _tiny_model()
    inputs = _inputs(model, 2)
    # A box that covers less than one token after the nearest resize to the patch grid.
    inputs["ref_target_masks"][1] = 0
    inputs["ref_target_masks"][1, 1, 5] = 1
    with pytest.raises(MultiTalkError, match="Person 2's region is empty"):
        model(**inputs)


def test_empty_background_is_repaired_not_nan():
    model = _tiny_model()
    inputs = _inputs(model, 2)
    inputs["ref_target_masks"][2] = 0  # the two people cover the whole frame
    with torch.no_grad():
        out = model(**inputs).sample
    assert torch.isfinite(out).all()


def test_two_voices_need_masks():
    model = _tiny_model()
    inputs = _inputs(model, 2)
    inputs["ref_target_masks"] = None
    with pytest.raises(MultiTalkError, match="person masks"):
        model(**inputs)


def test_text_longer_than_text_len_is_rejected():
    model = _tiny_model()
    inputs = _inputs(model, 1)
    inputs["encoder_hidden_states"] = torch.randn(1, 7, 8)
    with pytest.raises(MultiTalkError, match="at most 6"):
        model(**inputs)


def test_image_text_split_follows_configured_text_len():
    # With text_len 6 and 5 image tokens, only the image tokens may reach add_k_proj.
    model = _tiny_model()
    seen = []
    model.blocks[0].attn2.add_k_proj.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    with torch.no_grad():
        model(**_inputs(model, 1))
    assert seen == [5]


def test_token_masks_use_pytorch_nearest_on_the_patch_grid():
    masks = torch.zeros(3, 4, 6)
    # `nearest` samples source column floor(j * 6/3) = 0, 2, 4 and row floor(i * 4/2) = 0, 2.
    masks[0, :, :2] = 1  # columns 0-1: only column 0 is sampled
    masks[1, :, 3] = 1   # column 3 is never sampled: the person vanishes
    masks[2, 2:, :] = 1
    tokens = token_ref_masks(masks, (2, 3))
    assert tokens.shape == (3, 6)
    assert tokens[0].tolist() == [1, 0, 0, 1, 0, 0]
    assert tokens[1].tolist() == [0, 0, 0, 0, 0, 0]
    assert tokens[2].tolist() == [0, 0, 0, 1, 1, 1]


def test_rope_1d_rotates_interleaved_pairs():
    x = torch.randn(1, 3, 2, 8)
    positions = torch.tensor([[0.0, 2.0, 22.0]])
    rotated = apply_rope_1d(x, positions)
    assert torch.allclose(rotated[:, 0], x[:, 0])
    pairs = torch.view_as_complex(x.double().reshape(1, 3, 2, 4, 2).contiguous())
    freqs = 1.0 / 10000 ** (torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    turn = torch.polar(torch.ones(3, 4, dtype=torch.float64), positions[0, :, None].double() * freqs)
    expected = torch.view_as_real(pairs * turn[None, :, None]).reshape(1, 3, 2, 8)
    assert torch.allclose(rotated.double(), expected, atol=1e-5)


def test_speaker_positions_use_global_min_max_and_argmax():
    ref_map = torch.tensor([[[0.5, 0.1, 0.3, 0.2], [0.2, 0.6, 0.1, 0.2], [0.1, 0.1, 0.9, 0.3]]])
    positions = speaker_query_positions(ref_map)
    # token 0: person 1 at its max -> 4; token 1: person 2 at its max -> 24; others: background 12.
    assert torch.allclose(positions, torch.tensor([[4.0, 24.0, 12.0, 12.0]]), atol=1e-5)
    assert speaker_key_positions(6).tolist() == [2, 2, 2, 22, 22, 22]
