"""Output file names and moving finished files into place without ever overwriting one.

Names are `<date>_<prompt-words>_<id8>.mp4`; the id part alone makes two jobs' names differ, and
`place_without_overwrite` still refuses to clobber anything that happens to be there.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from multitalk_desktop.config import fsync_dir

MAX_WORDS = 5
MAX_SLUG_CHARS = 40


def prompt_slug(prompt: str) -> str:
    """The prompt's first few words, safe as a file name on every OS."""
    text = unicodedata.normalize("NFKD", prompt or "").encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[A-Za-z0-9]+", text.lower())[:MAX_WORDS]
    slug = "-".join(words)[:MAX_SLUG_CHARS].strip("-")
    return slug or "video"


def output_name(created_at: float, prompt: str, job_id: str) -> str:
    date = time.strftime("%Y-%m-%d", time.localtime(created_at))
    return f"{date}_{prompt_slug(prompt)}_{job_id[:8]}.mp4"


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def stage_beside(src: Path, folder: Path) -> Path:
    """A durable copy of `src` on `folder`'s disk (or `src` itself when it is already there), so
    the final placement is a quick link. Done before the database lock is taken: copying a video
    to another disk can take seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    fsync_file(src)
    if _device(src.parent) == _device(folder):
        return src
    staged = folder / f".{src.name}.{os.getpid()}.partial"
    shutil.copyfile(src, staged)
    fsync_file(staged)
    os.unlink(src)
    return staged


def place_without_overwrite(src: Path, folder: Path, name: str,
                            before_link: Callable[[Path], None] | None = None) -> Path:
    """Move `src` into `folder` as `name` (or `name-2`, `name-3`, ... when taken). The file is
    fsynced before it appears under its final name and the folder after, so a crash leaves either
    no output or a whole one.

    `before_link(candidate)` runs just before each name is tried, so a caller can make the name
    durable first (the job queue commits it on the job: a crash right after the link then leaves a
    file recovery knows about, not an orphan). Whatever it raises stops the placement."""
    staged = stage_beside(src, folder)
    final = _link_unique(staged, folder, name, before_link)
    os.unlink(staged)
    fsync_dir(folder)
    return final


def _device(path: Path) -> int:
    return os.stat(path).st_dev


def _link_unique(src: Path, folder: Path, name: str,
                 before_link: Callable[[Path], None] | None = None) -> Path:
    stem, suffix = os.path.splitext(name)
    for n in range(1, 10_000):
        candidate = folder / (name if n == 1 else f"{stem}-{n}{suffix}")
        if candidate.exists():
            continue  # taken: no need to announce a name that cannot be ours
        if before_link is not None:
            before_link(candidate)
        try:
            # link() fails when the name exists: unlike rename it can never overwrite.
            os.link(src, candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, getattr(errno, "EOPNOTSUPP", -1)):
                raise
            # File systems without hard links: exclusive-create a placeholder, then replace it.
            try:
                fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.close(fd)
            shutil.copyfile(src, candidate)
            fsync_file(candidate)
            return candidate
    raise FileExistsError(f"no free name for {name} in {folder}")
