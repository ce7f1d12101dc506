"""Which engine the window's worker uses.

The real MultiTalk engine normally. The torch-free test engine only when asked for explicitly,
for tests and screenshots: `MULTITALK_DESKTOP_TEST_ENGINE=1` (or `--test-engine` on the command
line). The window then says so in its title and status bar, and every job it runs is recorded as
produced by "test-engine": it is never used silently.
`MULTITALK_DESKTOP_TEST_STEP_SECONDS` slows its steps down so progress can be watched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

TEST_ENGINE_ENV = "MULTITALK_DESKTOP_TEST_ENGINE"
TEST_STEP_ENV = "MULTITALK_DESKTOP_TEST_STEP_SECONDS"
TEST_ENGINE_FLAG = "--test-engine"


@dataclass(frozen=True)
class EngineChoice:
    kind: str = "real"  # "real" or "test"
    step_seconds: float = 0.0

    @property
    def is_test(self) -> bool:
        return self.kind == "test"


def engine_choice_from_env(argv: list[str] | None = None) -> EngineChoice:
    wanted = os.environ.get(TEST_ENGINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if argv and TEST_ENGINE_FLAG in argv:
        wanted = True
    if not wanted:
        return EngineChoice()
    try:
        step = float(os.environ.get(TEST_STEP_ENV, "0") or 0)
    except ValueError:
        step = 0.0
    return EngineChoice("test", max(0.0, step))
