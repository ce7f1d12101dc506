"""The optional step cache (FirstBlockCache on the MultiTalk blocks): it skips work only when the
first block's residual barely moves, and its effect on a short three-pass denoising run is
measured against the uncached run and bounded."""

from __future__ import annotations

import torch

from multitalk_desktop.engine.step_cache import (
    DEFAULT_THRESHOLD,
    disable_step_cache,
    enable_step_cache,
    guidance_pass,
    reset_step_cache,
    step_cache_enabled,
)
from tests.perf.tiny import rel_l2, tiny_inputs, tiny_model

STEPS = 8
# Measured on this tiny model (docs/PERFORMANCE.md): at the default threshold 0.05 the cache skips
# most passes after the first steps and moves the final latents by under 1 % (relative L2).
THRESHOLD = DEFAULT_THRESHOLD
MAX_REL_DIFF = 0.05


def _denoise(model, inputs: dict) -> torch.Tensor:
    """Euler loop with MultiTalk's three guidance passes, timesteps slowly decreasing."""
    audio = model.project_audio(inputs["audio"])
    null = model.project_audio(torch.zeros_like(inputs["audio"][:1]))
    latents = inputs["hidden_states"][:, : model.config.out_channels].clone()
    condition = inputs["hidden_states"][:, model.config.out_channels:]
    sigmas = torch.linspace(1.0, 0.3, STEPS + 1)
    negative = torch.zeros_like(inputs["encoder_hidden_states"])
    for i in range(STEPS):
        preds = {}
        for name, text, context in (("cond", inputs["encoder_hidden_states"], audio),
                                    ("drop_text", negative, audio), ("uncond", negative, null)):
            with guidance_pass(model, name, step_index=i), torch.no_grad():
                preds[name] = model(
                    torch.cat([latents, condition], 1), sigmas[i : i + 1] * 1000, text,
                    encoder_hidden_states_image=inputs["encoder_hidden_states_image"],
                    audio_context=context, ref_target_masks=inputs["ref_target_masks"],
                ).sample
        pred = preds["uncond"] + 5 * (preds["cond"] - preds["drop_text"]) + 4 * (preds["drop_text"] - preds["uncond"])
        latents = latents + (sigmas[i + 1] - sigmas[i]) * pred
    return latents


def test_step_cache_effect_is_measured_and_bounded():
    inputs = tiny_inputs(tiny_model(), 2)
    reference = _denoise(tiny_model(), inputs)

    model = tiny_model()
    stats = enable_step_cache(model, threshold=THRESHOLD)
    assert step_cache_enabled(model)
    cached = _denoise(model, inputs)
    diff = rel_l2(cached, reference)
    assert stats.total_computed + stats.total_skipped == 3 * STEPS
    assert set(stats.computed) == {"cond", "drop_text", "uncond"}  # each pass keeps its own state
    assert stats.total_skipped > 0, "the cache never engaged"
    assert 0 < diff < MAX_REL_DIFF, diff

    # A new clip starts from scratch; disabling restores the exact uncached result.
    reset_step_cache(model)
    disable_step_cache(model)
    assert not step_cache_enabled(model)
    assert torch.equal(_denoise(model, inputs), reference)


def test_zero_threshold_never_skips():
    inputs = tiny_inputs(tiny_model(), 1)
    reference = _denoise(tiny_model(), inputs)
    model = tiny_model()
    stats = enable_step_cache(model, threshold=0.0)
    assert torch.equal(_denoise(model, inputs), reference)
    assert stats.total_skipped == 0
