#!/usr/bin/env python3
"""Peak host RAM of loading the UMT5-XXL text encoder: the bf16 `from_pretrained` path of every
profile but `low`, and `low`'s fp8 loader (Linear weights converted to fp8 tensor by tensor).

Writes a real-size UMT5-XXL checkpoint with seeded random bf16 weights in diffusers' layout
(text_encoder/config.json, ~5 GB shards and their index; `shared.weight` only, as save_pretrained
writes the tied embedding) under the system temp folder, then loads it once per
mode, each in a fresh process so its high-water mark (VmHWM) is that load's alone, optionally
encodes a short prompt, and deletes the folder (also on failure). Weights are drawn at the scale
transformers initialises UMT5 with, so the fp8-vs-bf16 difference printed is that of random
weights at init scale, not of the trained encoder. The published Wan2.1 Diffusers checkpoint
stores UMT5 in float32 (five ~5 GB shards, ~22.7 GB): the default here; `--disk-dtype bfloat16`
writes an ~11.4 GB one, which transformers memory-maps instead of copying.

    python bench/text_encoder_ram.py [--layers N] [--prompt-tokens N] [--disk-dtype D] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # a plain checkout: the package need not be installed

GIB = 2**30
# Wan2.1-I2V-14B-480P-Diffusers text_encoder/config.json (google/umt5-xxl), dropout off.
UMT5_XXL = dict(
    vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True,
    layer_norm_epsilon=1e-6, dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
    decoder_start_token_id=0, tie_word_embeddings=False,
)
SHARD_BYTES = 5 * 10**9
MODES = {"bf16 from_pretrained": "full", "fp8 loader (low)": "low"}


def init_std(name: str, cfg: dict) -> float:
    """transformers' UMT5 init scale for the tensor `name` (initializer_factor 1); norms are ones."""
    if name.startswith("shared"):
        return 1.0
    if ".q." in name:
        return (cfg["d_model"] * cfg["d_kv"]) ** -0.5
    if ".o." in name:
        return (cfg["num_heads"] * cfg["d_kv"]) ** -0.5
    if ".wo." in name:
        return cfg["d_ff"] ** -0.5
    return cfg["d_model"] ** -0.5  # k, v, wi_0, wi_1, relative_attention_bias


def write_checkpoint(folder: Path, cfg: dict, seed: int = 0, shard_bytes: int = SHARD_BYTES,
                     dtype: str = "float32") -> int:
    """config.json + model-0000k-of-0000n.safetensors + index; returns the weights' bytes."""
    import torch
    from accelerate import init_empty_weights
    from safetensors.torch import save_file
    from transformers import UMT5Config, UMT5EncoderModel

    folder.mkdir(parents=True)
    config = UMT5Config(**cfg)
    config.save_pretrained(str(folder))
    with init_empty_weights():
        shapes = {n: tuple(p.shape) for n, p in UMT5EncoderModel(config).named_parameters()}
    shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared: saved once, as shared.weight
    generator = torch.Generator().manual_seed(seed)
    shard_names: list[list[str]] = [[]]  # the tensors stay in RAM only until their shard is saved
    current: dict = {}
    total = 0
    for name, shape in shapes.items():
        tensor = torch.empty(shape, dtype=getattr(torch, dtype))
        if "norm" in name:
            tensor.fill_(1.0)
        else:
            tensor.normal_(0.0, init_std(name, cfg), generator=generator)
        if current and sum(t.nbytes for t in current.values()) + tensor.nbytes > shard_bytes:
            save_file(current, str(folder / f"shard-{len(shard_names)}"), metadata={"format": "pt"})
            current = {}
            shard_names.append([])
        current[name] = tensor
        shard_names[-1].append(name)
        total += tensor.nbytes
    save_file(current, str(folder / f"shard-{len(shard_names)}"), metadata={"format": "pt"})
    weight_map = {}
    for k, names in enumerate(shard_names, 1):
        final = f"model-{k:05d}-of-{len(shard_names):05d}.safetensors"
        (folder / f"shard-{k}").rename(folder / final)
        weight_map.update(dict.fromkeys(names, final))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), "utf-8")
    return total


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(profile: str, wan: Path, prompt_tokens: int, out: Path) -> dict:
    """In the fresh process: load as `profile` would, then encode `prompt_tokens` tokens."""
    import torch

    from multitalk_desktop.engine.devices import DevicePlan
    from multitalk_desktop.engine.loaders import load_text_encoder

    peak_anon = [status_kib("RssAnon")]
    done = threading.Event()

    def sample() -> None:  # anonymous memory is what a box without swap cannot page out
        while not done.wait(0.02):
            peak_anon[0] = max(peak_anon[0], status_kib("RssAnon"))

    before = status_kib("VmRSS")
    threading.Thread(target=sample, daemon=True).start()
    start = time.perf_counter()
    # As on a 32 GB PC running `low` (little RAM free): the loader's 8-bit path for that profile.
    model = load_text_encoder(wan, DevicePlan("cpu", "bfloat16", "float32", profile), free_ram_gib=8.0)
    result = {"load_s": time.perf_counter() - start, "hwm_gib": status_kib("VmHWM") / 2**20,
              "before_gib": before / 2**20,
              "weights_gib": sum(p.numel() * p.element_size() for p in model.parameters()) / GIB}
    if prompt_tokens:
        ids = torch.arange(2, 2 + prompt_tokens).unsqueeze(0)
        start = time.perf_counter()
        with torch.no_grad():
            hidden = model(ids, torch.ones_like(ids)).last_hidden_state
        result["encode_s"] = time.perf_counter() - start
        torch.save(hidden.float(), out)
    done.set()
    result["anon_peak_gib"] = peak_anon[0] / 2**20
    result["hwm_gib"] = status_kib("VmHWM") / 2**20
    return result


def measure(profile: str, wan: Path, prompt_tokens: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", profile, str(wan), str(out), "--prompt-tokens", str(prompt_tokens)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{profile} load failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(cfg: dict, prompt_tokens: int = 8, seed: int = 0, shard_bytes: int = SHARD_BYTES,
        disk_dtype: str = "float32") -> dict:
    """Write, measure every mode, delete. Returns {mode: figures} plus the checkpoint's size and
    the fp8 output's relative L2 distance from the bf16 one."""
    import torch

    root = Path(tempfile.mkdtemp(prefix="umt5_ram_", dir=tempfile.gettempdir()))
    try:
        start = time.perf_counter()
        size = write_checkpoint(root / "wan" / "text_encoder", cfg, seed, shard_bytes, disk_dtype)
        report: dict = {"checkpoint_gib": size / GIB, "write_s": time.perf_counter() - start,
                        "disk_dtype": disk_dtype, "root": str(root)}
        for mode, profile in MODES.items():
            report[mode] = measure(profile, root / "wan", prompt_tokens, root / f"{profile}.pt")
        if prompt_tokens:
            ref, fp8 = torch.load(root / "full.pt"), torch.load(root / "low.pt")
            report["fp8_rel_l2"] = float((fp8 - ref).norm() / ref.norm())
        return report
    finally:
        shutil.rmtree(root, ignore_errors=True)


def print_table(report: dict, cfg: dict) -> None:
    print(f"UMT5 checkpoint: {cfg['num_layers']} layers, d_model {cfg['d_model']}, "
          f"{report['checkpoint_gib']:.2f} GiB {report['disk_dtype']} on disk (written in {report['write_s']:.0f} s)")
    print(f"{'mode':<22}{'load s':>8}{'weights GiB':>13}{'VmHWM GiB':>11}{'anon peak GiB':>15}"
          f"{'baseline GiB':>14}{'encode s':>10}")
    for mode in MODES:
        r = report[mode]
        encode = f"{r['encode_s']:.1f}" if "encode_s" in r else "-"
        print(f"{mode:<22}{r['load_s']:>8.1f}{r['weights_gib']:>13.2f}{r['hwm_gib']:>11.2f}"
              f"{r['anon_peak_gib']:>15.2f}{r['before_gib']:>14.2f}{encode:>10}")
    if "fp8_rel_l2" in report:
        print(f"fp8 vs bf16 encoder output, relative L2: {report['fp8_rel_l2']:.4f} "
              "(random weights at init scale)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=UMT5_XXL["num_layers"], help="fewer layers: a quick run")
    parser.add_argument("--prompt-tokens", type=int, default=8, help="0: load only")
    parser.add_argument("--disk-dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=3, metavar=("PROFILE", "WAN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        profile, wan, out = args.child
        print(json.dumps(child(profile, Path(wan), args.prompt_tokens, Path(out))))
        return 0
    cfg = {**UMT5_XXL, "num_layers": args.layers}
    print_table(run(cfg, args.prompt_tokens, args.seed, disk_dtype=args.disk_dtype), cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
