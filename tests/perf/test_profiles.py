"""Memory profiles: the auto choice, and each profile's output against `full` on a tiny model on
the CPU (the same hooks run as on a GPU, without CUDA streams).

Tolerances: offloading moves weights, it must not change a single value (exact equality).
fp8 storage rounds every big weight to 3 mantissa bits: on these tiny random models the
prediction moves by 1-5 % (relative L2) from `full`; the bound is 15 %, and it must move at all
(else fp8 was not applied)."""

from __future__ import annotations

import pytest
import torch

from multitalk_desktop.engine.fp8 import FP8_STORAGE, fp8_bytes
from multitalk_desktop.engine.profiles import (
    PROFILE_ORDER,
    PROFILES,
    apply_profile,
    choose_profile,
    explain_choice,
    latent_tokens,
    required_host_ram_gib,
    required_vram_gib,
    resolve_profile,
    threshold_table,
)
from tests.perf.tiny import predict, rel_l2, tiny_inputs, tiny_model

FP8_MAX_REL_DIFF = 0.15


@pytest.mark.parametrize(
    "free_vram, host_ram, resolution, expected",
    [
        (79.0, 120.0, "480p", "full"),  # H100 / A100-80
        (47.0, 64.0, "480p", "full"),  # 48 GB card with nothing else on it (full peaks at 46.2)
        (44.0, 64.0, "480p", "fp8"),  # 48 GB card with a desktop on it
        (47.0, 64.0, "720p", "fp8"),  # 720p needs more for activations and the VAE
        (24.0, 32.0, "480p", "fp8"),  # fp8 peaks at 20.4 GiB (measured)
        (23.2, 32.0, "480p", "fp8"),  # 24 GB card (RTX 4090) with a desktop on it
        (23.2, 32.0, "720p", "low"),  # same card at 720p, 32 GB RAM: fp8 needs 23.9
        (23.2, 64.0, "720p", "balanced"),  # same card at 720p, 64 GB RAM
        (15.0, 64.0, "480p", "balanced"),  # 16 GB card, 64 GB RAM
        (15.0, 32.0, "480p", "low"),  # same card, 32 GB RAM: bf16 blocks do not fit in RAM
        (7.6, 32.0, "480p", "low"),  # 8 GB card, 32 GB PC
        (4.0, 16.0, "480p", "low"),  # below everything: still low (may run out of memory)
        (30.0, 8.0, "480p", "fp8"),  # little RAM: the first profile that fits the VRAM
    ],
)
def test_choose_profile_table(free_vram, host_ram, resolution, expected):
    assert choose_profile(free_vram, host_ram, resolution) == expected


def test_thresholds_are_ordered_and_match_the_targets():
    for res in ("480p", "720p", "1024x576"):
        needs = [required_vram_gib(p, res) for p in PROFILE_ORDER]
        assert needs == sorted(needs, reverse=True), res
    # The peak targets at 480p (plus 1 GiB headroom) must admit the profile.
    assert required_vram_gib("fp8", "480p") <= 24.0
    assert required_vram_gib("balanced", "480p") <= 8.0 + 1.0 + 0.5
    assert required_vram_gib("low", "480p") <= 8.0
    assert required_host_ram_gib("low") <= 28.0
    assert required_host_ram_gib("balanced") > required_host_ram_gib("low")
    assert [row["profile"] for row in threshold_table()] == list(PROFILE_ORDER)
    assert latent_tokens("480p") == 32_760 and latent_tokens("720p") == 75_600


def test_explain_and_resolve():
    assert "swapping" in explain_choice(30.0, 8.0).reason
    assert resolve_profile("fp8", "cpu").profile == "fp8"
    assert resolve_profile("auto", "cpu").profile == "full"
    with pytest.raises(ValueError):
        resolve_profile("huge", "cpu")
    with pytest.raises(ValueError):
        choose_profile(10, 10, "480i")


@pytest.fixture(scope="module")
def reference():
    model = tiny_model()
    outputs = {}
    for speakers in (1, 2):
        inputs = tiny_inputs(model, speakers)
        outputs[speakers] = predict(model, inputs)
    return outputs


@pytest.mark.parametrize("profile", ["full", "balanced"])
def test_bf16_profiles_reproduce_full_exactly(profile, reference):
    model = tiny_model()
    applied = apply_profile(model, profile, "cpu")
    assert applied.name == profile
    for speakers in (1, 2):
        inputs = tiny_inputs(model, speakers)
        assert torch.equal(predict(model, inputs), reference[speakers]), (profile, speakers)
        # A second call (offload hooks warmed up, K/V cache hit) must not change anything either.
        assert torch.equal(predict(model, inputs), reference[speakers]), (profile, speakers)


@pytest.mark.parametrize("profile", ["fp8", "low"])
def test_fp8_profiles_stay_within_tolerance(profile, reference):
    model = tiny_model()
    apply_profile(model, profile, "cpu")
    fp8, _ = fp8_bytes(model)
    assert fp8 > 0
    # Norms, the condition embedder and the audio projection keep their precision.
    for name, param in model.named_parameters():
        if "norm" in name or name.startswith(("audio_proj", "condition_embedder", "patch_embedding")):
            assert param.dtype != FP8_STORAGE, name
    assert model.blocks[0].audio_cross_attn.q_linear.weight.dtype == FP8_STORAGE
    for speakers in (1, 2):
        out = predict(model, tiny_inputs(model, speakers))
        diff = rel_l2(out, reference[speakers])
        assert torch.isfinite(out).all()
        assert 0 < diff < FP8_MAX_REL_DIFF, (profile, speakers, diff)


def test_low_matches_fp8_exactly():
    """Offloading the fp8 model adds no error of its own."""
    resident, streamed = tiny_model(), tiny_model()
    apply_profile(resident, "fp8", "cpu")
    apply_profile(streamed, "low", "cpu")
    inputs = tiny_inputs(resident, 2)
    assert torch.equal(predict(resident, inputs), predict(streamed, inputs))


def test_offload_keeps_the_top_level_resident_and_registers_block_groups():
    model = tiny_model()
    applied = apply_profile(model, "balanced", "cpu")
    assert applied.offload is not None
    assert applied.offload.groups == len(model.blocks) + 1
    assert applied.offload.resident_top_level and not applied.offload.streamed
    # project_audio runs outside forward (once per clip): the top level must be usable directly.
    inputs = tiny_inputs(model, 2)
    context = model.project_audio(inputs["audio"])
    assert context.shape[2] == 2 * model.config.context_tokens


def test_other_modules_are_parked_and_brought_back(monkeypatch):
    moves = []

    class Encoder(torch.nn.Linear):
        def to(self, *args, **kwargs):
            moves.append(str(args[0]) if args else str(kwargs.get("device")))
            return super().to(*args, **kwargs)

    class Vae(Encoder):
        tiled = False

        def enable_tiling(self):
            self.tiled = True

    encoder, vae = Encoder(2, 2), Vae(2, 2)
    applied = apply_profile(tiny_model(), "fp8", "cpu", other_modules=[encoder, vae, None])
    assert vae.tiled and PROFILES["fp8"].vae_tiling
    assert moves == ["cpu", "cpu"]
    with applied.using(encoder):
        pass
    assert moves[2:] == ["cpu"]  # on the CPU nothing needs to go back
