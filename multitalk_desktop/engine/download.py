"""`models download`: fetch every manifest file from the Hugging Face hub into the models folder.

huggingface_hub resolves each file (URL from `HF_ENDPOINT` or the endpoint given, metadata: size,
ETag, commit); the bytes are streamed here into `<file>.part` so a download survives a dropped
connection *and* a closed app: the next run continues with an HTTP Range request from where the
`.part` ends. Each finished file is verified before it is moved into place: its size, its hash
against the hub's ETag (sha256 for LFS files, git's blob sha1 for small ones), and its content
(safetensors header and length, JSON). The sha256 then goes into `verified.json`, which
`models check` compares against later.

chinese-wav2vec2-base ships only `pytorch_model.bin` on its main branch; the safetensors file is
taken from revision `refs/pr/1`, and where that fails the .bin is fetched and converted.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from multitalk_desktop.engine.manifest import ManifestFile, manifest_files
from multitalk_desktop.engine.model_files import (
    HASH_CHUNK,
    index_shards,
    json_problem,
    read_verified,
    record_verified,
    safetensors_problem,
)
from multitalk_desktop.errors import Cancelled, ModelFilesError

RETRIES = 5  # reconnects per file after a dropped connection (each resumes where it stopped)
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class DownloadProgress:
    path: str  # relative to the models root
    done_bytes: int
    total_bytes: int | None
    file_index: int  # 1-based
    files: int
    phase: str  # "downloading" | "verifying" | "converting" | "skipped" | "done" | "failed"
    message: str = ""


@dataclass
class DownloadReport:
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already present and verified
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def ok(self) -> bool:
        return not self.failed


class CorruptDownload(Exception):
    """The bytes received do not match what the hub says the file is."""


def resolve_endpoint(endpoint: str | None) -> str:
    """The endpoint given, else HF_ENDPOINT read now (not at import), else the public hub."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def download_models(
    models_root: str | os.PathLike,
    endpoint: str | None = None,
    token: str | bool | None = None,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    include_optional: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> DownloadReport:
    """Download what is missing or unverified. Never raises for one bad file: each failure is in
    the report with its reason (the CLI prints them and exits 1)."""
    root = Path(models_root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    base = resolve_endpoint(endpoint)
    report = DownloadReport()
    queue: list[ManifestFile] = [f for f in manifest_files() if f.required or include_optional]
    i = 0
    while i < len(queue):
        mf = queue[i]
        i += 1
        if should_stop and should_stop():
            raise Cancelled()

        def progress(done: int, total: int | None, phase: str, msg: str = "", _mf=mf, _i=i) -> None:
            if on_progress:
                on_progress(DownloadProgress(_mf.path, done, total, _i, len(queue), phase, msg))

        try:
            fetched = fetch_file(root, mf, base, token, progress, should_stop)
        except Cancelled:
            raise
        except Exception as err:  # one file's failure must not stop the others
            reason = describe_error(err)
            report.failed.append((mf.path, reason))
            progress(0, None, "failed", reason)
            continue
        (report.downloaded if fetched else report.skipped).append(mf.path)
        progress(0, None, "done" if fetched else "skipped")
        if mf.kind == "safetensors-index":
            queue.extend(mf.shard(name) for name in index_shards(root / mf.path))
    return report


def fetch_file(root: Path, mf: ManifestFile, base: str, token, progress, should_stop=None) -> bool:
    """Make one file present and verified. Returns False when it already was."""
    dest = root / mf.path
    record = read_verified(root)["files"].get(mf.path)
    if dest.is_file() and record and record.get("size") == dest.stat().st_size:
        return False
    try:
        download_verified(root, mf.path, mf.repo, mf.revision, mf.repo_path, mf.kind, base, token,
                          progress, should_stop)
    except Exception as err:
        if mf.fallback is None or isinstance(err, Cancelled) or not is_not_found(err):
            raise
        fb = mf.fallback
        tmp_rel = str(Path(mf.path).parent / Path(fb.repo_path).name)
        download_verified(root, tmp_rel, mf.repo, fb.revision, fb.repo_path, "binary", base, token,
                          progress, should_stop, record=False)
        progress(0, None, "converting", f"converting {fb.repo_path} to safetensors")
        convert_bin_to_safetensors(root / tmp_rel, dest)
        (root / tmp_rel).unlink()
        record_verified(root, mf.path, sha256_of(dest), source=f"{mf.repo}@{fb.revision}:{fb.repo_path} (converted)")
    return True


def download_verified(
    root: Path, rel: str, repo: str, revision: str, repo_path: str, kind: str, base: str, token,
    progress, should_stop=None, record: bool = True,
) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, repo_path, revision=revision, endpoint=base)
    meta = get_hf_file_metadata(url, token=token, endpoint=base)
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in (1, 2):  # a corrupted transfer is fetched once more from scratch
        stream_to_part(url, part, meta.size, token, progress, should_stop)
        progress(part.stat().st_size, meta.size, "verifying")
        try:
            sha256 = verify_part(part, meta.size, meta.etag, kind)
            break
        except CorruptDownload:
            part.unlink(missing_ok=True)
            if attempt == 2:
                raise
    os.replace(part, dest)
    if record:
        record_verified(root, rel, sha256, source=f"{repo}@{meta.commit_hash or revision}:{repo_path}")


def stream_to_part(url: str, part: Path, size: int | None, token, progress, should_stop=None) -> None:
    """Append to `part` until it has `size` bytes, resuming after dropped connections."""
    import httpx
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=token)
    headers["Accept-Encoding"] = "identity"
    failures = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:  # a stale part from another version of the file
            part.unlink()
            have = 0
        if size is not None and have == size:
            return
        req_headers = dict(headers)
        if have:
            req_headers["Range"] = f"bytes={have}-"
        try:
            with httpx.stream("GET", url, headers=req_headers, follow_redirects=True, timeout=60) as resp:
                if resp.status_code == 416 and size is None:
                    return
                resp.raise_for_status()
                mode = "ab"
                if have and resp.status_code == 200:  # the server ignored Range: start over
                    mode, have = "wb", 0
                with open(part, mode) as fh:
                    for chunk in resp.iter_bytes():  # as it arrives: a drop keeps what came
                        if should_stop and should_stop():
                            raise Cancelled()
                        fh.write(chunk)
                        have += len(chunk)
                        failures = 0
                        progress(have, size, "downloading")
            if size is None:
                return
            if have < size:
                raise httpx.RemoteProtocolError("connection closed before the end of the file")
        except httpx.TransportError as err:
            failures += 1
            if failures > RETRIES:
                raise ConnectionError(f"the connection kept dropping ({err})") from err
            time.sleep(min(0.2 * failures, 2.0))


def verify_part(part: Path, size: int | None, etag: str | None, kind: str) -> str:
    """Size, hash against the ETag, content. Returns the sha256."""
    actual = part.stat().st_size
    if size is not None and actual != size:
        raise CorruptDownload(f"received {actual} bytes, expected {size}")
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {actual}\0".encode())  # git's blob hash, the ETag of small files
    with open(part, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
    tag = (etag or "").lower()
    if SHA256_RE.match(tag) and sha256.hexdigest() != tag:
        raise CorruptDownload("the sha256 of the received bytes does not match the hub's")
    if SHA1_RE.match(tag) and sha1.hexdigest() != tag:
        raise CorruptDownload("the git hash of the received bytes does not match the hub's")
    if kind == "safetensors" and (problem := safetensors_problem(part)):
        raise CorruptDownload("the file " + problem)
    if kind in ("json", "safetensors-index") and (problem := json_problem(part)):
        raise CorruptDownload("the file " + problem)
    return sha256.hexdigest()


def sha256_of(path: Path) -> str:
    from multitalk_desktop.engine.model_files import sha256_file

    return sha256_file(path)


def convert_bin_to_safetensors(bin_path: Path, dest: Path) -> None:
    """torch.load with weights_only (no code runs) and mmap (no second copy in RAM), then
    save_file beside the destination and rename."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(bin_path, map_location="cpu", weights_only=True, mmap=True)
    # safetensors refuses shared storage; tied tensors are cloned (a no-op for wav2vec2).
    tensors = {k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    tmp = dest.with_name(dest.name + ".converting")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, dest)


def is_not_found(err: BaseException) -> bool:
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    if isinstance(err, (EntryNotFoundError, RevisionNotFoundError)):
        return True
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None) == 404


def describe_error(err: BaseException) -> str:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(err, CorruptDownload):
        return f"the download was corrupted ({err}); it was discarded. Run the download again."
    if isinstance(err, OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE); unset it to download."
    if is_not_found(err):
        return "the hub has no such file (check the repository and revision)."
    if isinstance(err, ModelFilesError):
        return err.message
    return f"{type(err).__name__}: {err}"
