#!/usr/bin/env python3
"""Peak of live activation bytes inside one real-width MultiTalk transformer block, on the CPU.

On the GPU the `fp8`/`low` profiles are bounded by what one block forward holds at once (480p:
32,760 tokens x 5120 channels). This builds ONE `MultiTalkTransformerBlock` at the real widths with
random weights, runs its forward under a TorchDispatchMode that counts the storage bytes every op
allocates (and subtracts them once freed), and reports the peak, the op and source line that hit it,
and the ten source lines with the largest live total, so memory work can be checked before spending
GPU time. Activations are linear in tokens (no video-by-video attention is stored), so the run keeps the
480p frame (30 x 52 patches) and fewer latent frames, and the peak is also scaled to 32,760 tokens.

    python bench/activation_peak.py [--tokens N] [--speakers 1|2] [--dtype bf16|fp32]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import traceback
from pathlib import Path

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # a plain checkout: the package need not be installed

GIB, MIB = 2**30, 2**20
REAL_TOKENS = 32_760  # 480p, 81 frames: 21 x 30 x 52 latent patches
REAL_FRAME_HW = (30, 52)  # patches per latent frame at 480p (832 x 480)
IMAGE_TOKENS = 257  # CLIP tokens ahead of the text in the cross-attention context
DEFAULT_TOKENS = 3 * 30 * 52  # 3 latent frames: ~25 s on 2 cores, ~2 GiB of RAM
TRACKED_PACKAGES = ("multitalk_desktop", "diffusers")


def _load_gpu_bench():
    # bench/ is not a package: load the sibling file that owns the real config and the builders.
    spec = importlib.util.spec_from_file_location("_gpu_bench", Path(__file__).with_name("gpu_bench.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


gpu_bench = _load_gpu_bench()


def _frame_label(frame: traceback.FrameSummary, package: str) -> str:
    parts = Path(frame.filename).parts
    tail = parts[len(parts) - 1 - parts[::-1].index(package):]
    return f"{'/'.join(tail)}:{frame.lineno} {frame.name}"


def stack_hint() -> str:
    """The innermost multitalk_desktop frame ('where in our code'), followed by the innermost
    diffusers frame when that one is deeper ('which library helper actually allocated')."""
    frames = traceback.extract_stack()
    innermost: dict[str, int] = {}
    for index, frame in enumerate(frames):
        for package in TRACKED_PACKAGES:
            if package in Path(frame.filename).parts:
                innermost[package] = index
    ours, lib = (innermost.get(package, -1) for package in TRACKED_PACKAGES)
    labels = [_frame_label(frames[i], pkg) for i, pkg in ((ours, "multitalk_desktop"), (lib, "diffusers"))
              if i >= 0 and (pkg == "multitalk_desktop" or i > ours)]
    return " > ".join(labels) or "?"


class LiveBytesTracker(TorchDispatchMode):
    """Counts the storage bytes of every op output whose storage is new: not one of the op's inputs
    (views, in-place and out= results) and not already counted. Tensors made before the mode (weights,
    the block's inputs) therefore never count. Frees are seen through `StorageWeakRef.expired()`,
    swept before each op: Python drops tensors between ops, so the total right after an op is exact."""

    def __init__(self, top: int = 10) -> None:
        super().__init__()
        self.top = top
        # storage key -> (weak ref, bytes, op that made it, where)
        self._live: dict[tuple[int, int], tuple[StorageWeakRef, int, str, str]] = {}
        self.live_bytes = self.peak_bytes = self.ops = 0
        self.peak_op = self.peak_location = ""
        self.peak_holders: list[tuple[int, str, str]] = []  # what was live at the peak
        # location -> (largest live total right after an op there, that op, bytes it allocated)
        self._by_location: dict[str, tuple[int, str, int]] = {}

    def current_bytes(self) -> int:
        """Live bytes now (sweeps frees made since the last op)."""
        self._sweep()
        return self.live_bytes

    def _sweep(self) -> None:
        for key in [k for k, entry in self._live.items() if entry[0].expired()]:
            self.live_bytes -= self._live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self._sweep()
        out = func(*args, **kwargs)
        self.ops += 1
        inputs = {_storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        fresh = []
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor) or _storage_key(tensor) in inputs:
                continue
            known = self._live.get(_storage_key(tensor))
            if known is not None and not known[0].expired():
                continue
            if known is not None:  # same address reused after a free not yet swept
                self.live_bytes -= self._live.pop(_storage_key(tensor))[1]
            fresh.append(tensor.untyped_storage())
        if fresh:
            op, location = str(func), stack_hint()
            allocated = sum(storage.nbytes() for storage in fresh)
            for storage in fresh:
                key = (storage.data_ptr(), storage.nbytes())
                self._live[key] = (StorageWeakRef(storage), storage.nbytes(), op, location)
            self.live_bytes += allocated
            self._record(op, location, allocated)
        return out

    def _record(self, op: str, location: str, allocated: int) -> None:
        if self.live_bytes > self._by_location.get(location, (0,))[0]:
            self._by_location[location] = (self.live_bytes, op, allocated)
        if self.live_bytes > self.peak_bytes:
            self.peak_bytes, self.peak_op, self.peak_location = self.live_bytes, op, location
            self.peak_holders = sorted(((n, o, loc) for _, n, o, loc in self._live.values()), reverse=True)

    def top_locations(self) -> list[dict]:
        rows = sorted(self._by_location.items(), key=lambda item: -item[1][0])[: self.top]
        return [dict(op=op, location=loc, live_bytes=live, op_bytes=alloc) for loc, (live, op, alloc) in rows]


def _storage_key(tensor: torch.Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


def build_block(config: dict, dtype: torch.dtype, seed: int = 0):
    """(block, rope, config): one MultiTalkTransformerBlock with seeded random weights, the model's
    RoPE module and full config (the model is built on the meta device with no blocks: no memory)."""
    from multitalk_desktop.engine.transformer import (
        MultiTalkTransformer3DModel,
        MultiTalkTransformerBlock,
    )

    with gpu_bench.meta_parameters():
        shell = MultiTalkTransformer3DModel(**{**config, "num_layers": 0})
        cfg = shell.config
        block = MultiTalkTransformerBlock(
            cfg.num_attention_heads * cfg.attention_head_dim, cfg.ffn_dim, cfg.num_attention_heads,
            cfg.qk_norm, cfg.cross_attn_norm, cfg.eps, cfg.added_kv_proj_dim, audio_dim=cfg.output_dim,
            text_len=cfg.text_len, norm_input_visual=cfg.norm_input_visual, class_range=cfg.class_range,
            class_interval=cfg.class_interval, ref_map_split=cfg.ref_map_split,
        )
    # The norms and the modulation table stay fp32 as from_pretrained keeps them in the model.
    block._keep_in_fp32_modules = MultiTalkTransformer3DModel._keep_in_fp32_modules
    gpu_bench.materialize(block, torch.device("cpu"), dtype, seed)
    return block.eval().requires_grad_(False), shell.rope, cfg


def block_activation_peak(
    tokens: int, speakers: int, dtype: torch.dtype = torch.bfloat16, config: dict | None = None,
    frame_hw: tuple[int, int] = REAL_FRAME_HW, image_tokens: int = IMAGE_TOKENS, seed: int = 0,
) -> dict:
    """One block forward under `LiveBytesTracker`, called as `MultiTalkTransformer3DModel.forward`
    calls it; `tokens` must be a whole number of latent frames of frame_hw patches."""
    from multitalk_desktop.engine.transformer import token_ref_masks

    per_frame = frame_hw[0] * frame_hw[1]
    if tokens <= 0 or tokens % per_frame:
        raise ValueError(f"tokens must be a positive multiple of {per_frame} ({frame_hw[0]} x {frame_hw[1]} patches a frame)")
    if speakers not in (1, 2):
        raise ValueError("speakers must be 1 or 2")
    block, rope, cfg = build_block(config or gpu_bench.REAL_TRANSFORMER, dtype, seed)
    dim = cfg.num_attention_heads * cfg.attention_head_dim
    grid = (tokens // per_frame, *frame_hw)
    p_t, p_h, p_w = cfg.patch_size
    latent_hw = (frame_hw[0] * p_h, frame_hw[1] * p_w)
    # RoPE only reads the latent's shape: a meta latent costs nothing.
    rotary_emb = rope(torch.empty(1, cfg.in_channels, grid[0] * p_t, *latent_hw, device="meta"))
    gen = torch.Generator().manual_seed(seed + 1)

    def randn(*shape, dt=dtype):
        return torch.randn(*shape, generator=gen).to(dt)

    token_masks = None
    if speakers == 2:
        masks = torch.zeros(3, *latent_hw)
        masks[0, :, : latent_hw[1] // 2] = 1  # the default left/right halves
        masks[1, :, latent_hw[1] // 2:] = 1
        masks[2] = 1 - masks[0] - masks[1]
        token_masks = token_ref_masks(masks, frame_hw)
    inputs = dict(
        hidden_states=randn(1, tokens, dim),
        encoder_hidden_states=randn(1, image_tokens + cfg.text_len, dim),
        temb=randn(1, 6, dim, dt=torch.float32),
        rotary_emb=rotary_emb,
        audio_context=randn(1, grid[0], speakers * cfg.context_tokens, cfg.output_dim),
    )
    input_bytes = sum(t.untyped_storage().nbytes() for t in tree_leaves(inputs))
    start = time.perf_counter()
    with torch.no_grad(), LiveBytesTracker() as tracker:
        output = block(**inputs, grid=grid, token_masks=token_masks, speakers=speakers)
        live_at_end = tracker.current_bytes()
    scale = REAL_TOKENS / tokens
    return dict(
        tokens=tokens, speakers=speakers, dtype=str(dtype).removeprefix("torch."), grid=grid,
        seconds=time.perf_counter() - start, ops=tracker.ops,
        weight_bytes=sum(p.nbytes for p in block.parameters()), input_bytes=input_bytes,
        hidden_bytes=inputs["hidden_states"].nbytes, rotary_dtype=str(rotary_emb[0].dtype).removeprefix("torch."),
        peak_bytes=tracker.peak_bytes, peak_bytes_scaled=round(tracker.peak_bytes * scale),
        peak_op=tracker.peak_op, peak_location=tracker.peak_location,
        peak_holders=[dict(bytes=n, op=op, location=loc) for n, op, loc in tracker.peak_holders],
        live_at_end_bytes=live_at_end, output_bytes=output.untyped_storage().nbytes(),
        top=tracker.top_locations(), scale=scale, context_tokens=image_tokens + cfg.text_len,
    )


def print_report(result: dict) -> None:
    frames, height, width = result["grid"]
    scale = result["scale"]
    print(f"MultiTalk block activation peak (CPU, {result['dtype']}, {result['speakers']} speaker(s))")
    print(f"grid {frames} x {height} x {width} = {result['tokens']:,} tokens (480p: {REAL_TOKENS:,}); "
          f"block weights {result['weight_bytes'] / GIB:.2f} GiB; rotary tables {result['rotary_dtype']}; "
          f"{result['ops']} ops in {result['seconds']:.1f} s")
    print(f"peak live activation bytes: {result['peak_bytes'] / GIB:.3f} GiB raw, "
          f"{result['peak_bytes_scaled'] / GIB:.2f} GiB scaled to {REAL_TOKENS:,} tokens "
          f"(= {result['peak_bytes'] / result['hidden_bytes']:.1f} x hidden_states)")
    print(f"  at {result['peak_op']}  {result['peak_location']}")
    print(f"  not counted: the block's inputs ({result['input_bytes'] / GIB:.3f} GiB, held by the caller) and "
          "SDPA's internal workspace (invisible to the mode; flash attention on the GPU keeps none)")
    print(f"  scaled linearly in tokens: the {result['context_tokens']}-token context K/V and the audio K/V "
          "do not grow with the video, so the scaled figures are slight overestimates")
    print("live at the peak (largest first):")
    for holder in result["peak_holders"][:8]:
        print(f"  {holder['bytes'] / MIB:8.1f} MiB  {holder['op']}  {holder['location']}")
    print(f"top {len(result['top'])} source lines by live bytes right after their op:")
    print(f"  {'live GiB':>8} {'@32,760':>8} {'op MiB':>8}  op / location")
    for row in result["top"]:
        print(f"  {row['live_bytes'] / GIB:8.3f} {row['live_bytes'] * scale / GIB:8.2f} "
              f"{row['op_bytes'] / MIB:8.1f}  {row['op']}  {row['location']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS,
                        help=f"video tokens, a multiple of {REAL_FRAME_HW[0] * REAL_FRAME_HW[1]} (default {DEFAULT_TOKENS})")
    parser.add_argument("--speakers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    args = parser.parse_args(argv)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    print_report(block_activation_peak(args.tokens, args.speakers, dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
