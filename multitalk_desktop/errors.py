"""The project's own exceptions. Each carries a sentence a creator understands and, where one
exists, a hint about what to do next. Lower layers raise these; the CLI, runner, API and GUI show
`str(err)` and `err.hint` as they are."""

from __future__ import annotations


class MultiTalkError(Exception):
    """Base class: `message` is for the user, `hint` says what to try next (may be empty)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def user_text(self) -> str:
        return f"{self.message} {self.hint}".strip()


class ValidationFailed(MultiTalkError):
    """A request that cannot run. `problems` lists every (field, sentence) at once."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        text = "; ".join(f"{f}: {m}" for f, m in problems)
        super().__init__(f"The request is not valid: {text}")


class OutOfMemory(MultiTalkError):
    """The GPU (or host) ran out of memory. The engine translates CUDA's error into this."""

    def __init__(self, message: str = "The GPU ran out of memory.", hint: str = "") -> None:
        super().__init__(
            message,
            hint or "Choose a lower VRAM profile (balanced or low) or a lower resolution, "
            "close other programs using the GPU, then retry the job.",
        )


class Cancelled(MultiTalkError):
    """Raised by the engine when the cancel token is set; nothing has been written."""

    def __init__(self) -> None:
        super().__init__("The job was cancelled.")


class ModelFilesError(MultiTalkError):
    """Model files are missing or broken; the message names each file and how to get it."""


class IllegalTransition(MultiTalkError):
    """A job state change the state machine does not allow."""
