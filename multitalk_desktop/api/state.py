"""What every request handler shares: the queue, the webhook store, the secrets, the limits."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from multitalk_desktop.api.inputs import InputLimits, InputResolver
from multitalk_desktop.api.keys import (
    SecretFile,
    get_or_create_key,
    get_or_create_webhook_secret,
    key_path,
    webhook_secret_path,
)
from multitalk_desktop.api.ratelimit import RateLimit, RateLimiter
from multitalk_desktop.api.webhooks import WebhookStore
from multitalk_desktop.config import AppContext
from multitalk_desktop.jobs.queue import JobQueue

API_DB = "api.sqlite3"
log = logging.getLogger("multitalk_desktop.api")


@dataclass(frozen=True)
class ApiOptions:
    loopback_only: bool = True  # False when the server listens beyond this machine
    rate_limit: RateLimit = field(default_factory=RateLimit)
    limits: InputLimits = field(default_factory=InputLimits)
    signed_url_ttl_s: int = 3600
    engine_kind: str = "real"  # "test" only under `serve --test-engine`
    webhook_poll_s: float = 0.5
    webhook_base_delay_s: float = 5.0
    webhook_max_attempts: int = 6


class ApiState:
    def __init__(self, ctx: AppContext, options: ApiOptions,
                 worker_status: Callable[[], str] | None = None) -> None:
        self.ctx = ctx
        self.options = options
        self.queue = JobQueue(ctx)
        self.webhooks = WebhookStore(ctx.paths.data_dir / API_DB)
        self.api_key = SecretFile(key_path(ctx), lambda: get_or_create_key(ctx))
        self.webhook_secret = SecretFile(webhook_secret_path(ctx), lambda: get_or_create_webhook_secret(ctx))
        self.limiter = RateLimiter(options.rate_limit)
        self.resolver = InputResolver(ctx, options.loopback_only, options.limits)
        self.worker_status = worker_status or (lambda: "unknown")
        self.base_url = ""  # set by the server once it knows its port (webhook payload links)

    def close(self) -> None:
        self.queue.close()
        self.webhooks.close()

    # ------------------------------------------------------------ signed download URLs

    def _url_mac(self, job_id: str, expires: int) -> str:
        # Keyed with the API key: rotating the key revokes every URL handed out with it.
        msg = f"download.{job_id}.{expires}".encode()
        return hmac.new(self.api_key.get().encode("utf-8"), msg, hashlib.sha256).hexdigest()

    def sign_download(self, job_id: str, ttl_s: int) -> tuple[int, str]:
        expires = int(time.time()) + int(ttl_s)
        return expires, self._url_mac(job_id, expires)

    def download_signature_ok(self, job_id: str, expires: int | None, signature: str | None) -> bool:
        if expires is None or not signature or expires < time.time():
            return False
        return hmac.compare_digest(self._url_mac(job_id, int(expires)), signature)
