"""Optional regional torch.compile: compile the repeated transformer block once and reuse it for all
40, instead of compiling the whole model (minutes) or nothing.

Off by default: the first forward pays the compile (tens of seconds on a GPU), which only pays back
on long jobs, and compiled code needs a working C compiler/Triton on the user's machine. The
block's Python-side branches (one vs two speakers, step-cache hooks, offload hooks) cause
recompiles or graph breaks; `dynamic=False` keeps one graph per shape.

torch.compile is lazy: a missing compiler or Triton only shows at the first forward. So the
pipeline runs every transformer forward through `forward_with_fallback`, which turns a compile
failure into an eager rerun of that forward and leaves the model eager for good (until the engine
reloads), instead of failing the user's job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

log = logging.getLogger(__name__)

T = TypeVar("T")
_REASON_CHARS = 200  # the compiler's message can be pages long; the job's note keeps its start


@dataclass
class CompileMode:
    """Whether the transformer's blocks run compiled, and the sentence every job's notes carry
    about it (None when compiled mode was not asked for)."""

    active: bool = False
    note: str | None = None


def compile_blocks(model: torch.nn.Module, *, fullgraph: bool = False, dynamic: bool = False,
                   mode: str | None = None, backend: str | Callable = "inductor") -> bool:
    """Regionally compile `model`'s repeated blocks. Returns False (and leaves the model eager)
    where torch.compile is unavailable. `backend`: torch.compile's (tests pass one that fails)."""
    if not hasattr(torch, "compile"):
        return False
    kwargs = {"fullgraph": fullgraph, "dynamic": dynamic, "backend": backend}
    if mode:
        kwargs["mode"] = mode
    if hasattr(model, "compile_repeated_blocks") and getattr(model, "_repeated_blocks", None):
        model.compile_repeated_blocks(**kwargs)
        return True
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        log.warning("%s has no blocks to compile", type(model).__name__)
        return False
    for block in blocks:
        block.compile(**kwargs)
    return True


def compile_mode_for(model: torch.nn.Module, device: str) -> CompileMode:
    """What `MultiTalkEngine.load(compile_blocks=True)` gets: compiled blocks on a CUDA device,
    the model left eager (and the reason) elsewhere."""
    if not str(device).startswith("cuda"):
        return CompileMode(False, "Compiled mode is off: it needs an NVIDIA GPU, and this engine "
                                  "runs on the CPU.")
    return turn_on(model)


def turn_on(model: torch.nn.Module, backend: str | Callable = "inductor") -> CompileMode:
    """Compile the blocks with `backend`; a PyTorch that cannot leaves the model eager and says why."""
    try:
        compiled = compile_blocks(model, backend=backend)
    except Exception as err:  # noqa: BLE001 - e.g. a Python version torch.compile refuses
        uncompile_blocks(model)
        return CompileMode(False, f"Compiled mode is off: PyTorch could not set it up ({failure_reason(err)}).")
    if not compiled:
        return CompileMode(False, "Compiled mode is off: this PyTorch cannot compile the model.")
    return CompileMode(True, "Compiled mode is on: the first job after loading compiles the model, "
                             "so it starts slower.")


def forward_with_fallback(mode: CompileMode, model: torch.nn.Module, forward: Callable[[], T]) -> T:
    """`forward()`; when compiled mode is on and compiling fails, the model goes back to eager
    for good, `mode` says why, and the same forward runs again eagerly."""
    if not mode.active:
        return forward()
    try:
        return forward()
    except Exception as err:
        if not is_compile_failure(err):
            raise
        reason = failure_reason(err)
        log.warning("compiling the transformer blocks failed, running eager from now on: %s", reason)
        uncompile_blocks(model)
        mode.active = False
        mode.note = (f"Compiled mode was turned off because compiling the model failed ({reason}); "
                     "jobs run without it until the engine reloads.")
    return forward()


def uncompile_blocks(model: torch.nn.Module) -> None:
    """Undo `compile_blocks`: nn.Module.compile only sets `_compiled_call_impl`, and a module
    without one runs its plain forward. The reset drops dynamo's cached graphs and guards."""
    import torch._dynamo

    for module in model.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
    torch._dynamo.reset()


def is_compile_failure(err: BaseException) -> bool:
    """A dynamo/inductor/Triton error anywhere in the chain. Out-of-memory is not one: the
    engine reports it as such."""
    from torch._dynamo.exc import TorchDynamoException

    if isinstance(err, torch.OutOfMemoryError):
        return False
    seen: BaseException | None = err
    visited: set[int] = set()  # a chain can loop back on itself
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        module = type(seen).__module__
        if (isinstance(seen, TorchDynamoException)
                or module.startswith(("torch._dynamo", "torch._inductor", "triton"))):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def failure_reason(err: BaseException) -> str:
    """The first lines of the error without dynamo's "set TORCHDYNAMO_VERBOSE" advice."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if "TORCHDYNAMO_VERBOSE" not in line and "TORCH_LOGS" not in line]
    text = " ".join(lines[:2]) or type(err).__name__
    return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS - 1] + "…"
