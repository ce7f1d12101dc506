"""bench/precision_check.py and bench/vae_tiles.py run on the CPU (--tiny) from a plain checkout
and write what their GPU runs must write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_bench(script: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / f"{script}.py"), "--tiny", *args, "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert out.with_suffix(".log").read_text().strip()
    return json.loads(out.read_text())


def test_precision_check_compares_both_arithmetics_with_float32(tmp_path):
    results = run_bench("precision_check", tmp_path, "--layers", "2")["results"]
    for kind in ("cond", "uncond"):
        row = results[kind]
        # bf16 against float32 on a tiny random model: both forms land in bf16's range, near each other
        assert 0 < row["lean_vs_float32"] < 0.05 and 0 < row["straightforward_vs_float32"] < 0.05
        assert row["lean_vs_float32"] < 2 * row["straightforward_vs_float32"]


def test_vae_tile_bench_reports_whole_default_and_planned_decodes(tmp_path):
    results = run_bench("vae_tiles", tmp_path)["results"]
    tilings = [row["tiling"] for row in results]
    assert tilings[0] == "whole" and tilings[1].startswith("diffusers default")
    assert any(t.startswith("planned") for t in tilings)
    assert results[0]["rel_diff"] == 0.0 and all(row["seconds"] > 0 for row in results)
