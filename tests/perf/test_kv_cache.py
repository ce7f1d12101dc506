"""The per-clip audio K/V cache must not change the prediction, must actually be hit across steps,
and must miss whenever its input could differ."""

from __future__ import annotations

import pytest
import torch

from multitalk_desktop.engine.kv_cache import (
    clear_audio_kv_cache,
    enable_audio_kv_cache,
    get_audio_kv_cache,
)
from tests.perf.tiny import predict, tiny_inputs, tiny_model


@pytest.mark.parametrize("speakers", [1, 2])
def test_cached_steps_give_identical_predictions(speakers):
    plain, cached = tiny_model(), tiny_model()
    cache = enable_audio_kv_cache(cached)
    assert cache.layers == len(cached.blocks)
    inputs = tiny_inputs(plain, speakers)
    context = plain.project_audio(inputs["audio"])  # once per clip, reused by every step
    for step, t in enumerate((900.0, 600.0, 300.0)):
        inputs["timestep"] = torch.tensor([t])
        inputs["hidden_states"] = torch.randn_like(inputs["hidden_states"])
        expected = predict(plain, inputs, context)
        assert torch.equal(predict(cached, inputs, context), expected), step
    layers = len(cached.blocks)
    assert cache.stats.misses == layers  # first step only
    assert cache.stats.hits == 2 * layers
    assert cache.cached_bytes() > 0


def test_cache_keys_on_the_input_and_clears_per_clip():
    model = tiny_model()
    cache = enable_audio_kv_cache(model)
    assert enable_audio_kv_cache(model) is cache and get_audio_kv_cache(model) is cache
    inputs = tiny_inputs(model, 2)
    context = model.project_audio(inputs["audio"])
    null = model.project_audio(torch.zeros_like(inputs["audio"][:1]))
    layers = len(model.blocks)

    first = predict(model, inputs, context)
    predict(model, inputs, null)  # another context: its own entries
    assert cache.stats.misses == 2 * layers

    context.mul_(1.5)  # in place: the version counter changes, so the cache must miss
    changed = predict(model, inputs, context)
    assert cache.stats.misses == 3 * layers and not torch.equal(changed, first)

    same_values = context.clone()  # equal values, other storage: recomputed, same result
    assert torch.equal(predict(model, inputs, same_values), changed)
    assert cache.stats.misses == 4 * layers

    clear_audio_kv_cache(model)
    assert cache.cached_bytes() == 0
    predict(model, inputs, context)
    assert cache.stats.misses == 5 * layers


def test_lru_bound_and_remove():
    model = tiny_model()
    cache = enable_audio_kv_cache(model, max_entries=2)
    inputs = tiny_inputs(model, 1)
    contexts = [model.project_audio(torch.randn_like(inputs["audio"])) for _ in range(3)]
    for context in contexts:
        predict(model, inputs, context)
    assert all(len(hook.entries) == 2 for _, hook in cache._hooks)
    expected = predict(model, inputs, contexts[0])
    cache.remove()
    assert get_audio_kv_cache(model) is None
    assert torch.equal(predict(model, inputs, contexts[0]), expected)


def test_model_without_audio_attention_is_refused():
    with pytest.raises(ValueError):
        enable_audio_kv_cache(torch.nn.Linear(2, 2))
