"""Writing a file or folder so that it appears whole or not at all.

The content goes to a hidden temporary name in the destination folder (same file system, so the
final rename is atomic), is fsynced, then renamed over the destination. Any exception removes the
temporary, so a full disk or a crashed encoder never leaves a half-written video behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from multitalk_desktop.errors import MultiTalkError


def temp_sibling(final: Path, tag: str = "partial") -> Path:
    """A hidden name next to `final`, keeping its extension (some tools look at it)."""
    return final.with_name(f".{final.stem}.{tag}-{uuid.uuid4().hex[:8]}{final.suffix}")


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk; folders only where the OS allows."""
    if path.is_dir():
        if os.name == "nt":  # Windows cannot open a folder for fsync
            return
        fd = os.open(path, os.O_RDONLY)
    else:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (network, FUSE) refuse fsync; the rename is still atomic
    finally:
        os.close(fd)


def _prepare_parent(final: Path) -> None:
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MultiTalkError(f"The folder {final.parent} could not be created: {err.strerror}.") from err


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path to write; on success it replaces `final`, on error it vanishes."""
    final_path = Path(final)
    _prepare_parent(final_path)
    tmp = temp_sibling(final_path)
    try:
        yield tmp
        if not tmp.is_file():
            raise MultiTalkError(f"{final_path.name} was not written.")
        fsync_path(tmp)
        _replace(tmp, final_path)
        fsync_path(final_path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _replace(tmp: Path, final: Path) -> None:
    try:
        os.replace(tmp, final)
    except OSError as err:  # Windows: the old file is open in a player
        raise MultiTalkError(
            f"{final.name} could not be replaced: {err.strerror or err}.",
            "Close any program that has it open (a video player), or choose another name.",
        ) from err


@contextlib.contextmanager
def atomic_folder(final: str | os.PathLike) -> Iterator[Path]:
    """Like atomic_file for a folder of files. An existing empty folder is replaced; a
    non-empty one is refused rather than merged or deleted."""
    final_path = Path(final)
    if final_path.exists():
        if not final_path.is_dir() or any(final_path.iterdir()):
            raise MultiTalkError(
                f"{final_path} already exists and is not an empty folder.",
                "Choose a new folder name for the frames.",
            )
    _prepare_parent(final_path)
    tmp = temp_sibling(final_path)
    tmp.mkdir()
    try:
        yield tmp
        for child in tmp.iterdir():
            fsync_path(child)
        if final_path.exists():
            final_path.rmdir()
        _replace(tmp, final_path)
        fsync_path(final_path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
