"""The fused (attention-with-mask-values) reference-attention map computes the model's map."""

from __future__ import annotations

import pytest
import torch

from multitalk_desktop.engine.ref_map import fused_reference_map, reference_attention_map_fused
from multitalk_desktop.engine.transformer import (
    reference_attention_map_explicit as reference_attention_map,
)
from tests.perf.tiny import predict, rel_l2, tiny_inputs, tiny_model


@pytest.mark.parametrize("heads, split", [(4, 2), (5, 2), (3, 1)])
def test_fused_map_matches_the_reference_in_fp32(heads, split):
    gen = torch.Generator().manual_seed(heads)
    frame_tokens, frames, dim = 12, 3, 16
    query = torch.randn(2, frame_tokens * frames, heads, dim, generator=gen)
    key = torch.randn(2, frame_tokens * frames, heads, dim, generator=gen)
    masks = torch.zeros(3, frame_tokens)
    masks[0, :5] = 1
    masks[1, 6:] = 1
    masks[2] = 1 - masks[0] - masks[1]
    expected = reference_attention_map(query, key, frame_tokens, masks, split)
    fused = reference_attention_map_fused(query, key, frame_tokens, masks, split)
    assert fused.shape == expected.shape == (2, 3, frame_tokens * frames)
    torch.testing.assert_close(fused, expected, atol=1e-6, rtol=1e-5)


def test_empty_class_gives_zeros():
    query = key = torch.randn(1, 8, 2, 8)
    masks = torch.zeros(3, 4)
    masks[0] = 1
    out = reference_attention_map_fused(query, key, 4, masks)
    assert torch.equal(out[:, 1:], torch.zeros_like(out[:, 1:]))


def test_swapping_it_into_the_model_keeps_the_prediction():
    model = tiny_model()
    inputs = tiny_inputs(model, 2)
    expected = predict(model, inputs)
    with fused_reference_map():
        fused = predict(model, inputs)
    assert rel_l2(fused, expected) < 1e-5
    assert torch.equal(predict(model, inputs), expected)  # restored afterwards
