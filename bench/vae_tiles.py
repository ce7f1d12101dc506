#!/usr/bin/env python3
"""VAE decode tiles: time, peak memory and difference from the untiled decode, per tiling.

Real-size AutoencoderKLWan (random weights, fp32, as the engine runs it) decoding one 81-frame clip
at 480p and 720p: untiled, diffusers' default tiles (256 px every 192), and the tiles
`engine/vae_tiles.plan_tiles` plans for several tile-area budgets (a fraction of the frame). The
peak is the allocation above what was allocated before the decode. `--tiny` runs on the CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_bench  # noqa: E402
import torch  # noqa: E402

CASES = {"480p": (60, 104), "720p": (90, 160)}
FRACTIONS = {"480p": (0.25, 0.35, 0.5, 0.7), "720p": (0.2, 0.3, 0.5)}


def decode(vae, latents, device) -> tuple[torch.Tensor, float, float]:
    gpu_bench.free_memory(device)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    timer = gpu_bench.Timer(device)
    with torch.no_grad():
        frames = vae.decode(latents, return_dict=False)[0]
    timer.mark("decode")
    seconds = timer.finish()["decode"]
    peak = (torch.cuda.max_memory_allocated(device) - before) / gpu_bench.GIB if device.type == "cuda" else float("nan")
    return frames.float().cpu(), seconds, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from multitalk_desktop.engine.vae_tiles import planned_tiling

    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    config = gpu_bench.TINY_VAE if args.tiny else gpu_bench.REAL_VAE
    cases = {"tiny": (16, 24)} if args.tiny else CASES
    fractions = {"tiny": (0.3, 0.6)} if args.tiny else FRACTIONS
    frames = 5 if args.tiny else 21
    vae = gpu_bench.build_vae(config, device, seed=0)
    lines = [f"VAE decode tiles on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
             f"torch {torch.__version__}, {frames} latent frames"]
    results = []
    started = time.perf_counter()
    for name, hw in cases.items():
        gen = torch.Generator(device=device).manual_seed(7)
        latents = torch.randn(1, config["z_dim"], frames, *hw, generator=gen, device=device)
        vae.use_tiling = False
        decode(vae, latents[:, :, :2], device)  # warm-up
        whole, seconds, peak = decode(vae, latents, device)
        rows = [("whole", "-", seconds, peak, 0.0)]
        vae.enable_tiling(256, 256, 192, 192)  # diffusers' defaults, named so a later run is the same
        default, seconds, peak = decode(vae, latents, device)
        rows.append(("diffusers default 256/192", "15 tiles" if name == "480p" else "-", seconds, peak,
                     gpu_bench.relative_difference(default, whole)))
        for fraction in fractions[name]:
            with planned_tiling(vae, hw, int(fraction * hw[0] * hw[1])) as plan:
                planned, seconds, peak = decode(vae, latents, device)
            layout = f"{plan.rows}x{plan.cols} of {plan.tile_hw}" if plan else "whole"
            rows.append((f"planned, tile <= {fraction:.2f} of the frame", layout, seconds, peak,
                         gpu_bench.relative_difference(planned, whole)))
        lines.append(f"{name} (latent {hw[0]}x{hw[1]}):")
        for label, layout, seconds, peak, diff in rows:
            lines.append(f"  {label:<36} {layout:<22} {seconds:7.2f} s  peak +{peak:6.2f} GiB  rel diff {diff:.2e}")
            results.append(dict(size=name, tiling=label, layout=layout, seconds=seconds, peak_extra_gib=peak, rel_diff=diff))
        del whole, default, planned, latents
    lines.append(f"total {time.perf_counter() - started:.1f} s")
    gpu_bench.print_and_save(lines, results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
