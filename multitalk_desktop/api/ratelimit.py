"""A token bucket per API key for `POST /generate`: bursts are fine, a runaway loop is not."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    per_minute: float = 120.0  # sustained submissions per key
    burst: int = 60  # submitted at once before the limit bites


class RateLimiter:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        # sha256(key) -> (tokens, last refill); the key itself is not kept in memory twice.
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead; otherwise the seconds until it may (Retry-After)."""
        if self.limit.per_minute <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        rate = self.limit.per_minute / 60.0
        bucket = hashlib.sha256(key.encode("utf-8")).hexdigest()
        with self._lock:
            tokens, last = self._buckets.get(bucket, (float(self.limit.burst), now))
            tokens = min(float(self.limit.burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[bucket] = (tokens - 1.0, now)
                return 0.0
            self._buckets[bucket] = (tokens, now)
            return (1.0 - tokens) / rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
