"""The loaded engine routes attention through the best exact kernel the machine has: PyTorch's
SDPA on the CPU (fused kernels need CUDA), and the model's processors agree."""

from __future__ import annotations


def test_loaded_engine_uses_native_sdpa_on_the_cpu(engine):
    assert engine.attention_backend == "native"
    backends = {
        getattr(module.processor, "_attention_backend", None)
        for module in engine.models.transformer.modules()
        if hasattr(module, "processor")
    }
    assert backends <= {None, "native"}
