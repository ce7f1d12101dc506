"""`generate` and `selftest` on the command line."""

from __future__ import annotations

import pytest

from multitalk_desktop.cli import main
from multitalk_desktop.media.video import probe_video

from .helpers import EXAMPLES


def test_generate_reports_every_request_problem_one_per_line_with_exit_2(tmp_path, capsys):
    code = main(["generate", "--image", str(tmp_path / "nope.png"), "--audio", str(tmp_path / "nope.wav"),
                 "--steps", "0", "--out", str(tmp_path / "o.mp4")])
    assert code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    fields = {line.split(":")[0] for line in lines}
    assert {"image", "steps"} <= fields and any(f.startswith("audio") for f in fields)
    assert not (tmp_path / "o.mp4").exists()


def test_generate_writes_the_mp4_with_tiny_models(tiny_models, voices, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    code = main(["generate", "--image", str(EXAMPLES / "multi3.png"), "--audio", str(voices["woman"]),
                 "--resolution", "64x32", "--steps", "1", "--seed", "3", "--models", str(tiny_models),
                 "--device", "cpu", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert probe_video(out).fps == pytest.approx(25.0)
    assert capsys.readouterr().out.strip().endswith("o.mp4")


def test_generate_reads_compiled_mode_from_the_settings_and_no_compile_overrides_it(
        tiny_models, voices, tmp_path, capsys):
    from multitalk_desktop.config import load_context

    ctx = load_context()
    ctx.settings.compile_blocks = True
    ctx.settings.save(ctx.paths)
    job = ["generate", "--image", str(EXAMPLES / "multi3.png"), "--audio", str(voices["woman"]),
           "--resolution", "64x32", "--steps", "1", "--models", str(tiny_models), "--device", "cpu"]

    assert main([*job, "--out", str(tmp_path / "asked.mp4")]) == 0
    # On the CPU the engine stays eager; the job says why, so the setting reached the engine.
    assert "warning: Compiled mode is off: it needs an NVIDIA GPU" in capsys.readouterr().err
    assert main([*job, "--no-compile", "--out", str(tmp_path / "not-asked.mp4")]) == 0
    assert "Compiled mode" not in capsys.readouterr().err


@pytest.mark.slow
def test_selftest_prints_ok(capsys):
    assert main(["selftest"]) == 0
    assert capsys.readouterr().out.startswith("OK")
