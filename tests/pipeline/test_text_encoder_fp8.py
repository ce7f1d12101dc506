"""`low` on a PC short of RAM loads the UMT5 text encoder with its Linear weights stored in scaled
fp8 (converted tensor by tensor from the shards, so host RAM never holds it in bf16); with the RAM
free, and in every other profile, it loads in the compute dtype. Real loading code on the engine's tiny models, on the CPU.

Tolerances (measured on these tiny models):
* the fp8-stored encoder's hidden states are within 8 % relative L2 of the compute-dtype
  encoder's (measured 4.1 % and 5.1 % for the prompts below in float32 compute, 4.5 % and 5.4 %
  in bfloat16);
* a one-clip `low` job's final latents are within 2 % of the `fp8` profile's, whose transformer is
  the same and whose text encoder is not fp8 (measured 0.46 %).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from multitalk_desktop.engine import encoders
from multitalk_desktop.engine.devices import DevicePlan
from multitalk_desktop.engine.engine import MultiTalkEngine
from multitalk_desktop.engine.fp8 import FP8_STORAGE, is_fp8_enabled
from multitalk_desktop.engine.loaders import load_text_encoder, load_tokenizer
from multitalk_desktop.engine.manifest import WAN_FOLDER
from multitalk_desktop.engine.offload import on_device

from .helpers import run_job

PROMPTS = ("A person is talking.", "Two friends chat in a sunny kitchen, smiling and nodding.")
FP8_ENCODER_MAX_REL_DIFF = 0.08
LOW_VS_FP8_LATENTS_MAX_REL_DIFF = 0.02


# Free host RAM when a 32 GB PC running `low` loads UMT5 (its transformer already pinned).
TIGHT_RAM_GIB = 8.0


def cpu_plan(profile: str, dtype: str = "float32", host_ram_gib: float = TIGHT_RAM_GIB) -> DevicePlan:
    return DevicePlan("cpu", dtype, "float32", profile, host_ram_gib=host_ram_gib)


def rel_l2(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.double() - reference.double()).norm() / reference.double().norm())


@pytest.fixture(scope="module")
def wan(tiny_models) -> Path:
    return tiny_models / WAN_FOLDER


def hidden_states(model, tokenizer, text: str) -> torch.Tensor:
    batch = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        return model(batch.input_ids, batch.attention_mask).last_hidden_state


def test_low_stores_linear_weights_in_fp8_and_keeps_embeddings_and_norms_in_the_compute_dtype(wan):
    model = load_text_encoder(wan, cpu_plan("low"))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == FP8_STORAGE for m in linears)
    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    assert len(embeddings) >= 3  # shared / embed_tokens and the relative attention biases
    assert all(m.weight.dtype == torch.float32 for m in embeddings)
    norms = [p for name, p in model.named_parameters() if "norm" in name]
    assert norms and all(p.dtype == torch.float32 for p in norms)
    assert not any(p.is_meta for _, p in model.named_parameters(remove_duplicate=False))


def test_low_keeps_the_tied_embedding_one_loaded_tensor(wan):
    low = load_text_encoder(wan, cpu_plan("low"))
    full = load_text_encoder(wan, cpu_plan("full"))
    # The checkpoint holds it once, as shared.weight; the encoder looks tokens up in embed_tokens.
    assert low.encoder.embed_tokens.weight is low.shared.weight
    assert torch.equal(low.shared.weight, full.shared.weight)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fp8_encoder_output_stays_close_to_the_compute_dtype_encoder(wan, dtype):
    tokenizer = load_tokenizer(wan)
    low = load_text_encoder(wan, cpu_plan("low", dtype))
    full = load_text_encoder(wan, cpu_plan("full", dtype))
    for prompt in PROMPTS:
        fp8, reference = hidden_states(low, tokenizer, prompt), hidden_states(full, tokenizer, prompt)
        assert fp8.dtype == reference.dtype == getattr(torch, dtype)
        diff = rel_l2(fp8, reference)
        assert 0 < diff < FP8_ENCODER_MAX_REL_DIFF, (prompt, diff)


@pytest.mark.parametrize("profile", ["full", "fp8", "balanced"])
def test_other_profiles_load_the_text_encoder_in_the_compute_dtype(wan, profile):
    model = load_text_encoder(wan, cpu_plan(profile))
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_low_keeps_the_text_encoder_precise_where_the_ram_is_free(wan):
    model = load_text_encoder(wan, cpu_plan("low", host_ram_gib=40.0))
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_fp8_encoder_streamed_leaf_by_leaf_gives_the_output_it_gives_whole(wan):
    tokenizer = load_tokenizer(wan)
    whole = hidden_states(load_text_encoder(wan, cpu_plan("low")), tokenizer, PROMPTS[1])
    model = load_text_encoder(wan, cpu_plan("low"))
    with on_device([model], "cpu", force_stream=True):  # how an 8 GB card gets it
        streamed = hidden_states(model, tokenizer, PROMPTS[1])
    assert model._multitalk_streamed
    assert torch.equal(streamed, whole)


def test_a_low_job_encodes_its_prompts_in_fp8_and_lands_near_the_fp8_profile(tiny_models, voices, tmp_path, monkeypatch):
    fp8_encoder_used: list[bool] = []
    latents: list[torch.Tensor] = []
    encode_prompt, decode_latents = encoders.encode_prompt, encoders.decode_latents

    def recording_encode(models, text):
        fp8_encoder_used.append(is_fp8_enabled(models.text_encoder))
        return encode_prompt(models, text)

    def recording_decode(models, latent):
        latents.append(latent.detach().clone())
        return decode_latents(models, latent)

    monkeypatch.setattr(encoders, "encode_prompt", recording_encode)
    monkeypatch.setattr(encoders, "decode_latents", recording_decode)
    for profile in ("low", "fp8"):
        engine = MultiTalkEngine.load(tiny_models, profile=profile, device="cpu", resources=(6.0, TIGHT_RAM_GIB))
        try:
            run = run_job(engine, tmp_path, [voices["man"]], name=profile)
            assert Path(run.result.output_path).is_file()
            says_8_bits = any("text encoder stored in 8 bits" in note for note in run.result.notes)
            assert says_8_bits == (profile == "low")
        finally:
            engine.close()
    assert fp8_encoder_used == [True, True, False, False]  # prompt and negative prompt per job
    low, fp8 = latents
    diff = rel_l2(low, fp8)
    assert 0 < diff < LOW_VS_FP8_LATENTS_MAX_REL_DIFF, diff
