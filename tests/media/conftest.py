"""Media made on the spot with the bundled ffmpeg and write_mp4: real files, no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from multitalk_desktop.media.video import write_mp4
from tests.media.samples import FPS, SR, gradient_frames, sine


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def talking_mp4(media_dir) -> Path:
    """2 s, 25 fps, 128x96, with a 2 s 220 Hz sound track."""
    return write_mp4(gradient_frames(50), FPS, media_dir / "talking.mp4", audio=sine(2.0), sample_rate=SR)


@pytest.fixture(scope="session")
def silent_mp4(media_dir) -> Path:
    return write_mp4(gradient_frames(10), FPS, media_dir / "silent.mp4")

