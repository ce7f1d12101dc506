"""Reading dragged files out of QMimeData: the one place that decides what a drop contains."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData


def local_files(mime: QMimeData, suffixes: tuple[str, ...]) -> list[str]:
    """Local files in the drop whose suffix is one of `suffixes` (lower-case, with the dot)."""
    if not mime.hasUrls():
        return []
    files = []
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        path = url.toLocalFile()
        if Path(path).suffix.lower() in suffixes:
            files.append(path)
    return files
