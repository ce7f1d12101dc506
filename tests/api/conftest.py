"""A real API server on 127.0.0.1 (free port, test engine), driven over HTTP with httpx, and a
webhook receiver on loopback. Every server and thread started here is stopped and joined."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from multitalk_desktop.api.keys import get_or_create_key
from multitalk_desktop.api.server import ApiServer
from multitalk_desktop.api.state import ApiOptions
from multitalk_desktop.config import AppContext, load_context
from multitalk_desktop.engine.test_engine import TestEngine


@dataclass
class Api:
    server: ApiServer
    key: str
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def post(self, path: str, **kw) -> httpx.Response:
        return self.client.post(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    def delete(self, path: str, **kw) -> httpx.Response:
        return self.client.delete(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)


def make_context(allow_private_webhooks: bool = True, **settings) -> AppContext:
    ctx = load_context()
    ctx.settings.api_allow_private_webhooks = allow_private_webhooks
    for name, value in settings.items():
        setattr(ctx.settings, name, value)
    return ctx


class ApiFactory:
    """Starts servers on demand (tests that restart one need two in a row)."""

    def __init__(self) -> None:
        self.started: list[Api] = []

    def start(self, ctx: AppContext | None = None, *, worker: bool = True, step_seconds: float = 0.0,
              host: str = "127.0.0.1", **options) -> Api:
        ctx = ctx or make_context()
        opts = replace(ApiOptions(engine_kind="test", webhook_poll_s=0.1, webhook_base_delay_s=0.2), **options)
        server = ApiServer(ctx, host, 0, run_worker=worker, options=opts, announce=lambda text: None,
                           engine_factory=lambda: TestEngine(step_seconds=step_seconds)).start()
        api = Api(server, get_or_create_key(ctx), httpx.Client(base_url=server.url, timeout=30, trust_env=False))
        self.started.append(api)
        return api

    def stop(self, api: Api) -> None:
        api.client.close()
        api.server.stop()
        if api in self.started:
            self.started.remove(api)

    def stop_all(self) -> None:
        for api in list(self.started):
            self.stop(api)


@pytest.fixture
def api_factory() -> Iterator[ApiFactory]:
    factory = ApiFactory()
    yield factory
    factory.stop_all()


@pytest.fixture
def api(api_factory) -> Api:
    """A server with a worker running the fast test engine."""
    return api_factory.start()


@pytest.fixture
def idle_api(api_factory) -> Api:
    """A server that only queues (no worker): jobs stay where the test put them."""
    return api_factory.start(worker=False)


def request_body(examples, voices: int = 1, **options) -> dict:
    audio = [str(examples / "1-man.WAV"), str(examples / "1-woman.WAV")][:voices] if voices == 2 \
        else str(examples / "1.wav")
    image = examples / ("multi3.png" if voices == 2 else "single1.png")
    opts = {"resolution": "64x64", "sample_steps": 2, "max_duration": 1.0}
    opts.update(options)
    return {"prompt": "A person talks.", "image_s3_url": str(image), "audio_s3_urls": audio, "options": opts}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on loopback. `answers` is the status codes to give, in order (the last
    one repeats)."""

    answers: list[int] = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)
    seen: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        with self.seen:
            self.seen.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.seen:
                status = state.answers[min(len(state.received), len(state.answers) - 1)]
                state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                state.seen.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)
