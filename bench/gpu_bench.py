#!/usr/bin/env python3
"""GPU benchmark of the MultiTalk transformer's memory profiles against the plain Wan backbone.

Builds the real-size architecture (Wan2.1-I2V-14B + MultiTalk's audio adapter, 18.9 B parameters)
with random weights straight on the GPU (meta-device construction, then every tensor filled with
seeded random values in bf16: no download, no fp32 copy in host RAM), and measures in one run on one
GPU:

* plain `WanTransformer3DModel` forwards sharing the same backbone weights (the reference);
* a VAE decode of one 81-frame 480p clip (real-size `AutoencoderKLWan`, random weights), whole and
  tiled;
* per memory profile (full, fp8, low, balanced): seconds per denoising step in quality mode (3
  passes: cond with 2 voices, drop_text with 2 voices, uncond with the null audio) and fast mode (2
  passes: cond, drop_audio), seconds per clip (steps x measured step + a measured VAE decode), peak
  VRAM (allocated and reserved), peak host RAM, and the difference of its prediction from `full`.

Figures are printed next to the issue-6 targets; `--out X.json` also writes X.json (machine
readable, rewritten after every stage so a timeout keeps what was measured) and X.log (this output
with the environment and the command). `--tiny` runs the same code at tiny sizes on the CPU (tests);
`--quick` runs one profile. Needs torch, diffusers, numpy and psutil only; runs from a plain source
checkout (no install).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import inspect
import json
import math
import platform
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # a plain checkout: the package need not be installed

import torch  # noqa: E402

GIB = 2**30
PROFILE_RUN_ORDER = ("full", "fp8", "low", "balanced")

# Wan2.1-I2V-14B (diffusers config of Wan-AI/Wan2.1-I2V-14B-480P-Diffusers) + MultiTalk's adapter.
REAL_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36,
    out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40,
    cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280,
    added_kv_proj_dim=5120, rope_max_seq_len=1024, text_len=512,
    audio_window=5, vae_scale=4, intermediate_dim=512, output_dim=768, context_tokens=32,
    audio_blocks=12, audio_channels=768, norm_input_visual=True, norm_output_audio=True,
)
REAL_VAE = dict(
    base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
    temperal_downsample=[False, True, True], dropout=0.0,
)
# text_len stays 512: diffusers' plain Wan processor hard-codes it for the image/text split.
TINY_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=12,
    out_channels=4, text_dim=8, freq_dim=8, ffn_dim=32, num_layers=2, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=12, added_kv_proj_dim=16,
    rope_max_seq_len=1024, text_len=512, audio_window=5, vae_scale=4, intermediate_dim=8,
    output_dim=6, context_tokens=3, audio_blocks=2, audio_channels=4,
)
TINY_VAE = dict(base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, attn_scales=[],
                temperal_downsample=[False, True, True], dropout=0.0)

SIZES = {
    # 832x480, 81 frames -> latent 21 x 60 x 104 -> 21 x 30 x 52 = 32,760 tokens
    "real": dict(transformer=REAL_TRANSFORMER, vae=REAL_VAE, frames=81, latent_hw=(60, 104),
                 image_tokens=257, vae_tile=None),
    "tiny": dict(transformer=TINY_TRANSFORMER, vae=TINY_VAE, frames=5, latent_hw=(4, 6),
                 image_tokens=5, vae_tile=(24, 24, 16, 16)),
}
QUALITY_STEPS, FAST_STEPS = 40, 4
TEXT_SCALE, AUDIO_SCALE = 5.0, 4.0

TARGETS = {
    "quality_step_vs_plain": 1.10,  # step <= 1.10 x three plain forwards
    "fast_clip_vs_plain": 1.10,  # clip <= 1.10 x (4 x 2 plain forwards + one VAE decode)
    "fast_clip_s": 35.0,
    "fp8": dict(peak_gib=22.0, step_vs_full=1.05),
    "balanced": dict(peak_gib=8.0, step_vs_full=1.20),
    "low": dict(peak_gib=6.0, step_vs_full=1.25, host_gib=28.0),
}


# --------------------------------------------------------------------------- output


class Report:
    """Prints and remembers every line; writes the JSON after every stage."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.lines: list[str] = []
        self.data: dict = {"results": {}}

    def say(self, text: str = "") -> None:
        self.lines.append(text)
        try:
            print(text, flush=True)
        except BrokenPipeError:  # a closed pager must not stop the measurements; the log keeps all
            pass

    def save(self) -> None:
        if self.out is None:
            return
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.data, indent=2, default=str))
        self.out.with_suffix(".log").write_text("\n".join(self.lines) + "\n")


class Budget:
    """Wall-clock guard: optional measurements are skipped once they would overrun."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.seconds = seconds

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def allows(self, estimate_s: float) -> bool:
        return self.elapsed + estimate_s <= self.seconds


def print_and_save(lines: list[str], results, out: Path | None) -> None:
    """The small benchmarks' ending: print the lines; with `out`, OUT (JSON) and OUT.log."""
    print("\n".join(lines), flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"lines": lines, "results": results}, indent=2))
        out.with_suffix(".log").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- memory probes


class HostPeak:
    """Peak resident host memory of this process over a stage: the kernel's high-water mark
    (VmHWM, reset through /proc/self/clear_refs) where allowed, else a 20 ms RSS sampler."""

    def __init__(self) -> None:
        self.sampled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.kernel_reset = False

    def start(self) -> None:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.kernel_reset = True
        except OSError:
            self.kernel_reset = False
        self.sampled = _rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.sampled = max(self.sampled, _rss())

    def stop(self) -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        peak = self.sampled
        if self.kernel_reset:
            peak = max(peak, _vm_hwm())
        return peak / GIB


def _rss() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _vm_hwm() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        if hasattr(torch._C, "_host_emptyCache"):
            torch._C._host_emptyCache()  # pinned host blocks cached by PyTorch
        torch.cuda.reset_peak_memory_stats(device)


def gpu_now(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    return {"allocated_gib": torch.cuda.memory_allocated(device) / GIB,
            "reserved_gib": torch.cuda.memory_reserved(device) / GIB}


def gpu_peak(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"peak_allocated_gib": None, "peak_reserved_gib": None}
    return {"peak_allocated_gib": torch.cuda.max_memory_allocated(device) / GIB,
            "peak_reserved_gib": torch.cuda.max_memory_reserved(device) / GIB}


# --------------------------------------------------------------------------- timing


class Timer:
    """Times a sequence of GPU work with CUDA events (host clock on the CPU): `mark(name)` closes
    the interval since the previous mark; `finish()` synchronises once and returns seconds."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.names: list[str] = []
        self.points = [self._point()]

    def _point(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def mark(self, name: str) -> None:
        self.names.append(name)
        self.points.append(self._point())

    def finish(self) -> dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize()
            gaps = [a.elapsed_time(b) / 1000 for a, b in zip(self.points, self.points[1:], strict=False)]
        else:
            gaps = [b - a for a, b in zip(self.points, self.points[1:], strict=False)]
        out: dict[str, float] = {}
        for name, gap in zip(self.names, gaps, strict=True):
            out[name] = out.get(name, 0.0) + gap
        out["total"] = sum(gaps)
        return out


# --------------------------------------------------------------------------- building models


def materialize(module: torch.nn.Module, device: torch.device, dtype: torch.dtype, seed: int) -> None:
    """Give every meta parameter real storage on `device`, filled with seeded random values (never
    zeros): weights ~ N(0, 1/fan_in), biases ~ N(0, 0.02^2), norm scales ~ 1 + N(0, 0.02^2).
    Modules the class keeps in fp32 (as from_pretrained would) get fp32. Buffers (RoPE tables) are
    real already and only move."""
    keep_fp32 = set(getattr(module, "_keep_in_fp32_modules", None) or [])
    gen = torch.Generator(device=device).manual_seed(seed)
    for module_name, sub in module.named_modules():
        for name, param in list(sub._parameters.items()):
            if param is None:
                continue
            full_name = f"{module_name}.{name}" if module_name else name
            want = torch.float32 if keep_fp32 & set(full_name.split(".")) else dtype
            tensor = torch.empty(param.shape, device=device, dtype=want)
            if tensor.ndim >= 2:
                fan_in = tensor.shape[-1] if name == "scale_shift_table" else math.prod(tensor.shape[1:])
                tensor.normal_(0.0, fan_in ** -0.5, generator=gen)
            elif name == "bias":
                tensor.normal_(0.0, 0.02, generator=gen)
            else:
                tensor.normal_(1.0, 0.02, generator=gen)
            sub._parameters[name] = torch.nn.Parameter(tensor, requires_grad=False)
        for name, buf in list(sub._buffers.items()):
            if buf is not None:
                sub._buffers[name] = buf.to(device)


@contextmanager
def meta_parameters():
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        yield


def build_multitalk(config: dict, device: torch.device, dtype: torch.dtype, seed: int):
    from multitalk_desktop.engine.transformer import MultiTalkTransformer3DModel

    with meta_parameters():
        model = MultiTalkTransformer3DModel(**config)
    materialize(model, device, dtype, seed)
    return model.eval().requires_grad_(False)


def build_plain_sharing(multitalk: torch.nn.Module, config: dict, device: torch.device):
    """A plain WanTransformer3DModel whose parameters ARE the MultiTalk model's backbone tensors
    (no extra memory), for the reference forwards."""
    from diffusers import WanTransformer3DModel

    accepted = set(inspect.signature(WanTransformer3DModel.__init__).parameters)
    with meta_parameters():
        plain = WanTransformer3DModel(**{k: v for k, v in config.items() if k in accepted})
    source = multitalk.state_dict()
    wanted = plain.state_dict().keys()
    plain.load_state_dict({k: source[k] for k in wanted}, strict=True, assign=True)
    for sub in plain.modules():
        for name, buf in list(sub._buffers.items()):
            if buf is not None:
                sub._buffers[name] = buf.to(device)
    left = [n for n, p in plain.named_parameters() if p.is_meta]
    if left:
        raise RuntimeError(f"plain model parameters not shared: {left[:5]}")
    return plain.eval().requires_grad_(False)


def build_vae(config: dict, device: torch.device, seed: int):
    from diffusers import AutoencoderKLWan

    with meta_parameters():
        vae = AutoencoderKLWan(**config)
    materialize(vae, device, torch.float32, seed)  # the engine keeps the VAE in fp32
    return vae.eval().requires_grad_(False)


# --------------------------------------------------------------------------- inputs and passes


def make_inputs(model, size: dict, device: torch.device, dtype: torch.dtype, seed: int) -> dict:
    cfg = model.config
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    latent_frames = (size["frames"] - 1) // cfg.vae_scale + 1
    height, width = size["latent_hw"]

    def randn(*shape, dt=dtype):
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32).to(dt)

    masks = torch.zeros(3, height, width, device=device)
    masks[0, :, : width // 2] = 1  # the default left/right halves
    masks[1, :, width // 2:] = 1
    masks[2] = 1 - masks[0] - masks[1]
    windows = (size["frames"], cfg.audio_window, cfg.audio_blocks, cfg.audio_channels)
    return dict(
        latents=randn(1, cfg.out_channels, latent_frames, height, width, dt=torch.float32),
        condition=randn(1, cfg.in_channels - cfg.out_channels, latent_frames, height, width),
        text=randn(1, cfg.text_len, cfg.text_dim),
        negative_text=randn(1, cfg.text_len, cfg.text_dim),
        image=randn(1, size["image_tokens"], cfg.image_dim),
        audio_two=randn(2, *windows),
        audio_null=torch.zeros(1, *windows, device=device, dtype=dtype),
        masks=masks,
        timestep=torch.tensor([900.0], device=device),
    )


def project_audio(model, inputs: dict, timer: Timer | None = None) -> dict:
    """Once per clip: the 2-voice and null audio contexts (the pipeline reuses them every step)."""
    with torch.no_grad():
        contexts = {
            "two": model.project_audio(inputs["audio_two"]),
            "null": model.project_audio(inputs["audio_null"]),
        }
    if timer is not None:
        timer.mark("audio_projection")
    return contexts


def multitalk_pass(model, inputs: dict, contexts: dict, latents, kind: str):
    text = inputs["negative_text"] if kind in ("drop_text", "uncond") else inputs["text"]
    two = kind in ("cond", "drop_text")
    hidden = torch.cat([latents.to(inputs["condition"].dtype), inputs["condition"]], dim=1)
    from multitalk_desktop.engine.step_cache import guidance_pass

    with guidance_pass(model, kind), torch.no_grad():
        return model(
            hidden, inputs["timestep"], text, encoder_hidden_states_image=inputs["image"],
            audio_context=contexts["two" if two else "null"],
            ref_target_masks=inputs["masks"] if two else None, return_dict=False,
        )[0]


def plain_pass(plain, inputs: dict, latents):
    hidden = torch.cat([latents.to(inputs["condition"].dtype), inputs["condition"]], dim=1)
    with torch.no_grad():
        return plain(hidden, inputs["timestep"], inputs["text"],
                     encoder_hidden_states_image=inputs["image"], return_dict=False)[0]


QUALITY_PASSES = ("cond", "drop_text", "uncond")
FAST_PASSES = ("cond", "drop_audio")


def denoise_step(model, inputs: dict, contexts: dict, mode: str, device: torch.device) -> tuple[dict, dict]:
    """One timed denoising step with all its guidance passes and the Euler update."""
    latents = inputs["latents"]
    timer = Timer(device)
    preds = {}
    for kind in QUALITY_PASSES if mode == "quality" else FAST_PASSES:
        preds[kind] = multitalk_pass(model, inputs, contexts, latents, kind)
        timer.mark(kind)
    if mode == "quality":
        pred = preds["uncond"] + TEXT_SCALE * (preds["cond"] - preds["drop_text"]) + AUDIO_SCALE * (
            preds["drop_text"] - preds["uncond"])
    else:
        pred = preds["drop_audio"] + AUDIO_SCALE * (preds["cond"] - preds["drop_audio"])
    _ = latents - 0.025 * pred  # Euler update (dt of one of 40 steps)
    timer.mark("guidance_and_update")
    return timer.finish(), preds


def measure_reference_arithmetic(model, inputs: dict, contexts: dict, device: torch.device,
                                 preds_cond: torch.Tensor) -> dict:
    """cond and uncond passes with the straightforward block arithmetic (engine/lean_ops.py's
    reference_ops: unfolded audio attention, float32 temporaries), for the before/after figures."""
    from multitalk_desktop.engine.lean_ops import reference_ops

    timer = Timer(device)
    with reference_ops():
        cond = multitalk_pass(model, inputs, contexts, inputs["latents"], "cond")
        timer.mark("cond")
        multitalk_pass(model, inputs, contexts, inputs["latents"], "uncond")
        timer.mark("uncond")
    seconds = timer.finish()
    return {"cond_s": seconds["cond"], "uncond_s": seconds["uncond"],
            "cond_rel_diff": relative_difference(preds_cond, cond.float().cpu())}


def profile_kernels(model, inputs: dict, contexts: dict, device: torch.device, rows: int = 14) -> dict:
    """One cond pass under torch.profiler: the kernels that take the time (for the next change)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        multitalk_pass(model, inputs, contexts, inputs["latents"], "cond")
        if cuda:
            torch.cuda.synchronize(device)
    events = prof.key_averages()
    sort_key = "self_device_time_total" if cuda else "self_cpu_time_total"
    try:
        table = events.table(sort_by=sort_key, row_limit=rows, max_name_column_width=60)
    except (AttributeError, KeyError, ValueError):
        sort_key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        table = events.table(sort_by=sort_key, row_limit=rows, max_name_column_width=60)
    return {"sort_by": sort_key, "table": table.splitlines()}


def vae_decode(vae, latents: torch.Tensor, device: torch.device) -> dict:
    timer = Timer(device)
    with torch.no_grad():
        frames = vae.decode(latents.to(device=device, dtype=vae.dtype), return_dict=False)[0]
    timer.mark("decode")
    seconds = timer.finish()["decode"]
    return {"seconds": seconds, "frames_shape": list(frames.shape), "finite": bool(torch.isfinite(frames).all())}


def relative_difference(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.double().cpu(), reference.double().cpu()
    return float((value - reference).norm() / reference.norm().clamp_min(1e-30))


# --------------------------------------------------------------------------- stages


def tolerate_broken_peft() -> str | None:
    """diffusers imports peft at module import time whenever peft is installed (the GPU image has
    it; this project does not use it). If that peft cannot be imported with the image's
    transformers, tell diffusers it is absent instead of failing the whole run."""
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        return None
    try:
        import peft.helpers  # noqa: F401
        import peft.tuners.tuners_utils  # noqa: F401
        return None
    except Exception as err:  # noqa: BLE001 - any failure means: run without peft
        import diffusers.utils.import_utils as import_utils

        import_utils._peft_available = False
        return f"peft present but not importable ({type(err).__name__}: {err}); diffusers told it is absent"


def environment(device: torch.device, args) -> dict:
    import diffusers

    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "device": str(device),
        "sizes": "tiny" if args.tiny else "real",
    }
    for package in ("transformers", "accelerate", "peft"):
        try:
            env[package] = __import__(package).__version__
        except Exception:  # noqa: BLE001 - absent or broken: recorded as None
            env[package] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=torch.cuda.get_device_name(device), gpu_memory_gib=props.total_memory / GIB,
                   cuda=torch.version.cuda, multiprocessors=props.multi_processor_count)
    else:
        env.update(gpu=None, cpu=platform.processor() or platform.machine())
    from multitalk_desktop.engine.attention_backend import available_backends

    env["attention_backends_available"] = available_backends()
    return env


def measure_vae(report: Report, size: dict, device: torch.device, seed: int, budget: Budget) -> dict:
    """The plain VAE decode of one clip (reference for the fast-mode target), whole and tiled."""
    cfg = size["vae"]
    vae = build_vae(cfg, device, seed)
    latent_frames = (size["frames"] - 1) // 4 + 1
    gen = torch.Generator(device=device).manual_seed(seed + 7)
    latents = torch.randn(1, cfg["z_dim"], latent_frames, *size["latent_hw"], generator=gen, device=device)
    vae_decode(vae, latents[:, :, :2], device)  # warm-up: kernels, cuDNN handles
    results = {}
    for tiled in (False, True):
        if tiled:
            if not budget.allows(10):
                results["tiled"] = {"skipped": "time budget"}
                continue
            tile = size["vae_tile"]
            if tile:
                vae.enable_tiling(*tile)
            else:
                vae.enable_tiling()
        free_memory(device)
        before = gpu_now(device)
        run = vae_decode(vae, latents, device)
        peak = gpu_peak(device)
        if device.type == "cuda":
            run["peak_extra_gib"] = peak["peak_allocated_gib"] - before["allocated_gib"]
            run.update(peak)
        results["tiled" if tiled else "whole"] = run
        report.say(f"  VAE decode {'tiled' if tiled else 'whole'}: {run['seconds']:.2f} s, "
                   f"peak +{run.get('peak_extra_gib', float('nan')):.2f} GiB, frames {run['frames_shape']}, "
                   f"finite={run['finite']}")
    del vae, latents
    free_memory(device)
    return results


def measure_plain(report: Report, model, size: dict, inputs: dict, device: torch.device, repeats: int) -> dict:
    plain = build_plain_sharing(model, size["transformer"], device)
    plain_pass(plain, inputs, inputs["latents"])  # warm-up
    free_memory(device)
    timer = Timer(device)
    for i in range(repeats):
        plain_pass(plain, inputs, inputs["latents"])
        timer.mark(f"forward_{i}")
    times = timer.finish()
    per_forward = times["total"] / repeats
    result = {"forward_s": per_forward, "forwards": [times[f"forward_{i}"] for i in range(repeats)],
              **gpu_peak(device)}
    report.say(f"  plain WanTransformer3DModel forward: {per_forward:.3f} s (mean of {repeats}), "
               f"peak {_fmt(result['peak_allocated_gib'])} GiB")
    del plain
    free_memory(device)
    return result


def measure_ref_map(report: Report, size: dict, device: torch.device, dtype: torch.dtype, seed: int) -> dict:
    """One block's two-speaker reference-attention map at the clip's shapes: the model's chunked
    fp32 version against the fused attention version (engine/ref_map.py)."""
    from multitalk_desktop.engine.ref_map import reference_attention_map_fused
    from multitalk_desktop.engine.transformer import (
        reference_attention_map_explicit as reference_attention_map,
    )

    cfg = size["transformer"]
    frames = (size["frames"] - 1) // cfg["vae_scale"] + 1
    per_frame = (size["latent_hw"][0] // 2) * (size["latent_hw"][1] // 2)
    gen = torch.Generator(device=device).manual_seed(seed + 3)
    shape = (1, frames * per_frame, cfg["num_attention_heads"], cfg["attention_head_dim"])
    query = torch.randn(*shape, generator=gen, device=device).to(dtype)
    key = torch.randn(*shape, generator=gen, device=device).to(dtype)
    masks = torch.zeros(3, per_frame, device=device)
    half = per_frame // 2
    masks[0, :half] = 1
    masks[1, half:] = 1
    result = {}
    maps = {}
    for name, fn in (("model", reference_attention_map), ("fused", reference_attention_map_fused)):
        with torch.no_grad():
            fn(query, key, per_frame, masks, 2)  # warm-up
            timer = Timer(device)
            for _ in range(3):
                maps[name] = fn(query, key, per_frame, masks, 2)
            timer.mark("map")
        result[f"{name}_s"] = timer.finish()["map"] / 3
    result["rel_diff"] = relative_difference(maps["fused"], maps["model"])
    result["max_abs_diff"] = float((maps["fused"] - maps["model"]).abs().max())
    report.say(f"  reference-attention map, one block: model {result['model_s'] * 1000:.1f} ms, fused "
               f"{result['fused_s'] * 1000:.1f} ms, rel diff {result['rel_diff']:.2e}")
    return result


def measure_profile(report: Report, name: str, size: dict, device: torch.device, dtype: torch.dtype,
                    seed: int, budget: Budget, reference: dict, vae_cfg: dict, fast: bool) -> dict:
    from multitalk_desktop.engine.fp8 import fp8_bytes
    from multitalk_desktop.engine.profiles import apply_profile

    result: dict = {"profile": name}
    model = build_multitalk(size["transformer"], device, dtype, seed)
    inputs = make_inputs(model, size, device, dtype, seed)
    vae = build_vae(vae_cfg, device, seed)
    free_memory(device)
    host = HostPeak()
    host.start()
    t0 = time.perf_counter()
    applied = apply_profile(model, name, device, other_modules=[vae])
    if size["vae_tile"] and applied.spec.vae_tiling:
        vae.enable_tiling(*size["vae_tile"])
    result["apply_s"] = time.perf_counter() - t0
    free_memory(device)
    result["resident_after_apply"] = gpu_now(device)
    fp8, other = fp8_bytes(model)
    result["weights"] = {"fp8_gib": fp8 / GIB, "other_gib": other / GIB}
    if applied.offload is not None:
        info = applied.offload
        result["offload"] = {"groups": info.groups, "streamed": info.streamed, "pinning": info.pinning,
                             "pinned_gib": info.pinned_bytes / GIB}

    timer = Timer(device)
    contexts = project_audio(model, inputs, timer)
    result["audio_projection_s"] = timer.finish()["audio_projection"]
    warm = Timer(device)
    multitalk_pass(model, inputs, contexts, inputs["latents"], "cond")  # warm-up (offload: traces order)
    warm.mark("cond")
    result["warmup_pass_s"] = warm.finish()["cond"]

    quality, preds = denoise_step(model, inputs, contexts, "quality", device)
    result["quality_step"] = quality
    cond = preds["cond"].float().cpu()
    result["finite"] = bool(torch.isfinite(cond).all())
    if "cond" in reference:
        result["cond_rel_diff_vs_full"] = relative_difference(cond, reference["cond"])
    else:
        reference["cond"] = cond
    del preds
    if fast and budget.allows(quality["total"] * 2 / 3 + 5):
        result["fast_step"], _ = denoise_step(model, inputs, contexts, "fast", device)
    else:
        result["fast_step"] = {"skipped": "time budget" if fast else "not requested"}
    if name == "full" and budget.allows(2 * quality["cond"] + quality["uncond"] + 15):
        result["reference_arithmetic"] = measure_reference_arithmetic(model, inputs, contexts, device, preds_cond=cond)
        ref = result["reference_arithmetic"]
        report.say(f"  full: straightforward arithmetic (reference_ops): cond {ref['cond_s']:.3f} s, uncond "
                   f"{ref['uncond_s']:.3f} s; lean vs straightforward cond output rel diff {ref['cond_rel_diff']:.2e}")
    if name == "full" and budget.allows(quality["cond"] * 2 + 10):
        result["kernel_profile"] = profile_kernels(model, inputs, contexts, device)
        for line in result["kernel_profile"]["table"]:
            report.say("    " + line)
    if applied.audio_kv_cache is not None:
        stats = applied.audio_kv_cache.stats
        result["audio_kv_cache"] = {"hits": stats.hits, "misses": stats.misses,
                                    "cached_gib": applied.audio_kv_cache.cached_bytes() / GIB}
    result["denoise_peak"] = gpu_peak(device)

    # Decode with the transformer still placed as the profile leaves it (its real peak).
    if budget.allows(10):
        latent_frames = inputs["latents"].shape[2]
        latents = torch.randn(1, vae_cfg["z_dim"], latent_frames, *size["latent_hw"], device=device)
        from multitalk_desktop.engine.vae_tiles import planned_tiling

        tile_area = None if size["vae_tile"] else applied.vae_tile_area  # the engine's decode tiles
        with applied.using(vae), planned_tiling(vae, tuple(latents.shape[-2:]), tile_area) as plan:
            if device.type == "cuda":
                vae_decode(vae, latents[:, :, :2], device)  # warm-up: kernels for the tiled path
            result["decode"] = vae_decode(vae, latents, device)
            result["decode"]["tiled"] = bool(getattr(vae, "use_tiling", False))
            result["decode"]["tiles"] = f"{plan.rows}x{plan.cols} of {plan.tile_hw}" if plan else None
        del latents
    else:
        result["decode"] = {"skipped": "time budget"}
    result["clip_peak"] = gpu_peak(device)
    result["host_peak_gib"] = host.stop()
    result["host_peak_method"] = "VmHWM" if host.kernel_reset else "sampled RSS"

    del model, vae, inputs, contexts, applied
    free_memory(device)
    return result


# --------------------------------------------------------------------------- summary


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _verdict(value, limit) -> str:
    if value is None or limit is None:
        return ""
    return "PASS" if value <= limit else "MISS"


def summarise(report: Report, results: dict) -> None:
    plain = results.get("plain", {}).get("forward_s")
    vae_plain = results.get("vae", {}).get("whole", {}).get("seconds")
    profiles = results.get("profiles", {})
    full_step = profiles.get("full", {}).get("quality_step", {}).get("total")
    rows = []
    for name, res in profiles.items():
        step = res.get("quality_step", {}).get("total")
        fast = res.get("fast_step", {}).get("total")
        decode = res.get("decode", {}).get("seconds")
        quality_clip = step * QUALITY_STEPS + decode if step and decode else None
        fast_clip = fast * FAST_STEPS + decode if fast and decode else None
        peak = res.get("clip_peak", {}).get("peak_allocated_gib")
        row = dict(
            profile=name, quality_step_s=step, fast_step_s=fast, decode_s=decode,
            quality_clip_s=quality_clip, fast_clip_s=fast_clip, peak_gib=peak,
            peak_reserved_gib=res.get("clip_peak", {}).get("peak_reserved_gib"),
            host_gib=res.get("host_peak_gib"), rel_diff=res.get("cond_rel_diff_vs_full"),
            step_vs_plain=step / (3 * plain) if step and plain else None,
            fast_clip_vs_plain=(fast_clip / (FAST_STEPS * 2 * plain + vae_plain)
                                if fast_clip and plain and vae_plain else None),
            step_vs_full=step / full_step if step and full_step else None,
        )
        checks = [("quality step <= 1.10 x 3 plain", row["step_vs_plain"], TARGETS["quality_step_vs_plain"]),
                  ("fast clip <= 1.10 x plain", row["fast_clip_vs_plain"], TARGETS["fast_clip_vs_plain"]),
                  ("fast clip <= 35 s", fast_clip, TARGETS["fast_clip_s"])]
        target = TARGETS.get(name)
        if isinstance(target, dict):
            checks.append((f"peak <= {target['peak_gib']} GiB", peak, target["peak_gib"]))
            checks.append((f"step <= {target['step_vs_full']} x full", row["step_vs_full"], target["step_vs_full"]))
            if "host_gib" in target:
                checks.append((f"host RAM <= {target['host_gib']} GiB", row["host_gib"], target["host_gib"]))
        row["targets"] = {label: {"value": value, "limit": limit, "verdict": _verdict(value, limit)}
                          for label, value, limit in checks}
        rows.append(row)
    results["summary"] = rows

    report.say("")
    report.say("Targets (issue 6), same run and GPU:")
    for row in rows:
        for label, check in row["targets"].items():
            if check["verdict"]:
                report.say(f"  {row['profile']:<9} {label:<32} {_fmt(check['value'], 3):>8}  {check['verdict']}")
    report.say("")
    ref = results.get("ref_map")
    if ref:
        report.say(f"reference map per block: model {ref['model_s'] * 1e3:.1f} ms, fused {ref['fused_s'] * 1e3:.1f} ms")
    straight = profiles.get("full", {}).get("reference_arithmetic")
    lean_q = profiles.get("full", {}).get("quality_step", {})
    if straight and lean_q:
        report.say(f"full cond pass lean {lean_q['cond']:.3f} s vs straightforward {straight['cond_s']:.3f} s; uncond "
                   f"{lean_q['uncond']:.3f} s vs {straight['uncond_s']:.3f} s (cond output rel diff "
                   f"{straight['cond_rel_diff']:.2e})")
    report.say(f"plain forward {_fmt(plain, 3)} s; plain VAE decode {_fmt(vae_plain)} s; "
               f"3 plain forwards {_fmt(3 * plain if plain else None)} s")
    header = (f"{'profile':<9} {'q-step s':>8} {'x3plain':>7} {'xfull':>6} {'f-step s':>8} "
              f"{'q-clip s':>8} {'f-clip s':>8} {'peak GiB':>8} {'rsv GiB':>7} {'host GiB':>8} {'rel diff':>9}")
    report.say(header)
    for row in rows:
        report.say(
            f"{row['profile']:<9} {_fmt(row['quality_step_s']):>8} {_fmt(row['step_vs_plain'], 3):>7} "
            f"{_fmt(row['step_vs_full'], 3):>6} {_fmt(row['fast_step_s']):>8} {_fmt(row['quality_clip_s'], 1):>8} "
            f"{_fmt(row['fast_clip_s'], 1):>8} {_fmt(row['peak_gib']):>8} {_fmt(row['peak_reserved_gib']):>7} "
            f"{_fmt(row['host_gib']):>8} {_fmt(row['rel_diff'], 5) if row['rel_diff'] is not None else '-':>9}")


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (tests)")
    parser.add_argument("--quick", action="store_true", help="one profile (--profile, default full)")
    parser.add_argument("--profile", default="full", help="the profile --quick runs")
    parser.add_argument("--profiles", default=",".join(PROFILE_RUN_ORDER), help="comma-separated list")
    parser.add_argument("--no-fast", action="store_true", help="skip the fast-mode step")
    parser.add_argument("--plain-repeats", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=240.0,
                        help="skip optional measurements past this many seconds")
    parser.add_argument("--device", default=None, help="default: cuda if available (never for --tiny)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write OUT (JSON) and OUT.log")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    report = Report(args.out)
    budget = Budget(args.budget_s)
    size = SIZES["tiny" if args.tiny else "real"]
    device = torch.device(args.device or ("cpu" if args.tiny or not torch.cuda.is_available() else "cuda"))
    if not args.tiny and device.type != "cuda":
        report.say("The real-size benchmark needs a CUDA GPU (use --tiny on the CPU).")
        return 2
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    profiles = [args.profile] if args.quick else [p for p in args.profiles.split(",") if p]

    peft_note = tolerate_broken_peft()
    env = environment(device, args)
    if peft_note:
        env["note"] = peft_note
    report.data["environment"] = env
    report.data["targets"] = TARGETS
    report.say("MultiTalk GPU benchmark (bench/gpu_bench.py)")
    for key, value in env.items():
        report.say(f"  {key}: {value}")
    results = report.data["results"]

    report.say("[1/3] VAE decode (real-size AutoencoderKLWan, fp32)" if not args.tiny else "[1/3] VAE decode")
    results["vae"] = measure_vae(report, size, device, args.seed, budget)
    report.save()

    report.say("[2/3] plain WanTransformer3DModel (same backbone weights, same shapes)")
    started = time.perf_counter()
    model = build_multitalk(size["transformer"], device, dtype, args.seed)
    params = sum(p.numel() for p in model.parameters())
    report.say(f"  MultiTalk transformer: {params:,} parameters, built in {time.perf_counter() - started:.1f} s")
    inputs = make_inputs(model, size, device, dtype, args.seed)
    results["plain"] = measure_plain(report, model, size, inputs, device, args.plain_repeats)
    results["plain"]["multitalk_parameters"] = params
    del model, inputs
    free_memory(device)
    results["ref_map"] = measure_ref_map(report, size, device, dtype, args.seed)
    free_memory(device)
    report.save()

    report.say(f"[3/3] profiles: {', '.join(profiles)}")
    results["profiles"] = {}
    reference: dict = {}
    for name in profiles:
        # A profile costs about six passes (warm-up, quality, fast) plus building, placing and
        # decoding (~25 s at real size); the first profile's passes give the pass time.
        steps = [r["quality_step"]["total"] for r in results["profiles"].values() if "quality_step" in r]
        estimate = 2 * steps[0] + 25 if steps else 0
        if results["profiles"] and not budget.allows(estimate):
            report.say(f"  {name}: skipped (time budget: {budget.elapsed:.0f} s used)")
            results["profiles"][name] = {"skipped": "time budget"}
            continue
        report.say(f"  {name}: building and applying ...")
        try:
            res = measure_profile(report, name, size, device, dtype, args.seed, budget, reference,
                                  size["vae"], fast=not args.no_fast)
        except Exception as err:  # keep the other profiles' figures
            import traceback

            report.say(f"  {name}: FAILED: {type(err).__name__}: {err}")
            report.say(traceback.format_exc())
            res = {"error": f"{type(err).__name__}: {err}"}
        free_memory(device)  # here, not in `except`: the traceback would keep the model alive
        results["profiles"][name] = res
        if "quality_step" in res:
            q = res["quality_step"]
            report.say(
                f"  {name}: quality step {q['total']:.3f} s ({', '.join(f'{k} {q[k]:.3f}' for k in QUALITY_PASSES)}), "
                f"fast step {_fmt(res['fast_step'].get('total'), 3)} s, decode {_fmt(res['decode'].get('seconds'))} s, "
                f"peak {_fmt(res['clip_peak']['peak_allocated_gib'])} GiB (reserved "
                f"{_fmt(res['clip_peak']['peak_reserved_gib'])}), host {res['host_peak_gib']:.2f} GiB, "
                f"rel diff vs full {_fmt(res.get('cond_rel_diff_vs_full'), 5)}, apply {res['apply_s']:.1f} s, "
                f"warm-up pass {res['warmup_pass_s']:.2f} s, finite={res['finite']}"
                + (f", pinned {res['offload']['pinned_gib']:.2f} GiB ({res['offload']['pinning']})"
                   if "offload" in res else ""))
        report.save()

    summarise(report, results)
    report.say(f"total wall time {budget.elapsed:.1f} s")
    report.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
