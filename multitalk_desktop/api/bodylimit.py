"""Refuse request bodies over a size with 413, before they fill memory or disk.

Pure ASGI so it sees the bytes as they arrive: a declared Content-Length over the limit is refused
before anything is read, and a chunked body is cut off as soon as it passes the limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app, limit_for: Callable[[dict], int]) -> None:
        self.app = app
        self.limit_for = limit_for  # scope -> byte limit for that request

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _too_large(send, limit)
                    return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit)


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"detail": f"The request body is larger than the {limit} byte limit.",
                       "errors": []}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
