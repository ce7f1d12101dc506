#!/usr/bin/env python3
"""Is the lean arithmetic as accurate as the straightforward one? A float32 ground truth decides.

Builds the MultiTalk transformer at real width (5120 channels, 40 heads, 32,760 tokens at 480p) with
fewer blocks (`--layers`, default 8; float32 weights of all 40 would need 75 GB) and random
weights, runs the cond (two voices, L-RoPE) and uncond (null audio, folded q) passes in float32 with
the straightforward arithmetic (the ground truth), then casts the weights to bf16 as loading a bf16
checkpoint would (the modules the model keeps in float32 stay float32) and runs each pass with the
lean and the straightforward arithmetic, plus the straightforward one with another attention kernel
(the spread that a kernel choice alone causes). Prints each bf16 result's relative L2 error against
float32. `--tiny` runs it on the CPU (tests).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_bench  # noqa: E402


def rel(value: torch.Tensor, reference: torch.Tensor) -> float:
    return gpu_bench.relative_difference(value, reference)


def cast_like_checkpoint(model: torch.nn.Module, dtype: torch.dtype) -> None:
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, param in model.named_parameters():
        if not keep & set(name.split(".")):
            param.data = param.data.to(dtype)


def compare_fp8_storage(size: dict, device, inputs: dict, truth: dict, lines: list[str]) -> dict:
    """The same weights stored in fp8 two ways, computed in float32 so that only the storage
    differs: the engine's scaled fp8 and diffusers' unscaled layerwise casting."""
    from multitalk_desktop.engine.fp8 import FP8_STORAGE, enable_fp8_storage, skip_patterns
    from multitalk_desktop.engine.lean_ops import reference_ops

    ways = {
        "scaled fp8 (engine)": lambda m: enable_fp8_storage(m, torch.float32),
        "unscaled fp8 (diffusers layerwise casting)": lambda m: m.enable_layerwise_casting(
            storage_dtype=FP8_STORAGE, compute_dtype=torch.float32, skip_modules_pattern=skip_patterns(m)),
    }
    results = {}
    for label, enable in ways.items():
        model = gpu_bench.build_multitalk(size["transformer"], device, torch.float32, seed=0)  # same weights
        enable(model)
        contexts = gpu_bench.project_audio(model, inputs)
        with reference_ops():
            for kind in ("cond", "uncond"):
                pred = gpu_bench.multitalk_pass(model, inputs, contexts, inputs["latents"], kind).float().cpu()
                results[f"{kind}: {label} vs float32"] = rel(pred, truth[kind])
        del model, contexts
    for key, value in results.items():
        lines.append(f"  {key:<60} {value:.3e}")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--latent-frames", type=int, default=None,
                        help="fewer latent frames than a whole 81-frame clip (21): a CPU run at real width")
    parser.add_argument("--fp8-only", action="store_true",
                        help="only the fp8 weight-storage comparison (float32 compute), no bf16 passes")
    args = parser.parse_args(argv)
    from multitalk_desktop.engine.lean_ops import reference_ops

    size = dict(gpu_bench.SIZES["tiny" if args.tiny else "real"])
    size["transformer"] = {**size["transformer"], "num_layers": args.layers}
    if args.latent_frames:
        size["frames"] = 4 * (args.latent_frames - 1) + 1
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # a float32 truth: no TF32 in matmuls or convs
    torch.backends.cudnn.allow_tf32 = False
    started = time.perf_counter()
    model = gpu_bench.build_multitalk(size["transformer"], device, torch.float32, seed=0)
    inputs = gpu_bench.make_inputs(model, size, device, torch.float32, seed=0)
    contexts = gpu_bench.project_audio(model, inputs)
    lines = [f"precision check: {args.layers} blocks at {'tiny' if args.tiny else 'real'} width, device {device}"
             + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
             + f", torch {torch.__version__}"]
    truth = {}
    with reference_ops():
        for kind in ("cond", "uncond"):
            truth[kind] = gpu_bench.multitalk_pass(model, inputs, contexts, inputs["latents"], kind).float().cpu()
    lines.append(f"float32 ground truth in {time.perf_counter() - started:.1f} s")
    results: dict = {"fp8": compare_fp8_storage(size, device, inputs, truth, lines)}
    if args.fp8_only:
        lines.append(f"total {time.perf_counter() - started:.1f} s")
        gpu_bench.print_and_save(lines, results, args.out)
        return 0

    cast_like_checkpoint(model, torch.bfloat16)
    inputs = {k: (v.to(torch.bfloat16) if torch.is_floating_point(v) and k not in ("latents", "timestep", "masks") else v)
              for k, v in inputs.items()}
    contexts = gpu_bench.project_audio(model, inputs)
    for kind in ("cond", "uncond"):
        lean = gpu_bench.multitalk_pass(model, inputs, contexts, inputs["latents"], kind).float().cpu()
        with reference_ops():
            straight = gpu_bench.multitalk_pass(model, inputs, contexts, inputs["latents"], kind).float().cpu()
            other_kernel = None
            if device.type == "cuda":
                with torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend.FLASH_ATTENTION,
                                                     torch.nn.attention.SDPBackend.EFFICIENT_ATTENTION]):
                    other_kernel = gpu_bench.multitalk_pass(model, inputs, contexts, inputs["latents"], kind).float().cpu()
        results[kind] = {
            "lean_vs_float32": rel(lean, truth[kind]),
            "straightforward_vs_float32": rel(straight, truth[kind]),
            "lean_vs_straightforward": rel(lean, straight),
        }
        if other_kernel is not None:
            results[kind]["straightforward_other_attention_kernel_vs_float32"] = rel(other_kernel, truth[kind])
            results[kind]["straightforward_vs_other_attention_kernel"] = rel(straight, other_kernel)
        for key, value in results[kind].items():
            lines.append(f"  {kind:<7} {key:<52} {value:.3e}")
    lines.append(f"total {time.perf_counter() - started:.1f} s")
    gpu_bench.print_and_save(lines, results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
