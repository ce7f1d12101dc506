"""Scaled fp8 weight storage: one power-of-two scale per tensor keeps small weights out of e4m3's
subnormals, dequantises exactly, and survives loading and LoRA round trips bit for bit."""

from __future__ import annotations

import pytest
import torch
from accelerate import init_empty_weights

from multitalk_desktop.engine.fp8 import (
    FP8_STORAGE,
    Fp8Linear,
    compute_weight,
    enable_fp8_storage,
    fp8_parameter_owner,
    load_fp8_weight,
    quantize,
)
from tests.perf.tiny import TINY, predict, rel_l2, tiny_inputs, tiny_model


def _error(weight: torch.Tensor, scaled: bool) -> float:
    if scaled:
        quantized, scale = quantize(weight, torch.float32)
        restored = quantized.float() * scale
    else:
        restored = weight.to(FP8_STORAGE).float()
    return float((restored - weight).norm() / weight.norm())


@pytest.mark.parametrize("std, unscaled_at_least", [(0.014, 0.04), (0.002, 0.2)])
def test_scaling_keeps_small_weights_precise(std, unscaled_at_least):
    # std 0.014: a 5120-wide layer at init scale; 0.002: UMT5-XXL's query projections.
    weight = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0)) * std
    assert _error(weight, scaled=False) > unscaled_at_least
    assert _error(weight, scaled=True) < 0.03


def test_power_of_two_scale_dequantises_exactly_and_requantises_to_the_same_bits():
    weight = torch.randn(64, 48, generator=torch.Generator().manual_seed(1)) * 0.01
    quantized, scale = quantize(weight, torch.bfloat16)
    assert scale == 2.0 ** round(torch.log2(torch.tensor(scale)).item())
    dequantised = quantized.to(torch.bfloat16) * scale
    assert torch.equal(dequantised.float(), quantized.float() * scale)  # exact in bf16
    again, scale_again = quantize(dequantised, torch.bfloat16)
    assert scale_again == scale and torch.equal(again.view(torch.uint8), quantized.view(torch.uint8))


def test_enabled_model_computes_close_to_full_and_keeps_skipped_layers():
    model = tiny_model()
    inputs = tiny_inputs(model, speakers=2)
    full = predict(model, inputs)
    enable_fp8_storage(model, torch.float32)
    block = model.blocks[0]
    assert isinstance(block.ffn.net[0].proj, Fp8Linear) and block.attn1.to_q.weight.dtype == FP8_STORAGE
    assert block.attn1.to_q.bias.dtype == torch.float32  # biases stay in the compute dtype
    assert not isinstance(model.audio_proj.proj1, Fp8Linear) and not isinstance(model.proj_out, Fp8Linear)
    diff = rel_l2(predict(model, inputs), full)
    assert 0 < diff < 0.05, diff


def test_loading_into_an_empty_fp8_model_equals_enabling_after_loading():
    source = tiny_model()
    enabled = tiny_model()
    enable_fp8_storage(enabled, torch.float32)
    with init_empty_weights():
        from multitalk_desktop.engine.transformer import MultiTalkTransformer3DModel

        empty = MultiTalkTransformer3DModel(**TINY)
    enable_fp8_storage(empty, torch.float32)
    for name, tensor in source.state_dict().items():
        owner = fp8_parameter_owner(empty, name)
        if owner is not None:
            load_fp8_weight(owner, tensor, "cpu")
        else:
            from accelerate.utils import set_module_tensor_to_device

            set_module_tensor_to_device(empty, name, "cpu", value=tensor)
    for name, module in enabled.named_modules():
        if isinstance(module, Fp8Linear):
            other = empty.get_submodule(name)
            assert torch.equal(other.fp8_scale, module.fp8_scale), name
            assert torch.equal(compute_weight(other, torch.float32), compute_weight(module, torch.float32)), name


def test_the_scale_is_a_buffer_so_offloading_moves_it_and_compiled_blocks_take_it_as_input():
    model = tiny_model()
    enable_fp8_storage(model, torch.float32)
    layer = model.blocks[0].attn1.to_q
    buffers = dict(layer.named_buffers())
    assert set(buffers) == {"fp8_scale"} and buffers["fp8_scale"].dtype == torch.float32
    assert buffers["fp8_scale"].ndim == 0 and float(buffers["fp8_scale"]) > 0


def test_lora_merge_and_restore_return_the_original_fp8_bits(tmp_path):
    from safetensors.torch import save_file

    from multitalk_desktop.engine.lora import merge_lora, restore_params

    model = tiny_model()
    original = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    enable_fp8_storage(model, torch.float32)
    target = model.blocks[0].attn1.to_q
    before = (target.weight.detach().clone(), target.fp8_scale.clone())
    generator = torch.Generator().manual_seed(2)
    lora = tmp_path / "lora.safetensors"
    save_file({
        "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.randn(2, 16, generator=generator),
        "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.randn(16, 2, generator=generator),
    }, str(lora))
    merged = merge_lora(model, lora, scale=1.0)
    assert merged.params == ["blocks.0.attn1.to_q.weight"]
    assert not torch.equal(target.weight.view(torch.uint8), before[0].view(torch.uint8))
    restore_params(model, merged.params, lambda names: [(n, original[n]) for n in names])
    assert torch.equal(target.fp8_scale, before[1])
    assert torch.equal(target.weight.view(torch.uint8), before[0].view(torch.uint8))
