"""Copies of a job's input files, deduplicated by content.

Each distinct file is stored once in `<data>/blobs/<sha256[:2]>/<sha256><ext>` and hard-linked into
`jobs/<id>/inputs/`. The blob is what is made durable (file and folders fsynced when it is first
written); the job row records which blob each input is, and the runner re-creates any link a power
cut lost (`restore_inputs`). So a submit costs one fsync (the database commit) once its inputs are
known, instead of one more for the job folder. Why links into a blob store: a creator who queues the same portrait and voice
fifty times pays for the bytes once; each job folder still holds ordinary files (deleting one job's
folder never breaks another's); and a blob nobody links to any more has a link count of 1, which
is how retention knows it can go. Where hard links are impossible (some file systems), the file is
copied instead: correct, only bigger.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from multitalk_desktop.config import fsync_dir

_CHUNK = 1 << 20
# (real path, size, mtime_ns, inode) -> sha256: resubmitting the same file does not re-read it.
_hash_cache: dict[tuple, str] = {}


def content_hash(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    cached = _hash_cache.get(key)
    if cached:
        return cached
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if len(_hash_cache) > 4096:
        _hash_cache.clear()
    _hash_cache[key] = digest
    return digest


def store_blob(src: Path, blobs_dir: Path) -> Path:
    """The blob for `src`'s content, written (fsynced, atomically) when it is new."""
    digest = content_hash(src)
    blob = blobs_dir / digest[:2] / f"{digest}{src.suffix.lower()}"
    if blob.exists():
        return blob
    mkdir_durable(blob.parent)
    tmp = blob.with_name(f".{blob.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, blob)  # same content under the same name: a concurrent writer is harmless
    fsync_dir(blob.parent)
    return blob


def mkdir_durable(folder: Path) -> None:
    """Create `folder` and any missing parents, fsyncing each parent that gained an entry."""
    if folder.is_dir():
        return
    mkdir_durable(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:
        return
    fsync_dir(folder.parent)


def link_into(blob: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(blob, dest)
    except FileExistsError:
        os.unlink(dest)
        os.link(blob, dest)
    except FileNotFoundError:
        raise
    except OSError:
        shutil.copyfile(blob, dest)
    return dest


def _place(src: Path, dest: Path, blobs_dir: Path) -> Path:
    try:
        return link_into(store_blob(src, blobs_dir), dest)
    except FileNotFoundError:
        # Retention removed the blob between our check and our link: write it again.
        return link_into(store_blob(src, blobs_dir), dest)


def copy_inputs(image: Path, voices: list[Path], inputs_dir: Path, blobs_dir: Path
                ) -> tuple[Path, list[Path], dict[str, str]]:
    """The job's own copies: `image.<ext>`, `voice1.<ext>`, `voice2.<ext>`, and for each of those
    names the blob (relative to `blobs_dir`) it can be restored from."""
    image_copy = _place(image, inputs_dir / f"image{image.suffix.lower()}", blobs_dir)
    voice_copies = [
        _place(v, inputs_dir / f"voice{k}{v.suffix.lower()}", blobs_dir)
        for k, v in enumerate(voices, start=1)
    ]
    blobs = {}
    for copy, src in zip([image_copy, *voice_copies], [image, *voices], strict=True):
        digest = content_hash(src)
        blobs[copy.name] = f"{digest[:2]}/{digest}{src.suffix.lower()}"
    return image_copy, voice_copies, blobs


def restore_inputs(inputs_dir: Path, blobs: dict[str, str], blobs_dir: Path) -> list[str]:
    """Re-link inputs a crash lost (their blobs are durable). Returns the names restored."""
    restored = []
    for name, rel in blobs.items():
        dest = inputs_dir / name
        if not dest.exists():
            link_into(blobs_dir / rel, dest)
            restored.append(name)
    return restored


def remove_unused_blobs(blobs_dir: Path) -> int:
    """Blobs no job folder links to any more (link count 1)."""
    removed = 0
    if not blobs_dir.is_dir():
        return 0
    for blob in blobs_dir.glob("*/*"):
        try:
            if blob.is_file() and not blob.name.startswith(".") and blob.stat().st_nlink == 1:
                blob.unlink()
                removed += 1
        except OSError:
            pass
    return removed
