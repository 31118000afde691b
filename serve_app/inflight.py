"""The requests an ingress holds, for an orderly stop (no Ray here: the Ray layer owns one).

On SIGTERM the container first *drains* (new requests are refused, the open ones may finish),
and at the stop deadline it *aborts* what is left: every request still waiting on the model is
answered at once with a clear 503 instead of being cut off when the process dies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from serve_app.errors import ShuttingDown

T = TypeVar("T")


class InflightRequests:
    def __init__(self) -> None:
        self.open = 0  # HTTP requests inside the app (counted by CountOpenRequests)
        self.waiting = 0  # of those, the ones waiting on the model (``run``)
        self.draining = False
        self._abort_reason: str | None = None
        self._aborted: asyncio.Event | None = None  # made on first use, inside the serving loop

    def _abort_event(self) -> asyncio.Event:
        if self._aborted is None:
            self._aborted = asyncio.Event()
            if self._abort_reason is not None:
                self._aborted.set()
        return self._aborted

    async def run(self, call: Awaitable[T]) -> T:
        """Await ``call``; if ``abort`` comes first, cancel it and raise ``ShuttingDown``."""
        self.waiting += 1
        work = asyncio.ensure_future(call)
        aborted = asyncio.ensure_future(self._abort_event().wait())
        try:
            await asyncio.wait({work, aborted}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():  # finished (or failed) first: its own outcome stands
                return work.result()
            work.cancel()  # the call's own cancellation handling stops the work downstream
            raise ShuttingDown(self._abort_reason or "the server is shutting down", retry_after_s=1)
        except asyncio.CancelledError:
            work.cancel()  # the caller went away: so does the work
            raise
        finally:
            aborted.cancel()
            self.waiting -= 1

    def drain(self) -> int:
        """Refuse new work from now on; returns the requests still open."""
        self.draining = True
        return self.open

    def abort(self, reason: str) -> int:
        """End every request still waiting on the model with ``ShuttingDown(reason)``; returns
        how many requests are still open (they answer within moments)."""
        self.draining = True
        self._abort_reason = reason
        self._abort_event().set()
        return self.open


class CountOpenRequests:
    """ASGI middleware: keeps ``InflightRequests.open`` (a request's answer is sent when it leaves)."""

    def __init__(self, app, inflight: InflightRequests) -> None:
        self.app = app
        self.inflight = inflight

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.inflight.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight.open -= 1
