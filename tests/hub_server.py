"""A Hugging Face hub stand-in on 127.0.0.1: `/{repo}/resolve/{revision}/{path}` with the headers
huggingface_hub needs (X-Repo-Commit, ETag: sha256 for LFS-style files, git blob sha1 for small
ones, Content-Length), HTTP Range support, and two faults to test against: a connection dropped
mid-file (once per file) and a file served with altered bytes."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors", ".bin", ".model")


class FakeHub:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str, str], bytes] = {}  # (repo, revision, path) -> bytes
        self.drop_after: dict[str, int] = {}  # path -> bytes sent before the first GET is cut
        self.corrupt: set[str] = set()  # paths served with one byte flipped
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo: str, path: str, data: bytes, revision: str = "main") -> None:
        self.files[(repo, revision, path)] = data

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def etag(path: str, data: bytes) -> str:
        if path.endswith(LFS_SUFFIXES):
            return hashlib.sha256(data).hexdigest()
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _lookup(self):
                parts = self.path.split("?")[0].lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None
                repo, revision, path = "/".join(parts[:2]), unquote(parts[3]), "/".join(parts[4:])
                data = hub.files.get((repo, revision, path))
                return (path, data) if data is not None else None

            def _not_found(self) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Error-Message", "Entry not found")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _headers(self, path: str, data: bytes, status: int, length: int, start: int = 0) -> None:
                self.send_response(status)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hub.etag(path, data)}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(length))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()

            def do_HEAD(self) -> None:
                hub.requests.append(("HEAD", self.path, None))
                found = self._lookup()
                if not found:
                    return self._not_found()
                path, data = found
                self._headers(path, data, 200, len(data))

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                hub.requests.append(("GET", self.path, rng))
                found = self._lookup()
                if not found:
                    return self._not_found()
                path, data = found
                body = data
                if path in hub.corrupt:
                    body = bytearray(data)
                    body[len(body) // 2] ^= 0xFF
                    body = bytes(body)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                self._headers(path, data, 206 if start else 200, len(body) - start, start)
                cut = hub.drop_after.pop(path, None)
                if cut is not None and cut > start:
                    self.wfile.write(body[start:cut])
                    self.wfile.flush()
                    self.close_connection = True  # the connection drops mid-file
                    return
                self.wfile.write(body[start:])

        return Handler


def serve_models_folder(models_dir, monkeypatch) -> FakeHub:
    """A FakeHub holding every file of a models folder (e.g. one from make-tiny) under its
    manifest repo and revision, with huggingface_hub allowed online for this loopback server
    (the test session is offline for real hubs: tests/conftest.py). Use it as a context manager."""
    import huggingface_hub.constants

    from multitalk_desktop.engine.model_files import expected_files

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    server = FakeHub()
    for mf in expected_files(models_dir):
        server.add(mf.repo, mf.repo_path, (models_dir / mf.path).read_bytes(), mf.revision)
    return server
