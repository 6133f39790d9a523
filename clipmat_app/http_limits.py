"""A cap on the size of every HTTP request body, enforced before the body is read.

:class:`BodyLimit` is plain ASGI middleware (no gradio import). A request whose Content-Length
is over its route's limit is answered 413 at once, without reading the body; a body without a
Content-Length (chunked) is counted as it arrives and cut off at the limit: the app then sees
a disconnected client, and the client gets the same 413.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UPLOAD_SLACK_BYTES = 256 * 1024  # multipart headers and boundaries around one uploaded file


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n < 10 * 2**20 else f"{n / 2**20:.0f} MB"


class BodyLimit:
    """Refuse request bodies over a limit: ``upload_bytes`` for Gradio's upload route (paths
    ending in ``/upload``), ``other_bytes`` for every other route (JSON calls, where a phrase
    or an inline ``data:`` URL travels).

    Args:
        app: the ASGI app to protect.
        upload_bytes: the largest upload request (one file and its multipart framing).
        other_bytes: the largest body of any other request.
    """

    def __init__(self, app: ASGIApp, *, upload_bytes: int, other_bytes: int) -> None:
        self.app = app
        self.upload_bytes = upload_bytes
        self.other_bytes = other_bytes

    def limit(self, path: str) -> int:
        """The body limit of a route (the plain API's /api/matte carries a photo and a
        background: two uploads)."""
        if path.rstrip("/") == "/api/matte":
            return 2 * self.upload_bytes
        return self.upload_bytes if path.rstrip("/").endswith("/upload") else self.other_bytes

    def message(self, path: str, size: int | None) -> str:
        """What the client is told: how large the request was, and what is accepted."""
        limit = self.limit(path)
        got = f"is {_megabytes(size)}, too large" if size is not None else "is too large"
        if limit in (self.upload_bytes, 2 * self.upload_bytes):
            files = self.upload_bytes - UPLOAD_SLACK_BYTES
            what = f"files are accepted up to {_megabytes(files)} each"
        else:
            what = (
                f"requests are accepted up to {_megabytes(limit)}; send photos as uploaded "
                "files (gradio_client.handle_file), not inline"
            )
        return f"this request {got}: {what}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.limit(path)
        length = _content_length(scope)
        if length is not None and length > limit:
            await _refuse(send, self.message(path, length))
            return
        received = 0
        over = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a cut-off body is replaced by the 413 below
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _refuse(send, self.message(path, None))


def _content_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when it has none (or an unreadable one, which
    the server itself refuses)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, text: str) -> None:
    """Answer 413 with ``{"detail": text}`` and close the connection."""
    body = json.dumps({"detail": text, "error": text}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
