"""Official checkpoint names -> the diffusers-based MultiTalk model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from multitalk_desktop.engine.transformer import MultiTalkTransformer3DModel
from multitalk_desktop.engine.weights import (
    convert_official_backbone_keys,
    load_official_state_dict,
    model_config_from_official,
)
from multitalk_desktop.errors import ModelFilesError
from tests.engine.fixture_cases import FIXTURES


@pytest.fixture(scope="module")
def official_params() -> dict[str, torch.Tensor]:
    stored = load_file(str(FIXTURES / "transformer_common.safetensors"))
    return {k[len("param."):]: v.float() for k, v in stored.items() if k.startswith("param.")}


@pytest.fixture(scope="module")
def fixture_config() -> dict:
    return model_config_from_official(json.loads((FIXTURES / "transformer_common.json").read_text()))


def test_every_official_fixture_key_loads_strictly(official_params, fixture_config):
    model = MultiTalkTransformer3DModel(**fixture_config)
    result = load_official_state_dict(model, official_params, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert set(model.state_dict()) == set(convert_official_backbone_keys(official_params))
    loaded = model.state_dict()
    assert torch.equal(loaded["blocks.1.audio_cross_attn.kv_linear.weight"],
                       official_params["blocks.1.audio_cross_attn.kv_linear.weight"])
    assert torch.equal(loaded["blocks.0.norm2.weight"], official_params["blocks.0.norm3.weight"])


def test_config_from_official_takes_every_size(fixture_config):
    assert fixture_config["num_attention_heads"] == 2
    assert fixture_config["attention_head_dim"] == 32
    assert fixture_config["num_layers"] == 2
    assert fixture_config["text_len"] == 16
    assert (fixture_config["audio_blocks"], fixture_config["audio_channels"]) == (2, 16)
    assert (fixture_config["intermediate_dim"], fixture_config["output_dim"]) == (32, 24)
    assert fixture_config["context_tokens"] == 4
    assert fixture_config["in_channels"] == 36 and fixture_config["added_kv_proj_dim"] == 64


def test_conversion_renames_backbone_and_leaves_audio_keys_alone():
    official = {
        "blocks.0.self_attn.q.weight": 1,
        "blocks.0.self_attn.o.bias": 2,
        "blocks.3.cross_attn.k_img.weight": 3,
        "blocks.3.cross_attn.norm_k_img.weight": 4,
        "blocks.3.cross_attn.k.weight": 5,
        "blocks.0.norm3.weight": 6,
        "blocks.0.ffn.2.bias": 7,
        "blocks.0.modulation": 8,
        "head.head.weight": 9,
        "head.modulation": 10,
        "img_emb.proj.1.weight": 11,
        "time_projection.1.bias": 12,
        "blocks.0.audio_cross_attn.q_linear.weight": 13,
        "blocks.0.audio_cross_attn.kv_linear.bias": 14,
        "blocks.12.audio_cross_attn.proj.weight": 15,
        "blocks.0.norm_x.weight": 16,
        "audio_proj.proj1_vf.weight": 17,
        "audio_proj.norm.bias": 18,
        "model.diffusion_model.text_embedding.2.weight": 19,
    }
    converted = convert_official_backbone_keys(official)
    assert converted == {
        "blocks.0.attn1.to_q.weight": 1,
        "blocks.0.attn1.to_out.0.bias": 2,
        "blocks.3.attn2.add_k_proj.weight": 3,
        "blocks.3.attn2.norm_added_k.weight": 4,
        "blocks.3.attn2.to_k.weight": 5,
        "blocks.0.norm2.weight": 6,
        "blocks.0.ffn.net.2.bias": 7,
        "blocks.0.scale_shift_table": 8,
        "proj_out.weight": 9,
        "scale_shift_table": 10,
        "condition_embedder.image_embedder.ff.net.0.proj.weight": 11,
        "condition_embedder.time_proj.bias": 12,
        "blocks.0.audio_cross_attn.q_linear.weight": 13,
        "blocks.0.audio_cross_attn.kv_linear.bias": 14,
        "blocks.12.audio_cross_attn.proj.weight": 15,
        "blocks.0.norm_x.weight": 16,
        "audio_proj.proj1_vf.weight": 17,
        "audio_proj.norm.bias": 18,
        "condition_embedder.text_embedder.linear_2.weight": 19,
    }


def test_strict_load_names_missing_and_unexpected_keys(official_params, fixture_config):
    model = MultiTalkTransformer3DModel(**fixture_config)
    broken = dict(official_params)
    del broken["blocks.1.norm_x.weight"]
    broken["blocks.1.audio_attn2.q_linear.weight"] = torch.zeros(1)
    with pytest.raises(ModelFilesError, match="1 missing .*norm_x.*1 unexpected"):
        load_official_state_dict(model, broken, strict=True)
