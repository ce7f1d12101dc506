"""`multitalk-desktop doctor [--json]`: what this machine has (GPU, driver, disk, ffmpeg, models).

Torch is imported here only, inside `run`, so the command line stays fast.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

# The folders DESIGN.md expects, used when the models checker is not in this build.
EXPECTED_MODEL_FOLDERS = ("Wan2.1-I2V-14B-480P-Diffusers", "chinese-wav2vec2-base",
                          "MeiGen-MultiTalk/multitalk.safetensors")


EXIT_CODES = ("Exit codes: 0 everything needed to generate is there (a CUDA GPU, ffmpeg, the "
              "models); 1 something is missing (the report says what); 2 bad usage.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--models", metavar="DIR", help="models folder to check (default: settings)")


def _torch_facts() -> dict:
    facts = {"torch": None, "cuda_available": False, "gpus": []}
    try:
        import torch
    except Exception:  # not installed, or a broken wheel: report it, don't crash
        return facts
    facts["torch"] = torch.__version__
    try:
        facts["cuda_available"] = bool(torch.cuda.is_available())
        for i in range(torch.cuda.device_count() if facts["cuda_available"] else 0):
            free, total = torch.cuda.mem_get_info(i)
            facts["gpus"].append({"name": torch.cuda.get_device_name(i),
                                  "vram_total_gb": round(total / 1024**3, 2),
                                  "vram_free_gb": round(free / 1024**3, 2)})
    except Exception:
        pass
    return facts


def _driver() -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def _ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return shutil.which("ffmpeg")


def _models(models_dir: Path) -> dict:
    try:
        from multitalk_desktop.engine.model_files import check_models
    except ImportError:
        missing = [f for f in EXPECTED_MODEL_FOLDERS if not (models_dir / f).exists()]
        return {"path": str(models_dir), "ready": not missing, "missing": missing}
    report = check_models(models_dir)
    return {"path": str(models_dir), "ready": bool(report.ready),
            "missing": list(report.missing) + list(report.broken)}


def collect(models_dir: Path | None = None) -> dict:
    from multitalk_desktop import __version__
    from multitalk_desktop.config import load_context

    ctx = load_context()
    models_dir = Path(models_dir).expanduser() if models_dir else Path(ctx.models_dir)
    data_dir = ctx.paths.data_dir
    facts = _torch_facts()
    return {
        "version": __version__,
        "python": platform.python_version(),
        "torch": facts["torch"],
        "cuda_available": facts["cuda_available"],
        "gpus": facts["gpus"],
        "driver": _driver(),
        "data_dir": str(data_dir),
        "free_disk_gb": round(shutil.disk_usage(data_dir).free / 1024**3, 2),
        "ffmpeg": _ffmpeg(),
        "models": _models(models_dir),
    }


def run(args: argparse.Namespace) -> int:
    report = collect(args.models)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        gpus = ", ".join(f"{g['name']} ({g['vram_free_gb']}/{g['vram_total_gb']} GB free)"
                         for g in report["gpus"]) or "none found"
        m = report["models"]
        lines = [
            f"multitalk-desktop {report['version']}, Python {report['python']}",
            f"torch:     {report['torch'] or 'not installed'}",
            f"CUDA:      {'available' if report['cuda_available'] else 'not available'}",
            f"GPUs:      {gpus}",
            f"driver:    {report['driver'] or 'no NVIDIA driver found (nvidia-smi missing)'}",
            f"data:      {report['data_dir']} ({report['free_disk_gb']} GB free)",
            f"ffmpeg:    {report['ffmpeg'] or 'missing'}",
            f"models:    {m['path']}: " + ("ready" if m["ready"] else f"not ready, missing {', '.join(m['missing'])}"),
        ]
        print("\n".join(lines))
        if not report["cuda_available"]:
            print("Generation needs an NVIDIA GPU with CUDA; this machine can queue jobs but not run them.",
                  file=sys.stderr)
    ready = report["cuda_available"] and report["models"]["ready"] and report["ffmpeg"]
    return 0 if ready else 1
