"""The lean arithmetic (engine/lean_ops.py, the folded audio attention) computes what the
straightforward arithmetic computes: same formulas, fewer bytes moved."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.normalization import FP32LayerNorm, RMSNorm

from multitalk_desktop.engine.audio_attention import AudioCrossAttention, folding_pays
from multitalk_desktop.engine.lean_ops import (
    complex_rope_table,
    gated_add,
    heads_rms_norm,
    lean_enabled,
    modulated_layer_norm,
    reference_ops,
    rotate_pairs,
)
from multitalk_desktop.engine.lrope import apply_rope_1d, apply_rope_1d_reference, rope_1d_angles
from multitalk_desktop.engine.transformer import _apply_wan_rope
from tests.perf.tiny import predict, rel_l2, tiny_inputs, tiny_model


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_modulated_norm_is_the_straightforward_formula(dtype):
    torch.manual_seed(0)
    x = torch.randn(2, 37, 24).to(dtype)
    scale, shift = torch.randn(2, 1, 24) * 0.3, torch.randn(2, 1, 24) * 0.3
    norm = FP32LayerNorm(24, 1e-6, elementwise_affine=False)
    expected = (norm(x.float()) * (1 + scale) + shift).type_as(x)
    assert torch.allclose(modulated_layer_norm(norm, x, scale, shift).float(), expected.float(), rtol=1e-5, atol=1e-5)
    affine = FP32LayerNorm(24, 1e-6, elementwise_affine=True)
    torch.nn.init.normal_(affine.weight)
    torch.nn.init.normal_(affine.bias)
    assert torch.allclose(modulated_layer_norm(affine, x).float(), affine(x.float()).type_as(x).float(),
                          rtol=1e-5, atol=1e-5)


def test_gated_add_rounds_once_like_the_float32_formula():
    torch.manual_seed(1)
    residual, update = torch.randn(3, 50, 16).bfloat16(), torch.randn(3, 50, 16).bfloat16()
    gate = torch.randn(3, 1, 16)
    expected = (residual.float() + update * gate).type_as(residual)
    assert torch.equal(gated_add(residual, update, gate), expected)
    in_place = residual.clone()
    gated_add(in_place, update, gate, out=in_place)
    assert torch.equal(in_place, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_heads_rms_norm_matches_diffusers_rmsnorm(dtype):
    torch.manual_seed(2)
    norm = RMSNorm(32, eps=1e-6).to(dtype)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(1, 40, 32).to(dtype)
    assert torch.allclose(heads_rms_norm(norm, x).float(), norm(x).float(), rtol=1e-6, atol=1e-6)


def test_complex_rotation_equals_diffusers_wan_rope_in_chunks():
    torch.manual_seed(3)
    x = torch.randn(1, 23, 2, 8)
    angles = torch.randn(23, 4)
    cos = angles.cos().repeat_interleave(2, dim=-1)[None, :, None]
    sin = angles.sin().repeat_interleave(2, dim=-1)[None, :, None]
    expected = _apply_wan_rope(x, cos, sin)
    table = complex_rope_table(cos, sin)
    assert torch.allclose(rotate_pairs(x, table, chunk=5), expected, atol=1e-6)
    in_place = x.clone()
    rotate_pairs(in_place, table, out=in_place, chunk=7)
    assert torch.allclose(in_place, expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lean_label_rope_matches_the_straightforward_rotation(dtype):
    torch.manual_seed(4)
    x = torch.randn(2, 19, 3, 8).to(dtype)
    positions = torch.rand(2, 19) * 24
    expected = apply_rope_1d_reference(x, rope_1d_angles(positions, 8, x.device))
    assert lean_enabled()
    assert torch.allclose(apply_rope_1d(x, positions).float(), expected.float(), rtol=1e-5, atol=1e-5)
    with reference_ops():
        assert torch.equal(apply_rope_1d(x, positions), expected)


def _attention(heads: int = 4, head_dim: int = 8, audio_dim: int = 6, seed: int = 5) -> AudioCrossAttention:
    torch.manual_seed(seed)
    module = AudioCrossAttention(heads * head_dim, audio_dim, heads).eval()
    for param in module.parameters():
        torch.nn.init.normal_(param, std=0.3)
    return module


@pytest.mark.parametrize("speakers", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_folded_audio_attention_equals_the_projection_path(speakers, dtype):
    module = _attention().to(dtype)
    frames, per_frame, tokens = 5, 7, 3 * speakers
    assert folding_pays(module.num_heads, tokens, module.num_heads * module.head_dim)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(1, frames * per_frame, 32, generator=gen).to(dtype)
    context = torch.randn(1, frames, tokens, 6, generator=gen).to(dtype)
    query_pos = key_pos = None
    if speakers == 2:
        query_pos = torch.rand(1, frames * per_frame, generator=gen) * 24
        key_pos = torch.tensor([2.0] * 3 + [22.0] * 3)
    with torch.no_grad():
        folded = module(x, context, query_pos, key_pos)
        with reference_ops():
            reference = module(x, context, query_pos, key_pos)
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    assert rel_l2(folded, reference) < tolerance


def test_folding_is_skipped_when_it_would_cost_more():
    assert not folding_pays(40, 128, 5120)
    assert folding_pays(40, 64, 5120)
    assert folding_pays(40, 32, 5120)


@pytest.mark.parametrize("speakers", [1, 2])
def test_lean_model_forward_matches_reference_forward(speakers):
    model = tiny_model()
    inputs = tiny_inputs(model, speakers=speakers)
    lean = predict(model, inputs)
    with reference_ops():
        reference = predict(model, inputs)
    assert rel_l2(lean, reference) < 1e-5


def test_ffn_token_chunks_do_not_change_the_output():
    model = tiny_model()
    inputs = tiny_inputs(model, speakers=2)
    for block in model.blocks:
        block.ffn_chunk_tokens = 10**9
    whole = predict(model, inputs)
    for block in model.blocks:
        block.ffn_chunk_tokens = 5  # 72 tokens: 15 uneven chunks
    assert rel_l2(predict(model, inputs), whole) < 1e-6


def test_lean_block_never_writes_its_input():
    model = tiny_model()
    inputs = tiny_inputs(model, speakers=2)
    seen = []
    model.blocks[1].register_forward_pre_hook(lambda _m, args: seen.append((args[0], args[0].clone())))
    predict(model, inputs)
    original, snapshot = seen[0]
    assert torch.equal(original, snapshot)


def test_bf16_lean_forward_stays_within_bf16_noise_of_reference():
    model = tiny_model().to(torch.bfloat16)
    inputs = {k: (v.to(torch.bfloat16) if torch.is_floating_point(v) and k != "timestep" else v)
              for k, v in tiny_inputs(model, speakers=2).items()}
    lean = predict(model, inputs)
    with reference_ops():
        reference = predict(model, inputs)
    assert torch.isfinite(lean).all()
    assert rel_l2(lean, reference) < 2e-2
    assert F.cosine_similarity(lean.flatten().double(), reference.flatten().double(), dim=0) > 0.999
