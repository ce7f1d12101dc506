"""Shared fixtures of the pipeline tests: ONE tiny models folder and ONE loaded engine per session
(the real loading code on tiny random models) and short cuts of the example voices."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import EXAMPLES, cut


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    from multitalk_desktop.engine.engine import quiet_library_output
    from multitalk_desktop.engine.make_tiny import make_tiny_models

    quiet_library_output()
    return make_tiny_models(tmp_path_factory.mktemp("tiny") / "models")


@pytest.fixture(scope="session")
def engine(tiny_models):
    from multitalk_desktop.engine.engine import MultiTalkEngine

    eng = MultiTalkEngine.load(tiny_models, device="cpu")
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def voices(tmp_path_factory) -> dict[str, Path]:
    """man 1.6 s, woman 1.0 s (unequal), long 6.4 s (three clips)."""
    folder = tmp_path_factory.mktemp("voices")
    return {
        "man": cut(EXAMPLES / "1-man.WAV", 1.6, folder / "man.wav"),
        "woman": cut(EXAMPLES / "1-woman.WAV", 1.0, folder / "woman.wav", offset=5.0),
        "long": cut(EXAMPLES / "1-man.WAV", 6.4, folder / "long.wav"),
    }
