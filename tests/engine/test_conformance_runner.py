"""The conformance runner and command: case discovery, comparison, failures, tolerances."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from multitalk_desktop.engine.conformance import runner
from multitalk_desktop.engine.conformance.case import discover, load_case, unit_of
from tests.engine.fixture_cases import FIXTURES

REPO = Path(__file__).resolve().parents[2]

# The fixture README's tolerance table: the bundled file may be tighter, never looser.
README_TOLERANCES = {
    ("transformer", "noise_pred"): (5e-5, 1e-5),
    ("wav2vec", "audio_emb"): (1e-5, 1e-5),
    ("audio_prep", "loaded_16k_1"): (1e-6, 0.0),
    ("audio_prep", "speech1"): (1e-7, 1e-5),
    ("audio_prep", "sum"): (1e-7, 1e-5),
    ("schedule", "timesteps"): (2e-4, 0.0),
    ("schedule", "latent_next"): (1e-6, 0.0),
    ("schedule", "noised"): (1e-6, 0.0),
    ("masks", "latent_masks"): (0.0, 0.0),
    ("masks", "token_masks"): (0.0, 0.0),
    ("colorcorr", "corrected"): (1e-5, 0.0),
    ("resize", "crop_u8"): (0.0, 0.0),
    ("resize", "crop_row_sums"): (0.0, 0.0),
    ("resize", "clip_input_sub4"): (1e-5, 0.0),
    ("resize", "clip_input"): (1e-5, 0.0),
    ("cfg", "step0.noise_pred"): (1e-5, 0.0),
    ("streaming", "window_indices"): (0.0, 0.0),
    ("streaming", "msk"): (0.0, 0.0),
    ("streaming", "clip1.step_init.add_latent"): (1e-6, 0.0),
}


@pytest.mark.parametrize(("unit", "output"), sorted(README_TOLERANCES))
def test_bundled_tolerances_are_never_looser_than_the_readme(unit, output):
    atol, rtol = runner.tolerance_for(runner.load_tolerances(), unit, output)
    readme_atol, readme_rtol = README_TOLERANCES[(unit, output)]
    assert atol <= readme_atol and rtol <= readme_rtol


def test_shared_parameter_file_is_not_a_case():
    stems, unusable = discover(FIXTURES)
    assert "transformer_common" not in stems
    assert not unusable
    assert len(stems) == len(list(FIXTURES.glob("*.json"))) - 1


def test_unit_comes_from_the_json_not_the_file_name(tmp_path):
    for ext in ("json", "safetensors"):
        shutil.copy(FIXTURES / f"cfg_two_pass.{ext}", tmp_path / f"zz_other_name.{ext}")
    report = runner.run_folder(tmp_path)
    assert [(c.name, c.unit, c.ok) for c in report.cases] == [("zz_other_name", "cfg", True)]


def test_unit_falls_back_to_the_official_function_name():
    assert unit_of({"function": "wan.utils.multitalk_utils.match_and_blend_colors(a, b, s)"}) == "colorcorr"
    assert unit_of({"function": "wan.multitalk.MultiTalkPipeline.add_noise(x, n, t)"}) == "schedule"
    assert unit_of({"description": "nothing known"}) is None


def _write_case(folder: Path, stem: str, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    meta = {"stem": stem, "case": stem, **meta}
    (folder / f"{stem}.json").write_text(json.dumps(meta))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / f"{stem}.safetensors"))


def _official_timesteps(steps: int, shift: float) -> np.ndarray:
    # Written from the README's description, independently of the engine.
    out = []
    for t in list(np.linspace(1000, 1, steps, dtype=np.float32)) + [np.float32(0)]:
        s = np.float32(t) / np.float32(1000)
        out.append(np.float32(shift) * s / (np.float32(1) + np.float32(shift - 1) * s) * np.float32(1000))
    return np.array(out, dtype=np.float32)


def test_unseen_folder_with_other_sizes_and_settings_passes(tmp_path):
    ts = _official_timesteps(6, 3.0)
    _write_case(tmp_path, "sched_a", {"unit": "schedule", "scalars": {"steps": 6, "shift": 3.0}},
                {"out.timesteps": torch.from_numpy(ts), "out.dt": torch.from_numpy((ts[:-1] - ts[1:]) / 1000)})
    gen = torch.Generator().manual_seed(7)
    tensors, scale_t, scale_a = {}, 3.0, 2.5
    for step in range(3):
        c, d, u = (torch.randn(8, 3, 2, 5, generator=gen) for _ in range(3))
        tensors |= {f"in.step{step}.cond": c, f"in.step{step}.drop_text": d, f"in.step{step}.uncond": u,
                    f"out.step{step}.noise_pred": u + scale_t * (c - d) + scale_a * (d - u)}
    _write_case(tmp_path, "guide_b", {"unit": "cfg", "scalars": {
        "text_guide_scale": scale_t, "audio_guide_scale": scale_a, "use_apg": False}}, tensors)
    report = runner.run_folder(tmp_path)
    assert report.ok, [c.line() for c in report.cases]
    assert len(report.cases) == 2


def test_wrong_output_fails_with_its_error(tmp_path):
    ts = _official_timesteps(4, 2.0)
    ts[2] += 0.01
    _write_case(tmp_path, "bad", {"unit": "schedule", "scalars": {"steps": 4, "shift": 2.0}},
                {"out.timesteps": torch.from_numpy(ts)})
    report = runner.run_folder(tmp_path)
    assert not report.ok
    (out,) = report.cases[0].outputs
    assert not out.ok and out.max_abs_error == pytest.approx(0.01, rel=1e-3)
    assert report.cases[0].line().startswith("FAIL")


def test_missing_output_exception_and_unknown_unit_all_fail(tmp_path):
    _write_case(tmp_path, "a", {"unit": "cfg"}, {"out.x": torch.zeros(2)})
    _write_case(tmp_path, "b", {"unit": "schedule"}, {"out.x": torch.zeros(2)})
    _write_case(tmp_path, "c", {"unit": "teleport"}, {"out.x": torch.zeros(2)})

    def boom(case):
        raise RuntimeError("broken port")

    report = runner.run_folder(tmp_path, registry={"cfg": lambda case: {}, "schedule": boom})
    reasons = {c.name: (c.ok, c.line()) for c in report.cases}
    assert reasons["a"][0] is False and "not produced" in reasons["a"][1]
    assert reasons["b"][0] is False and "broken port" in reasons["b"][1]
    assert reasons["c"][0] is False and "no handler" in reasons["c"][1]


def test_skipped_intermediate_is_reported_not_failed(tmp_path):
    _write_case(tmp_path, "s", {"unit": "cfg"}, {"out.y": torch.ones(2), "out.map": torch.ones(2)})
    report = runner.run_folder(tmp_path, registry={
        "cfg": lambda case: {"out.y": torch.ones(2), "__skipped__": {"out.map": "not computed for one voice"}}})
    assert report.ok and report.cases[0].skipped == {"map": "not computed for one voice"}


def test_empty_folder_is_a_failure(tmp_path):
    assert not runner.run_folder(tmp_path).ok


def test_case_tensors_are_private_copies():
    a, b = load_case(FIXTURES, "cfg_two_pass"), load_case(FIXTURES, "cfg_two_pass")
    a.tensors["in.step0.cond"].add_(1)
    assert not torch.equal(a.tensors["in.step0.cond"], b.tensors["in.step0.cond"])


def test_command_passes_on_the_public_fixtures():
    proc = subprocess.run([sys.executable, "-m", "multitalk_desktop", "conformance", str(FIXTURES)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("PASS", "FAIL"))]
    assert len(lines) == len(discover(FIXTURES)[0]) and all(ln.startswith("PASS") for ln in lines)


def test_command_json_report_and_failure_exit_code(tmp_path):
    ts = _official_timesteps(4, 2.0) + 1
    _write_case(tmp_path, "bad", {"unit": "schedule", "scalars": {"steps": 4, "shift": 2.0}},
                {"out.timesteps": torch.from_numpy(ts)})
    proc = subprocess.run([sys.executable, "-m", "multitalk_desktop", "conformance", str(tmp_path), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["failed"] == 1
    assert report["cases"][0]["outputs"][0]["max_abs_error"] == pytest.approx(1.0)
