"""wav2vec2 features at the video frame rate, against the official get_embedding fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from multitalk_desktop.engine.conformance.units_model import HANDLERS
from multitalk_desktop.engine.wav2vec import (
    build_wav2vec_model,
    encode_speech,
    load_wav2vec_state_dict,
    video_frame_count,
)
from multitalk_desktop.errors import ModelFilesError, MultiTalkError
from tests.engine.fixture_cases import FIXTURES, load_model_case

CASES = sorted(p.stem for p in FIXTURES.glob("wav2vec_*.json"))
TOL = 1e-5


def test_both_feature_extractor_settings_are_covered():
    settings = {json.loads((FIXTURES / f"{s}.json").read_text())["feature_extractor"]["do_normalize"] for s in CASES}
    assert settings == {True, False}


@pytest.mark.parametrize("stem", CASES)
def test_wav2vec_case_matches_official_outputs(stem):
    case = load_model_case(stem)
    results = HANDLERS["wav2vec"](case)
    assert results.pop("__skipped__") == {}
    assert sorted(results) == sorted(k for k in case.tensors if k.startswith("out."))
    for name, value in results.items():
        reference = case.tensors[name].float()
        assert value.shape == reference.shape, name
        excess = (value - reference).abs() - (TOL + TOL * reference.abs())
        assert excess.max().item() <= 0, f"{name}: max error {(value - reference).abs().max().item():.3g}"


def _fixture_model(stem: str):
    case = load_model_case(stem)
    model = build_wav2vec_model(case.meta["config"])
    load_wav2vec_state_dict(model, {k[6:]: v for k, v in case.tensors.items() if k.startswith("param.")})
    return case, model


def test_frame_count_follows_audio_length_at_25_fps():
    case, model = _fixture_model(CASES[0])
    speech = case.tensors["in.speech"].numpy()[:16000 + 700]  # 1.04375 s -> 26 frames
    features = encode_speech(speech, model, case.meta["feature_extractor"])
    assert video_frame_count(len(speech)) == 26
    assert features.shape == (26, model.config.num_hidden_layers, model.config.hidden_size)


def test_normalisation_setting_changes_the_features():
    case, model = _fixture_model(CASES[0])
    speech = case.tensors["in.speech"].numpy()[:8000]
    plain = encode_speech(speech, model, {"do_normalize": False, "sampling_rate": 16000})
    normalised = encode_speech(speech, model, {"do_normalize": True, "sampling_rate": 16000})
    assert (plain - normalised).abs().max() > 1e-3


def test_audio_shorter_than_one_frame_is_rejected():
    _, model = _fixture_model(CASES[0])
    with pytest.raises(MultiTalkError, match="too short"):
        encode_speech(np.zeros(500, dtype=np.float32), model)


def test_old_weight_norm_names_load_and_wrong_keys_are_reported():
    case, model = _fixture_model(CASES[0])
    params = {k[6:]: v for k, v in case.tensors.items() if k.startswith("param.")}
    prefix = "encoder.pos_conv_embed.conv."
    params[prefix + "weight_g"] = params.pop(prefix + "parametrizations.weight.original0")
    params[prefix + "weight_v"] = params.pop(prefix + "parametrizations.weight.original1")
    load_wav2vec_state_dict(model, params, strict=True)
    params["encoder.layers.9.attention.k_proj.weight"] = torch.zeros(1)
    with pytest.raises(ModelFilesError, match="unexpected"):
        load_wav2vec_state_dict(model, params, strict=True)
