from __future__ import annotations

from pathlib import Path

import pytest

from multitalk_desktop.config import load_context
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.spec import JobRequest
from tests.jobs import media_factory


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """Small inputs made once per session (read-only use)."""
    d = tmp_path_factory.mktemp("media")
    media_factory.png(d / "face.png", 160, 96)
    media_factory.wav(d / "voice4s.wav", 4.0)
    media_factory.wav(d / "voice1s.wav", 1.0, freq=330.0)
    media_factory.wav(d / "voice2s.wav", 2.0, freq=440.0)
    return d


@pytest.fixture
def queue(isolated_home) -> JobQueue:
    q = JobQueue(load_context())
    yield q
    q.close()


@pytest.fixture
def small_request(media) -> JobRequest:
    """A job the test engine finishes in a fraction of a second (one clip, two steps)."""
    return JobRequest(image=str(media / "face.png"), audio=[str(media / "voice1s.wav")], steps=2,
                      seed=7, prompt="A small test job")
