"""Block offloading: the transformer's blocks live in pinned host RAM and stream to the GPU one at
a time, the next block's copy overlapping the current block's compute; and moving encoders on and
off the GPU around their use.

Built on diffusers' group offloading (`block_level`, one block per group, a CUDA side stream, lazy
prefetch after the first forward), with two changes measured to matter at 14 B scale:

* Exact pinned memory. diffusers pins every tensor separately and PyTorch's pinned allocator rounds
  each allocation up to a power of two (a 70.8 MB fp8 FFN weight takes 128 MB), about 1.4 x the
  weights in host RAM. Here every block's tensors are packed into one host buffer of exactly their
  size, page-locked with cudaHostRegister.
* A resident top level. diffusers puts everything outside the block list (embeddings, time
  projection, `audio_proj`, output head: ~0.3 B parameters) in a group it copies to the GPU and back
  synchronously on every forward, from pageable memory. Kept on the GPU it costs ~0.6 GiB and saves
  those copies.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

_GROUP_OFFLOADING_HOOK = "group_offloading"  # diffusers.hooks.group_offloading._GROUP_OFFLOADING
_ALIGN = 64  # bytes; keeps every packed tensor aligned for any dtype view and for DMA


@dataclass
class OffloadInfo:
    """What `enable_block_offload` set up, for logs and the benchmark."""

    groups: int
    streamed: bool
    pinned_bytes: int  # host bytes page-locked for the blocks
    pinning: str  # "exact" (cudaHostRegister), "rounded" (PyTorch pinned allocator), "none"
    resident_top_level: bool


def enable_block_offload(
    model: torch.nn.Module,
    device: torch.device | str,
    *,
    record_stream: bool = True,
    exact_pinning: bool = True,
    resident_top_level: bool = True,
) -> OffloadInfo:
    """Offload `model.blocks` block by block to host RAM, onloading to `device` for compute.

    On CUDA the copies run on a side stream with prefetch of the next block; `record_stream` lets
    the allocator reuse a block's memory without a device-wide sync per block. On the CPU (tests)
    the same hooks run without streams, so outputs can be compared with the resident model."""
    device = torch.device(device)
    streamed = device.type == "cuda"
    pinned, pinning = 0, "none"
    if streamed and exact_pinning:
        # Blocks go straight into exact-size pinned arenas (one device-to-host or host-to-host copy
        # per tensor); diffusers then finds its host copies already in place and pinned.
        pinned, pinning = pin_blocks_in_place(model)
    model.enable_group_offload(
        onload_device=device,
        offload_device=torch.device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        use_stream=streamed,
        record_stream=record_stream and streamed,
        # With exact pinning diffusers must not pin (round up) copies of its own.
        low_cpu_mem_usage=streamed and exact_pinning,
    )
    if streamed and exact_pinning:
        extra, _ = pack_pinned_groups(model, only_unpinned=True)
        pinned += extra
    elif streamed:
        pinning = "rounded"
        pinned = sum(_group_host_bytes(g) for g in offload_groups(model) if g.stream is not None)
    if resident_top_level:
        keep_top_level_resident(model)
    return OffloadInfo(
        groups=len(offload_groups(model)),
        streamed=streamed,
        pinned_bytes=pinned,
        pinning=pinning,
        resident_top_level=resident_top_level,
    )


def offload_groups(model: torch.nn.Module) -> list:
    """diffusers' ModuleGroup objects attached to `model` (one per block plus the top level)."""
    groups, seen = [], set()
    for module in model.modules():
        registry = getattr(module, "_diffusers_hook", None)
        hook = registry.get_hook(_GROUP_OFFLOADING_HOOK) if registry is not None else None
        if hook is not None and id(hook.group) not in seen:
            seen.add(id(hook.group))
            groups.append(hook.group)
    return groups


def keep_top_level_resident(model: torch.nn.Module) -> bool:
    """Make the top-level group (everything outside the block list) stay on the onload device:
    its offload target becomes the onload device, so diffusers' per-forward copies become no-ops."""
    registry = getattr(model, "_diffusers_hook", None)
    hook = registry.get_hook(_GROUP_OFFLOADING_HOOK) if registry is not None else None
    if hook is None:
        return False
    group = hook.group
    group.offload_device = group.onload_device
    group.onload_()
    return True


class PinnedArena:
    """One page-locked host buffer holding a group's tensors back to back. Unregisters itself
    before its memory can be freed (the arena owns the buffer; views only share it)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.registered = False
        self.buffer = torch.empty(nbytes, dtype=torch.uint8)
        try:
            # flag 1 = cudaHostRegisterPortable, as torch.cuda._pin_memory_utils uses
            code = int(torch.cuda.cudart().cudaHostRegister(self.buffer.data_ptr(), nbytes, 1))
            self.registered = code == 0
        except Exception as err:  # noqa: BLE001 - any failure: fall back to PyTorch's allocator
            log.info("cudaHostRegister unavailable (%s); using PyTorch pinned memory", err)
        if not self.registered:
            _consume_stale_cuda_error()
        if self.registered and not self.buffer.is_pinned():
            # Registered but not seen as pinned by PyTorch: its copies would re-pin every time.
            torch.cuda.cudart().cudaHostUnregister(self.buffer.data_ptr())
            self.registered = False
        if not self.registered:
            self.buffer = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)

    def __del__(self) -> None:
        if self.registered:
            with contextlib.suppress(Exception):
                torch.cuda.cudart().cudaHostUnregister(self.buffer.data_ptr())
            self.registered = False


def _consume_stale_cuda_error() -> None:
    """A failed cudaHostRegister leaves its error as CUDA's "last error", which PyTorch would
    report at its next kernel launch. Launch one tiny kernel now so that check fires (and
    resets the error) here, where it is expected."""
    try:
        torch.empty(1, device="cuda").fill_(0)
        torch.cuda.synchronize()
    except RuntimeError as err:
        log.info("cleared CUDA error left by cudaHostRegister: %s", err)


def pin_blocks_in_place(model: torch.nn.Module) -> tuple[int, str]:
    """Move every block's parameters and buffers into one pinned arena per block (from the GPU or
    from pageable host memory), so the block lives in page-locked host RAM of exactly its size.
    Returns (pinned bytes, "exact" | "rounded")."""
    total, modes = 0, set()
    for block in model.blocks:
        tensors = {t: t.data for t in [*block.parameters(), *block.buffers()]}
        if not tensors:
            continue
        arena, views = _pack(tensors)
        for tensor, view in views.items():
            tensor.data = view
        block._multitalk_pinned_arena = arena  # lives exactly as long as the block
        total += arena.nbytes
        modes.add("exact" if arena.registered else "rounded")
    return total, ("exact" if modes == {"exact"} else "rounded" if modes else "none")


def pack_pinned_groups(model: torch.nn.Module, only_unpinned: bool = False) -> tuple[int, str]:
    """Replace each streamed group's host copies by views into one exact-size pinned arena
    (with `only_unpinned`, just the groups whose copies are not page-locked yet).
    Returns (pinned bytes, "exact" | "rounded")."""
    total, modes = 0, set()
    for group in offload_groups(model):
        if group.stream is None or not group.cpu_param_dict:
            continue
        if only_unpinned and all(t.is_pinned() for t in group.cpu_param_dict.values()):
            continue
        arena, views = _pack(group.cpu_param_dict)
        for tensor, view in views.items():
            old = group.cpu_param_dict[tensor]
            group.cpu_param_dict[tensor] = view
            if tensor.data.data_ptr() == old.data_ptr():  # offloaded now: point at the arena
                tensor.data = view
        group._multitalk_pinned_arena = arena  # keeps the arena alive exactly as long as the group
        total += arena.nbytes
        modes.add("exact" if arena.registered else "rounded")
    return total, ("exact" if modes == {"exact"} else "rounded" if modes else "none")


def _pack(host_copies: dict) -> tuple[PinnedArena, dict]:
    layout, offset = [], 0
    for tensor, copy in host_copies.items():
        nbytes = copy.numel() * copy.element_size()
        layout.append((tensor, copy, offset, nbytes))
        offset += -(-nbytes // _ALIGN) * _ALIGN
    arena = PinnedArena(max(offset, _ALIGN))
    views = {}
    for tensor, copy, start, nbytes in layout:
        flat = arena.buffer[start : start + nbytes]
        view = flat.view(copy.dtype).view(copy.shape) if nbytes else torch.empty_like(copy)
        view.copy_(copy)
        views[tensor] = view
    return arena, views


def _group_host_bytes(group) -> int:
    return sum(t.numel() * t.element_size() for t in group.cpu_param_dict.values())


# Headroom left on the GPU when deciding whether an encoder fits whole: its activations, the
# CUDA context's own use, and fragmentation.
ENCODER_HEADROOM_BYTES = 1536 * 2**20


def module_bytes(module: torch.nn.Module) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def fits_whole(needed_bytes: int, free_bytes: int, headroom: int = ENCODER_HEADROOM_BYTES) -> bool:
    """Whether a module of `needed_bytes` can be moved to a GPU with `free_bytes` free."""
    return needed_bytes + headroom <= free_bytes


def stream_leaves(module: torch.nn.Module, device: torch.device) -> None:
    """Leave `module` in host RAM and bring each leaf layer's weights to `device` only for its own
    forward (prefetched on a side stream on CUDA). For encoders bigger than the card: UMT5-XXL is
    11.4 GB in bf16, which an 8 GB card running `balanced`/`low` cannot hold whole."""
    from diffusers.hooks import apply_group_offloading

    # low_cpu_mem_usage: pin each layer's host copy on the fly while it is copied, instead of
    # keeping a second, pinned (and power-of-two-rounded) copy of the whole encoder for good: in
    # `low` that copy would put host RAM past the 28 GiB a 32 GB PC can give.
    apply_group_offloading(module, onload_device=device, offload_device=torch.device("cpu"),
                           offload_type="leaf_level", use_stream=device.type == "cuda",
                           low_cpu_mem_usage=True)
    module._multitalk_streamed = True


def _free_bytes(device: torch.device) -> int:
    if device.type != "cuda":
        return 1 << 62
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


@contextlib.contextmanager
def on_device(modules: Iterable[torch.nn.Module], device: torch.device | str, *, keep: bool = False,
              force_stream: bool = False) -> Iterator[None]:
    """Move `modules` to `device` for the block, then back to the CPU (unless `keep`), freeing
    their GPU memory for the transformer: how encoders and the VAE are used in the offloaded
    profiles. A module too big for the GPU's free memory (or any, with `force_stream`) is instead
    streamed layer by layer (`stream_leaves`), once and for good."""
    modules = [m for m in modules if m is not None]
    device = torch.device(device)
    moved = []
    for module in modules:
        if getattr(module, "_multitalk_streamed", False):
            continue
        if force_stream or not fits_whole(module_bytes(module), _free_bytes(device)):
            stream_leaves(module, device)
            continue
        module.to(device)
        moved.append(module)
    try:
        yield
    finally:
        if not keep and device.type != "cpu":
            for module in moved:
                module.to("cpu")
            if device.type == "cuda":
                torch.cuda.empty_cache()
