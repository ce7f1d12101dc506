"""Shared fixtures. Every test runs against its own data root (MULTITALK_DESKTOP_HOME), so no
test touches the user's real folders or another test's database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach a model hub

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "resources" / "examples"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MULTITALK_DESKTOP_HOME", str(home))
    return home


@pytest.fixture
def examples() -> Path:
    return EXAMPLES
