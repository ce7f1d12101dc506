"""Fast paths the engine relies on: no speaker-map work for one voice, no audio projection inside
the step loop when the clip's audio context is passed, the attention backend choice, and the
regional-compile helper (wired, not run: compiling takes minutes on these CPUs)."""

from __future__ import annotations

import pytest
import torch

import multitalk_desktop.engine.transformer as transformer_module
from multitalk_desktop.engine.attention_backend import (
    NATIVE,
    apply_backend,
    available_backends,
    choose_backend,
)
from multitalk_desktop.engine.compile import compile_blocks
from tests.perf.tiny import predict, tiny_inputs, tiny_model


@pytest.mark.parametrize("speakers, maps_per_forward", [(1, 0), (2, None)])
def test_reference_attention_map_runs_only_for_two_voices(monkeypatch, speakers, maps_per_forward):
    calls = []
    original = transformer_module.reference_attention_map

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformer_module, "reference_attention_map", counting)
    model = tiny_model()
    predict(model, tiny_inputs(model, speakers))
    expected = len(model.blocks) if maps_per_forward is None else maps_per_forward
    assert len(calls) == expected


def test_audio_projection_is_skipped_when_the_context_is_passed():
    model = tiny_model()
    calls = []
    model.audio_proj.register_forward_hook(lambda *_: calls.append(1))
    inputs = tiny_inputs(model, 2)
    context = model.project_audio(inputs["audio"])
    assert len(calls) == 1
    for _ in range(3):  # three steps of one clip
        predict(model, inputs, context)
    assert len(calls) == 1


def test_attention_backend_choice():
    names = available_backends()
    assert names[-1] == NATIVE
    assert choose_backend("cpu") == NATIVE  # fused kernels need CUDA
    assert choose_backend("cuda") in names
    model = tiny_model()
    inputs = tiny_inputs(model, 2)
    expected = predict(model, inputs)
    try:
        assert apply_backend(model, NATIVE) == NATIVE
        assert torch.equal(predict(model, inputs), expected)
        # A backend whose package is missing falls back to native instead of failing the job.
        if "flash" not in names:
            assert apply_backend(model, "flash") == NATIVE
    finally:
        model.reset_attention_backend()
        apply_backend(model, NATIVE)


def test_compile_blocks_compiles_the_repeated_block(monkeypatch):
    model = tiny_model()
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append((type(self).__name__, kw)))
    assert compile_blocks(model)
    assert [name for name, _ in compiled] == ["MultiTalkTransformerBlock"] * len(model.blocks)
    assert compiled[0][1] == {"fullgraph": False, "dynamic": False, "backend": "inductor"}
