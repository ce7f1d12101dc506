"""Is a models folder ready? Checks each expected file (present, size, safetensors header and
length, sha256 against the hash recorded at its first verified download) and names each missing or
broken file with how to get it.

Torch-free and cheap by default (no hashing) so `doctor` and the GUI can call it often; the
`models check` command hashes too (`deep=True`).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from multitalk_desktop.engine.manifest import VERIFIED_FILE, ManifestFile, manifest_files

# A safetensors header above this is not a header but garbage (real headers are a few MB at most).
MAX_HEADER_BYTES = 100 * 1024 * 1024
HASH_CHUNK = 8 * 1024 * 1024


@dataclass
class FileProblem:
    path: str  # relative to the models root
    problem: str  # a sentence
    how_to_get: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem} To fix: {self.how_to_get}."


@dataclass
class ModelsReport:
    root: Path
    ready: bool
    missing: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    optional_missing: list[str] = field(default_factory=list)  # e.g. the fast-mode LoRA
    unverified: list[str] = field(default_factory=list)  # present, no hash recorded yet
    checked: list[str] = field(default_factory=list)
    variant: str = "real"  # "tiny" for folders written by `models make-tiny`

    def summary(self) -> str:
        if self.ready:
            return f"The models folder {self.root} is ready ({len(self.checked)} files checked)."
        return (
            f"The models folder {self.root} is not ready: {len(self.missing)} missing, "
            f"{len(self.broken)} broken."
        )


# ---------------------------------------------------------------- verified.json (hash records)


def read_verified(root: Path) -> dict:
    try:
        data = json.loads((Path(root) / VERIFIED_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {"version": 1, "variant": "real", "files": {}}
    data.setdefault("files", {})
    data.setdefault("variant", "real")
    return data


def write_verified(root: Path, data: dict) -> None:
    from multitalk_desktop.config import atomic_write_bytes

    atomic_write_bytes(Path(root) / VERIFIED_FILE, json.dumps(data, indent=1, sort_keys=True).encode())


def record_verified(root: Path, rel: str, sha256: str, source: str = "", variant: str | None = None) -> None:
    """Remember a file's hash right after it was verified (download, conversion or make-tiny)."""
    data = read_verified(root)
    if variant:
        data["variant"] = variant
    st = (Path(root) / rel).stat()
    data["files"][rel] = {
        "sha256": sha256,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "source": source,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_verified(root, data)


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
            if on_bytes:
                on_bytes(len(chunk))
    return h.hexdigest()


# ---------------------------------------------------------------- content checks


def safetensors_problem(path: Path) -> str | None:
    """None when the header parses and the data section has exactly the length it declares."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "is too short to be a safetensors file."
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                return "has no readable safetensors header (damaged or not a safetensors file)."
            header = json.loads(fh.read(n))
    except (OSError, ValueError, UnicodeDecodeError):
        return "has no readable safetensors header (damaged or not a safetensors file)."
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    expected = 8 + n + (max(ends) if ends else 0)
    if expected != size:
        return f"is truncated or padded: its header describes {expected} bytes, the file has {size}."
    return None


def json_problem(path: Path) -> str | None:
    try:
        json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return "is not valid JSON (damaged or incomplete)."
    return None


def index_shards(path: Path) -> list[str]:
    weight_map = json.loads(path.read_text("utf-8")).get("weight_map", {})
    return sorted(set(weight_map.values()))


# ---------------------------------------------------------------- the check


def expected_files(root: Path) -> list[ManifestFile]:
    """The manifest's files plus the shards each index on disk names."""
    out: list[ManifestFile] = []
    for mf in manifest_files():
        out.append(mf)
        if mf.kind == "safetensors-index":
            idx = root / mf.path
            if idx.is_file() and json_problem(idx) is None:
                out.extend(mf.shard(name) for name in index_shards(idx))
    return out


def check_file(
    root: Path, mf: ManifestFile, record: dict | None, variant: str, deep: bool,
    on_bytes: Callable[[int], None] | None = None,
) -> str | None:
    """The problem with one present file, or None."""
    path = root / mf.path
    # The content first: "truncated" says more than "wrong size".
    if mf.kind in ("json", "safetensors-index"):
        problem = json_problem(path)
        if problem:
            return problem
    if mf.kind == "safetensors":
        problem = safetensors_problem(path)
        if problem:
            return problem
    size = path.stat().st_size
    if record is not None and record.get("size") != size:
        return f"has {size} bytes; {record.get('size')} were verified at download."
    if record is None and mf.size is not None and variant == "real" and size != mf.size:
        return f"has {size} bytes; the real file has {mf.size}."
    if deep and record is not None and record.get("sha256"):
        if sha256_file(path, on_bytes) != record["sha256"]:
            return "does not match the sha256 recorded when it was verified (the file changed or is damaged)."
    return None


def check_models(
    models_root: str | os.PathLike, deep: bool = False,
    on_file: Callable[[str], None] | None = None,
) -> ModelsReport:
    """Check every expected file. `deep` also hashes files that have a recorded sha256."""
    root = Path(models_root).expanduser()
    verified = read_verified(root)
    report = ModelsReport(root=root, ready=False, variant=verified.get("variant", "real"))
    for mf in expected_files(root):
        path = root / mf.path
        if on_file:
            on_file(mf.path)
        if not path.is_file():
            if mf.required:
                report.missing.append(mf.path)
                report.problems.append(FileProblem(mf.path, "is missing.", mf.how_to_get))
            else:
                report.optional_missing.append(mf.path)
            continue
        record = verified["files"].get(mf.path)
        problem = check_file(root, mf, record, report.variant, deep)
        report.checked.append(mf.path)
        if problem:
            report.broken.append(mf.path)
            report.problems.append(FileProblem(mf.path, problem, "delete it, then " + mf.how_to_get))
        elif record is None:
            report.unverified.append(mf.path)
    report.ready = not report.missing and not report.broken
    return report


def require_models(models_root: str | os.PathLike) -> ModelsReport:
    """check_models, raising ModelFilesError naming every missing/broken file when not ready."""
    from multitalk_desktop.errors import ModelFilesError

    report = check_models(models_root)
    if not report.ready:
        lines = "\n".join(str(p) for p in report.problems)
        raise ModelFilesError(
            f"{report.summary()}\n{lines}",
            "Run `multitalk-desktop models check` for details, or `models download` to fetch them.",
        )
    return report
