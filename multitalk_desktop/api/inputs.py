"""Turn the references a request gives (`image_s3_url`, `audio_s3_urls`) into local files the queue
can copy into the job's folder.

- A local path or a `file://` URL: any readable file while the server listens on loopback (the
  caller is on this machine and could read it anyway); when it listens beyond, only files whose
  real path (symlinks and `..` resolved) lies inside a folder listed in `api_allowed_dirs`.
- `http://` / `https://`: downloaded into a staging folder with a byte cap and a deadline.
- `s3://bucket/key`: downloaded with boto3 when it is installed and finds credentials; otherwise a
  422 that says what is missing.
- Multipart uploads are saved by the app under names it makes itself (the client's file name only
  lends its extension), so no upload can write outside the staging folder.

Staging folders live under `<data>/api-staging/` and are removed once the queue has copied the
files (or the request failed).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

from multitalk_desktop.config import AppContext

MiB = 1024 * 1024
SAFE_SUFFIX = re.compile(r"\.[a-z0-9]{1,5}")
SUFFIX_FOR_TYPE = {
    "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp",
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
    "audio/mpeg": ".mp3", "audio/flac": ".flac", "audio/x-flac": ".flac", "audio/ogg": ".ogg",
    "audio/mp4": ".m4a", "audio/aac": ".aac", "video/mp4": ".mp4", "video/quicktime": ".mov",
    "video/webm": ".webm", "video/x-matroska": ".mkv",
}


@dataclass(frozen=True)
class InputLimits:
    max_download_bytes: int = 1024 * MiB
    download_timeout_s: float = 300.0  # whole download, not per read
    max_upload_bytes: int = 1024 * MiB  # one multipart request, all files together
    max_json_bytes: int = 1 * MiB  # any other request body


class InputRefused(Exception):
    """One field's problem, for the 422 list."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def safe_suffix(name: str | None) -> str:
    """The extension of a client-given name if it looks like one, else nothing. The name itself is
    never used, so `../../x` or `C:\\x` cannot steer where a file lands."""
    suffix = Path(str(name or "").replace("\\", "/")).suffix.lower()
    return suffix if SAFE_SUFFIX.fullmatch(suffix) else ""


def staging_root(ctx: AppContext) -> Path:
    return ctx.paths.data_dir / "api-staging"


class Staging:
    """A fresh folder for one request's downloads and uploads."""

    def __init__(self, ctx: AppContext) -> None:
        self.dir = staging_root(ctx) / uuid.uuid4().hex
        self._made = False

    def path(self, stem: str, suffix: str) -> Path:
        if not self._made:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._made = True
        return self.dir / f"{stem}{suffix}"

    def cleanup(self) -> None:
        if self._made:
            shutil.rmtree(self.dir, ignore_errors=True)


def clear_stale_staging(ctx: AppContext, older_than_s: float = 3600.0) -> None:
    """Folders left by a server that died mid-request."""
    root = staging_root(ctx)
    if not root.is_dir():
        return
    cutoff = time.time() - older_than_s
    for d in root.iterdir():
        try:
            if d.stat().st_mtime < cutoff:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


class InputResolver:
    def __init__(self, ctx: AppContext, loopback_only: bool, limits: InputLimits) -> None:
        self.ctx = ctx
        self.loopback_only = loopback_only
        self.limits = limits

    def resolve(self, ref: str, field: str, staging: Staging, stem: str) -> Path:
        ref = ref.strip()
        if not ref:
            raise InputRefused(field, "Give a path or URL.")
        if "\x00" in ref:
            raise InputRefused(field, "The reference contains a NUL character.")
        scheme = urlsplit(ref).scheme.lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", ref) else ""
        if scheme in ("http", "https"):
            return self._download_http(ref, field, staging, stem)
        if scheme == "s3":
            return self._download_s3(ref, field, staging, stem)
        if scheme == "file":
            return self._local(self._file_url_path(ref, field), field)
        if scheme:
            raise InputRefused(field, f"{scheme}:// is not supported; give a local path, a file://, "
                               "http(s):// or s3:// URL, or upload the file.")
        return self._local(ref, field)

    # ---------------------------------------------------------------- local files

    @staticmethod
    def _file_url_path(ref: str, field: str) -> str:
        parts = urlsplit(ref)
        if parts.netloc not in ("", "localhost"):
            raise InputRefused(field, f"file:// URLs must name this machine (file:///path), not "
                               f"{parts.netloc!r}.")
        return url2pathname(unquote(parts.path))

    def _local(self, path_text: str, field: str) -> Path:
        path = Path(path_text).expanduser()
        if not path.is_absolute():
            raise InputRefused(field, f"{path_text!r} is a relative path; give an absolute path (the "
                               "server's working folder is not yours).")
        if not self.loopback_only:
            real = Path(os.path.realpath(path))
            allowed = [Path(os.path.realpath(Path(d).expanduser())) for d in self.ctx.settings.api_allowed_dirs]
            if not any(real == a or a in real.parents for a in allowed):
                raise InputRefused(field, "While the server listens beyond this machine, local files "
                                   "are read only from the folders allowed in the settings "
                                   "(api_allowed_dirs); upload the file or give a URL instead.")
            path = real
        if path.is_file() and not os.access(path, os.R_OK):
            raise InputRefused(field, f"{path} cannot be read by the server (permissions).")
        return path  # existence, format and length are checked by the request validation

    # ---------------------------------------------------------------- downloads

    def _download_http(self, url: str, field: str, staging: Staging, stem: str) -> Path:
        limit = self.limits.max_download_bytes
        deadline = time.monotonic() + self.limits.download_timeout_s
        suffix = safe_suffix(urlsplit(url).path)
        try:
            with httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0), follow_redirects=True,
                              max_redirects=5, trust_env=False) as client:
                with client.stream("GET", url) as resp:
                    if resp.status_code != 200:
                        raise InputRefused(field, f"Downloading {url} gave HTTP {resp.status_code}.")
                    length = resp.headers.get("content-length")
                    if length and length.isdigit() and int(length) > limit:
                        raise InputRefused(field, f"{url} is {int(length) / MiB:.0f} MiB; the limit is "
                                           f"{limit / MiB:.0f} MiB.")
                    if not suffix:
                        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                        suffix = SUFFIX_FOR_TYPE.get(ctype, "")
                    dest = staging.path(stem, suffix)
                    received = 0
                    with dest.open("wb") as fh:
                        for chunk in resp.iter_bytes(1 << 16):
                            received += len(chunk)
                            if received > limit:
                                raise InputRefused(field, f"{url} is larger than the {limit / MiB:.0f} "
                                                   "MiB limit.")
                            if time.monotonic() > deadline:
                                raise InputRefused(field, f"Downloading {url} took longer than "
                                                   f"{self.limits.download_timeout_s:.0f} s.")
                            fh.write(chunk)
        except httpx.HTTPError as err:
            raise InputRefused(field, f"{url} could not be downloaded ({type(err).__name__}).") from err
        return dest

    def _download_s3(self, url: str, field: str, staging: Staging, stem: str) -> Path:
        parts = urlsplit(url)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not bucket or not key:
            raise InputRefused(field, f"{url!r} is not an s3://bucket/key URL.")
        try:
            import boto3  # optional: only s3:// inputs need it
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError as err:
            raise InputRefused(field, "s3:// inputs need boto3, which is not installed; install it "
                               "(pip install boto3) and configure AWS credentials, or give a local "
                               "path, an http(s) URL, or upload the file.") from err
        session = boto3.session.Session()
        if session.get_credentials() is None:
            raise InputRefused(field, "s3:// inputs need AWS credentials, and none are configured "
                               "(environment, ~/.aws/credentials or an instance role).")
        limit = self.limits.max_download_bytes
        try:
            client = session.client("s3")
            head = client.head_object(Bucket=bucket, Key=key)
            if int(head.get("ContentLength", 0)) > limit:
                raise InputRefused(field, f"{url} is larger than the {limit / MiB:.0f} MiB limit.")
            dest = staging.path(stem, safe_suffix(key))
            client.download_file(bucket, key, str(dest))
        except (BotoCoreError, ClientError) as err:
            raise InputRefused(field, f"{url} could not be downloaded from S3 ({err}).") from err
        return dest
