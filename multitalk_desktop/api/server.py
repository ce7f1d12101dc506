"""`ApiServer`: uvicorn in a thread, plus the webhook dispatcher and (optionally) the worker.

The window toggles it from its settings (`ApiServer(ctx, host, port).start()` / `.stop()`; the
window runs jobs itself, so no worker). `multitalk-desktop serve` adds a worker thread, which runs
jobs only while it holds the machine's worker lock (see `worker.py`).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from logging.handlers import RotatingFileHandler

import uvicorn

from multitalk_desktop.api.app import create_app
from multitalk_desktop.api.inputs import clear_stale_staging
from multitalk_desktop.api.netcheck import is_loopback_host
from multitalk_desktop.api.routes import job_payload
from multitalk_desktop.api.state import ApiOptions, ApiState
from multitalk_desktop.api.webhooks import WebhookDispatcher
from multitalk_desktop.api.worker import MachineWorkerLock, WorkerThread
from multitalk_desktop.config import AppContext
from multitalk_desktop.errors import MultiTalkError

log = logging.getLogger("multitalk_desktop.api")

NON_LOOPBACK_WARNING = (
    "WARNING: the API listens on {host}, beyond this machine. Anyone who can reach this port and "
    "knows the API key can queue jobs on your GPU; local files are read only from the folders in "
    "api_allowed_dirs. Use a firewall, and rotate the key (`multitalk-desktop api-key --rotate`) "
    "if it leaks.")


def _install_log_file(ctx: AppContext) -> logging.Handler | None:
    """`logs/api.log`: webhook failures and the stack traces errors never show. Returns the handler
    it added (None when that file already has one), for `stop` to remove."""
    target = ctx.paths.logs_dir / "api.log"
    for h in log.handlers:
        if isinstance(h, RotatingFileHandler) and getattr(h, "baseFilename", "") == str(target):
            return None
    ctx.paths.logs_dir.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(target, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


class ApiServer:
    def __init__(self, ctx: AppContext, host: str = "127.0.0.1", port: int = 8765, *,
                 run_worker: bool = False, engine_factory: Callable[[], object] | None = None,
                 options: ApiOptions | None = None, announce: Callable[[str], None] | None = None) -> None:
        self.ctx = ctx
        self.host = host
        self.port = port
        self.loopback = is_loopback_host(host)
        self.options = replace(options or ApiOptions(), loopback_only=self.loopback)
        self.run_worker = run_worker
        self.engine_factory = engine_factory
        self.announce = announce or (lambda text: print(text, file=sys.stderr, flush=True))
        self.state: ApiState | None = None
        self.worker: WorkerThread | None = None
        self.dispatcher: WebhookDispatcher | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._observer_lock: MachineWorkerLock | None = None
        self._log_handler: logging.Handler | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def worker_status(self) -> str:
        if self.worker is not None and self.worker.active:
            return "this server"
        if self._observer_lock is None:
            self._observer_lock = MachineWorkerLock(self.ctx)
        return "another worker" if self._observer_lock.someone_holds_it() else "none"

    def start(self, timeout: float = 30.0) -> ApiServer:
        """Binds, then serves in a thread; returns once requests are answered. Port 0 picks a
        free port (see `.port` afterwards)."""
        if self.running:
            return self
        from multitalk_desktop.api.keys import get_or_create_key

        get_or_create_key(self.ctx)  # a key exists before the first request can need it
        if not self.loopback:
            self.announce(NON_LOOPBACK_WARNING.format(host=self.host))
        clear_stale_staging(self.ctx)
        sock = self._bind()
        self._log_handler = _install_log_file(self.ctx)
        self.port = sock.getsockname()[1]
        self.state = ApiState(self.ctx, self.options, worker_status=self.worker_status)
        self.state.base_url = self.url
        app = create_app(self.ctx, self.options, state=self.state)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(sock, started), name="api-server",
                                        daemon=True)
        self._thread.start()
        if not started.wait(timeout) or not self._server.started:
            self.stop()
            raise MultiTalkError(f"The API server did not start on {self.url}.")
        self.dispatcher = WebhookDispatcher(
            self.state.webhooks, lambda job_id: job_payload(self.state, job_id),
            secret=self.state.webhook_secret.get,
            allow_private=lambda: self.ctx.settings.api_allow_private_webhooks,
            poll_s=self.options.webhook_poll_s, base_delay_s=self.options.webhook_base_delay_s,
            max_attempts=self.options.webhook_max_attempts, log=log.warning)
        self.dispatcher.start()
        if self.run_worker:
            self.worker = WorkerThread(self.ctx, self._make_runner, log=self.announce)
            self.worker.start()
        log.info("API listening on %s", self.url)
        return self

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise MultiTalkError(f"Cannot listen on {self.url}: {err.strerror or err}.",
                                 "Choose another port (--port) or stop the program using it.") from err
        sock.listen(128)
        sock.set_inheritable(True)
        return sock

    def _serve(self, sock: socket.socket, started: threading.Event) -> None:
        assert self._server is not None
        server = self._server

        # uvicorn sets `started` from inside its loop; mirror it into a threading.Event.
        original_startup = server.startup

        async def startup(sockets=None):
            await original_startup(sockets=sockets)
            started.set()

        server.startup = startup  # type: ignore[method-assign]
        try:
            server.run(sockets=[sock])
        finally:
            started.set()
            sock.close()

    def _make_runner(self):
        from multitalk_desktop.jobs.queue import JobQueue
        from multitalk_desktop.jobs.runner import Runner

        factory = self.engine_factory
        if factory is None:
            from multitalk_desktop.jobs.engines import make_engine

            s = self.ctx.settings
            kind = self.options.engine_kind

            def factory():
                return make_engine(kind, self.ctx.models_dir, device=s.device, profile=s.profile,
                                   max_frames=s.max_frames, compile_blocks=s.compile_blocks)

        return Runner(JobQueue(self.ctx), factory)

    def stop(self) -> None:
        """Stops serving, then the dispatcher, then the worker (between jobs); joins them all."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        self._server = None
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.state is not None:
            self.state.close()
            self.state = None
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
