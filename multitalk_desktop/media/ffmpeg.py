"""The ffmpeg binary that ships inside imageio-ffmpeg, and running it with readable errors.

No system ffmpeg can be assumed (not on Windows, not on a bare Linux desktop), so every decode,
probe and encode goes through the binary bundled with the imageio-ffmpeg wheel (also collected
into the frozen app). `MULTITALK_FFMPEG` may point at another binary for debugging.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from multitalk_desktop.errors import MultiTalkError

FFMPEG_ENV = "MULTITALK_FFMPEG"

# A windowed (GUI) app on Windows would flash a console for every child process otherwise.
_NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0


class FFmpegError(MultiTalkError):
    """ffmpeg failed; `stderr_tail` keeps its last lines for logs, `message` is for the user."""

    def __init__(self, message: str, hint: str = "", stderr_tail: str = "") -> None:
        super().__init__(message, hint)
        self.stderr_tail = stderr_tail


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to run (bundled with imageio-ffmpeg)."""
    override = os.environ.get(FFMPEG_ENV)
    if override:
        if not Path(override).is_file():
            raise MultiTalkError(f"{FFMPEG_ENV} points at {override}, which does not exist.")
        return override
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as err:  # imageio-ffmpeg raises RuntimeError when its binary is missing
        raise MultiTalkError(
            "The video tool (ffmpeg) that ships with MultiTalk Desktop is missing.",
            "Reinstall MultiTalk Desktop (or `pip install --force-reinstall imageio-ffmpeg`).",
        ) from err
    return exe


def popen_flags() -> dict:
    """Extra keyword arguments for subprocess calls to ffmpeg (no console window on Windows)."""
    return {"creationflags": _NO_WINDOW} if _NO_WINDOW else {}


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class FFmpegRun:
    returncode: int
    stdout: bytes
    stderr: str
    args: list[str] = field(default_factory=list)


def run_ffmpeg(
    args: Sequence[str | os.PathLike],
    *,
    input_bytes: bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    what: str = "The video tool (ffmpeg) failed.",
) -> FFmpegRun:
    """Run ffmpeg with `args` (without the program name); stdout is captured as bytes.

    With `check`, a non-zero exit raises FFmpegError whose message is `what` refined by the
    recognisable causes in ffmpeg's stderr (disk full, damaged file, ...).
    """
    # -y: outputs are always fresh temp names we own; -nostdin: never wait on a terminal.
    cmd = [ffmpeg_exe(), "-hide_banner", "-y", *(["-nostdin"] if input_bytes is None else [])]
    cmd += [str(a) for a in args]
    try:
        proc = subprocess.run(
            cmd,
            input=input_bytes,
            capture_output=True,
            stdin=None if input_bytes is not None else subprocess.DEVNULL,
            timeout=timeout,
            **popen_flags(),
        )
    except subprocess.TimeoutExpired as err:
        raise FFmpegError(f"{what} It took longer than {timeout:.0f} s.") from err
    except OSError as err:
        raise FFmpegError(f"{what} The video tool (ffmpeg) could not be started: {err}.") from err
    stderr = proc.stderr.decode("utf-8", "replace")
    run = FFmpegRun(proc.returncode, proc.stdout, stderr, cmd)
    if check and proc.returncode != 0:
        raise error_from_stderr(stderr, what, proc.returncode)
    return run


_SIGXFSZ = 25  # Linux/macOS: killed for exceeding the file size limit


def error_from_stderr(stderr: str, what: str, returncode: int = 1) -> FFmpegError:
    """The plain sentence for a failed ffmpeg run, from the causes users can act on."""
    low = stderr.lower()
    no_room = ("no space left on device", "file too large", "quota exceeded")
    if any(s in low for s in no_room) or (os.name != "nt" and returncode == -_SIGXFSZ):
        return FFmpegError(
            f"{what} There is no room for it: the disk is full (or the file is larger than this system allows).",
            "Free some space or choose another folder, then retry.",
            tail(stderr),
        )
    if "permission denied" in low:
        return FFmpegError(
            f"{what} Permission was denied.", "Choose a folder you can write to.", tail(stderr)
        )
    if "invalid data found" in low or "moov atom not found" in low or "end of file" in low:
        return FFmpegError(
            f"{what} The file is damaged or not a format MultiTalk Desktop can read.",
            "Try re-exporting it from the program that made it.",
            tail(stderr),
        )
    return FFmpegError(what, "", tail(stderr))


@functools.lru_cache(maxsize=1)
def encoders() -> frozenset[str]:
    """Names of the encoders the bundled ffmpeg was built with (libx264, libvpx-vp9, ...)."""
    out = run_ffmpeg(["-encoders"], check=False).stdout.decode("utf-8", "replace")
    names = set()
    for line in out.splitlines():
        m = re.match(r"\s*[VAS][A-Z.]{5}\s+(\S+)", line)
        if m:
            names.add(m.group(1))
    return frozenset(names)


def has_encoder(name: str) -> bool:
    return name in encoders()
