"""bench/gpu_bench.py --tiny: the GPU benchmark's code path (model building on the meta device,
shared plain weights, every profile, VAE decode, summary, JSON + log) runs on the CPU, from a
plain checkout (no package install), and reports what the GPU run must report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_bench_tiny_runs_from_a_plain_checkout(tmp_path):
    out = tmp_path / "bench.json"
    # As on the GPU machine: site-packages only through PYTHONPATH, no .pth processing (-S), so an
    # editable install of this project is invisible, and run from another folder: the script must
    # find the package by itself.
    site_dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(site_dirs)}
    proc = subprocess.run(
        [sys.executable, "-S", str(REPO / "bench" / "gpu_bench.py"), "--tiny", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    log = out.with_suffix(".log").read_text()
    env_info = data["environment"]
    assert env_info["torch"] and env_info["diffusers"] and "--tiny" in env_info["command"]
    results = data["results"]
    assert results["plain"]["forward_s"] > 0
    assert results["vae"]["whole"]["finite"] and results["vae"]["tiled"]["finite"]
    profiles = results["profiles"]
    assert list(profiles) == ["full", "fp8", "low", "balanced"]
    for name, res in profiles.items():
        assert "error" not in res, (name, res)
        assert res["finite"], name
        assert set(res["quality_step"]) >= {"cond", "drop_text", "uncond", "total"}
        assert set(res["fast_step"]) >= {"cond", "drop_audio", "total"}
        assert res["decode"]["seconds"] > 0 and res["host_peak_gib"] > 0
    # Prediction differences from full: none for offload, bounded for fp8 (tests/perf/test_profiles).
    assert profiles["balanced"]["cond_rel_diff_vs_full"] == 0.0
    assert 0 < profiles["fp8"]["cond_rel_diff_vs_full"] < 0.15
    assert profiles["low"]["cond_rel_diff_vs_full"] == profiles["fp8"]["cond_rel_diff_vs_full"]
    assert profiles["full"]["audio_kv_cache"]["hits"] > 0
    assert profiles["low"]["weights"]["fp8_gib"] > 0 and profiles["balanced"]["offload"]["groups"] == 3
    assert results["ref_map"]["rel_diff"] < 1e-5  # fp32 on the CPU: the same map
    straight = profiles["full"]["reference_arithmetic"]  # lean vs straightforward block arithmetic
    assert straight["cond_s"] > 0 and straight["cond_rel_diff"] < 1e-5  # fp32 on the CPU: same numbers
    assert any("Name" in line for line in profiles["full"]["kernel_profile"]["table"])
    rows = {row["profile"]: row for row in results["summary"]}
    assert "host RAM <= 28.0 GiB" in rows["low"]["targets"]
    assert "quality step <= 1.10 x 3 plain" in rows["full"]["targets"]
    assert "Targets (issue 6)" in log and "total wall time" in log
