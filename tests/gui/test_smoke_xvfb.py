"""The real app (`python -m multitalk_desktop`) on a real X server (Xvfb), opened and closed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="Xvfb (xvfb-run) is not installed")
def test_the_app_opens_a_window_under_xvfb_and_closes_cleanly(isolated_home, examples):
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)  # the real xcb platform, not offscreen
    env.update({
        "MULTITALK_DESKTOP_TEST_ENGINE": "1",  # test-only: no models needed
        "MULTITALK_DESKTOP_QUIT_AFTER_MS": "1500",  # test-only: close the window after 1.5 s
        "MULTITALK_DESKTOP_PRINT_STARTUP": "1",
    })
    proc = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-m", "multitalk_desktop",
         str(examples / "single1.png"), str(examples / "1.wav")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "window shown after" in proc.stdout, proc.stdout + proc.stderr[-2000:]
