"""Optional regional torch.compile: compile the repeated transformer block once and reuse it for all
40, instead of compiling the whole model (minutes) or nothing.

Off by default: the first forward pays the compile (tens of seconds on a GPU), which only pays back
on long jobs, and compiled code needs a working C compiler/Triton on the user's machine. The
block's Python-side branches (one vs two speakers, step-cache hooks, offload hooks) cause
recompiles or graph breaks; `dynamic=False` keeps one graph per shape.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def compile_blocks(model: torch.nn.Module, *, fullgraph: bool = False, dynamic: bool = False, mode: str | None = None) -> bool:
    """Regionally compile `model`'s repeated blocks. Returns False (and leaves the model eager)
    where torch.compile is unavailable."""
    if not hasattr(torch, "compile"):
        return False
    kwargs = {"fullgraph": fullgraph, "dynamic": dynamic}
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
