"""Compiled mode on the CPU: asked for, it leaves the model eager and says why; blocks traced by
dynamo give the same video as eager ones; compiled blocks whose compiler fails at the first forward
turn into an eager run of the same job, never a lost one. (The GPU speed-up is not measured here:
inductor's code for a GPU needs one.)"""

from __future__ import annotations

import numpy as np
import pytest

from multitalk_desktop.engine.compile import turn_on, uncompile_blocks
from multitalk_desktop.media.video import extract_frames

from .helpers import run_job


def compiled_modules(transformer) -> list:
    return [m for m in transformer.modules() if getattr(m, "_compiled_call_impl", None) is not None]


def some_frames(path) -> np.ndarray:
    return np.stack(extract_frames(path, [0.0, 0.3, 0.6, 0.9]))


@pytest.fixture
def fresh_engine(tiny_models):
    """An engine of its own: these tests change its compiled state."""
    from multitalk_desktop.engine.engine import MultiTalkEngine

    engine = MultiTalkEngine.load(tiny_models, device="cpu")
    yield engine
    uncompile_blocks(engine.models.transformer)  # and drop dynamo's cached graphs
    engine.close()


def test_compile_asked_for_on_the_cpu_keeps_the_model_eager_and_says_why(tiny_models):
    from multitalk_desktop.jobs.engines import make_engine

    engine = make_engine("real", tiny_models, device="cpu", compile_blocks=True)
    try:
        assert engine.compiled is False
        assert "needs an NVIDIA GPU" in engine.compile_note and "CPU" in engine.compile_note
        assert compiled_modules(engine.models.transformer) == []
    finally:
        engine.close()


def test_an_engine_without_compile_has_no_compile_note(engine):
    assert engine.compiled is False and engine.compile_note is None


def test_a_compile_failure_at_the_first_forward_runs_the_job_eager_and_turns_compiled_mode_off(
        fresh_engine, engine, voices, tmp_path):
    calls = []

    def no_compiler(graph, example_inputs):  # what a machine without a C compiler or Triton does
        calls.append(graph)
        raise RuntimeError("no C compiler found")

    # What load(compile_blocks=True) does on a GPU, with a backend that fails like a broken toolchain.
    fresh_engine.pipeline.compile_mode = turn_on(fresh_engine.models.transformer, backend=no_compiler)
    assert fresh_engine.compiled and compiled_modules(fresh_engine.models.transformer)

    run = run_job(fresh_engine, tmp_path, [voices["woman"]], name="fallback")

    assert run.output.exists()
    assert len(calls) == 1  # compiled once, failed, and every later forward ran eager
    assert fresh_engine.compiled is False
    assert compiled_modules(fresh_engine.models.transformer) == []
    turned_off = [n for n in run.result.notes if n.startswith("Compiled mode was turned off because")]
    assert len(turned_off) == 1 and "no C compiler found" in turned_off[0]
    eager = run_job(engine, tmp_path, [voices["woman"]], name="eager")
    assert np.array_equal(some_frames(run.output), some_frames(eager.output))  # the same video


def test_a_job_on_blocks_traced_by_dynamo_gives_the_same_video_as_eager(fresh_engine, engine, voices,
                                                                      tmp_path):
    # dynamo's "eager" backend: the real tracing, guards and graph breaks of the block, no codegen.
    fresh_engine.pipeline.compile_mode = turn_on(fresh_engine.models.transformer, backend="eager")

    run = run_job(fresh_engine, tmp_path, [voices["woman"]], name="traced")

    assert fresh_engine.compiled is True
    assert any(n.startswith("Compiled mode is on") for n in run.result.notes)
    eager = run_job(engine, tmp_path, [voices["woman"]], name="eager")
    assert np.array_equal(some_frames(run.output), some_frames(eager.output))


def test_an_error_that_is_not_the_compilers_fails_the_forward_and_keeps_compiled_mode():
    import torch

    from multitalk_desktop.engine.compile import CompileMode, forward_with_fallback

    mode = CompileMode(active=True, note="on")
    model = torch.nn.Linear(2, 2)
    for error in (ValueError("a bad input"), torch.OutOfMemoryError("CUDA out of memory")):
        def failing_forward(error=error):
            raise error

        with pytest.raises(type(error)):
            forward_with_fallback(mode, model, failing_forward)
        assert mode.active and mode.note == "on"
