"""Batch formation that follows the device: one pipeline call at a time, each made of whatever
is waiting when the device becomes free.

Why not ``@serve.batch`` alone: Ray 2.60's batcher closes a batch every ``batch_wait_timeout_s``
whether or not the previous one is still running, and the closed batches queue on its
``max_concurrent_batches`` semaphore. Batch size then follows arrival rate x wait instead of how
long the device is busy, and a lone request always waits the full timeout. Here Ray's batcher
only hands requests over (the Ray layer returns at once, so its semaphore never holds a batch
back) and this loop decides what runs together, the way Triton's dynamic batcher does:

* a request that finds the device idle starts at once (no timer anywhere in this module);
* while a call runs, every arrival waits; when the call ends, the next call takes the oldest
  waiting request's group (equal ``GenerationSpec.group_key``: size, steps, guidance) in arrival
  order, up to ``max_batch_size``; the other groups follow, oldest first;
* a request whose caller gave up (its future cancelled) is dropped before it starts, and a
  running call whose requests are all gone is told to stop through ``should_stop``, a plain
  ``() -> bool`` the generator polls between denoising steps (it raises ``PipelineCallCancelled``).

Pure asyncio: no Ray, no torch. The blocking pipeline call runs on one dedicated worker thread,
so the event loop keeps accepting (and encoding) while the device is busy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from serve_app.batching import GenerationSpec, PipelineCallCancelled

T = TypeVar("T")
logger = logging.getLogger(__name__)

# run(specs, should_stop) -> one result per spec, in order; blocking (it runs on the device thread).
PipelineCall = Callable[[list[GenerationSpec], Callable[[], bool]], Sequence[T]]


__all__ = ["CallRecord", "DeviceLoop", "DeviceRequest", "PipelineCall", "PipelineCallCancelled"]


@dataclass
class DeviceRequest:
    """One request's place in the loop. Its future exists before it is queued, so a caller who
    gives up at any point (even while Ray's batcher still holds it) cancels the same future."""

    spec: GenerationSpec
    future: asyncio.Future
    submitted_at: float = 0.0  # time.perf_counter() when prepared: the request reached this replica
    # Set on the event loop when the caller cancels; read by the device thread (plain bool).
    abandoned: bool = False


@dataclass(frozen=True)
class CallRecord:
    """One pipeline call, as reported to ``on_call`` (metrics) when it ends."""

    size: int
    outcome: str  # "completed", "cancelled" (all its requests gone) or "failed"
    duration_ms: float
    # Per request: from being queued to the call starting (the batching delay, or the wait for the device).
    waits_ms: tuple[float, ...] = field(default=())


class DeviceLoop(Generic[T]):
    """Runs ``run`` for batches of submitted specs, one call at a time.

    The only place requests are batched: ``max_batch_size`` (the ``max_batch_size`` setting) caps
    each call here; the generator runs each call as it is given (one group, already sized).
    """

    def __init__(
        self,
        run: PipelineCall,
        max_batch_size: int,
        *,
        on_call: Callable[[CallRecord], None] | None = None,
        on_abandoned: Callable[[str, int], None] | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self._run = run
        self.max_batch_size = max_batch_size
        self._on_call = on_call or (lambda record: None)
        # on_abandoned(stage, count): stage "queued" (dropped before starting) or "running" (call stopped).
        self._on_abandoned = on_abandoned or (lambda stage, count: None)
        self._waiting: deque[DeviceRequest] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        # One thread: calls never overlap, and torch's per-thread state stays on one thread.
        self._device = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline")
        self.busy = False

    # --- the caller's side ------------------------------------------------------------------
    def prepare(self, spec: GenerationSpec) -> DeviceRequest:
        """A request with its future, not queued yet; cancelling the future abandons it."""
        request = DeviceRequest(spec, asyncio.get_running_loop().create_future(), submitted_at=time.perf_counter())
        request.future.add_done_callback(lambda f: _mark_abandoned(request, f))
        return request

    def enqueue(self, requests: Sequence[DeviceRequest]) -> None:
        """Queue ``requests`` for the next call (one that finds the device idle starts at once)."""
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._serve_forever(), name="device-loop")
        self._waiting.extend(requests)
        self._wakeup.set()

    def submit(self, spec: GenerationSpec) -> asyncio.Future:
        """``prepare`` and ``enqueue`` in one: a future for ``spec``'s result."""
        request = self.prepare(spec)
        self.enqueue([request])
        return request.future

    @property
    def waiting(self) -> int:
        """Requests waiting for a call (abandoned ones not counted)."""
        return sum(1 for r in self._waiting if not r.future.done())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._device.shutdown(wait=False, cancel_futures=True)

    # --- the device's side ------------------------------------------------------------------
    async def _serve_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # 1. Drain: call after call until nothing is waiting (arrivals during a call join the next).
            while call := self._next_call():
                await self._run_call(call)

    def _next_call(self) -> list[DeviceRequest]:
        """The oldest live request's group, in arrival order, up to max_batch_size; removed from the queue."""
        # 1. Requests whose callers gave up are never generated. (Read the futures here, on the
        #    loop: their done-callbacks that set ``abandoned`` may not have run yet.)
        live = [r for r in self._waiting if not r.future.done()]
        if len(live) < len(self._waiting):
            _notify(self._on_abandoned, "queued", len(self._waiting) - len(live))
        if not live:
            self._waiting.clear()
            return []
        # 2. The oldest request decides the group; others of the group join it in arrival order.
        key = live[0].spec.group_key
        call = [r for r in live if r.spec.group_key == key][: self.max_batch_size]
        chosen = {id(r) for r in call}
        self._waiting = deque(r for r in live if id(r) not in chosen)
        return call

    async def _run_call(self, call: list[DeviceRequest]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        waits_ms = tuple((started - r.submitted_at) * 1000.0 for r in call)

        def should_stop() -> bool:
            return all(r.abandoned for r in call)

        outcome = "completed"
        self.busy = True
        try:
            results = await loop.run_in_executor(self._device, self._run, [r.spec for r in call], should_stop)
        except PipelineCallCancelled:
            outcome = "cancelled"
            _notify(self._on_abandoned, "running", len(call))
            _fail_remaining(call, asyncio.CancelledError())
        except asyncio.CancelledError:  # the loop itself is being shut down
            _fail_remaining(call, asyncio.CancelledError())
            raise
        except Exception as exc:  # noqa: BLE001 - the call's error belongs to its requests, not the loop
            outcome = "failed"
            _fail_remaining(call, exc)
        else:
            for request, result in zip(call, results, strict=True):
                if not request.future.done():
                    request.future.set_result(result)
        finally:
            self.busy = False
        duration_ms = (time.perf_counter() - started) * 1000.0
        _notify(self._on_call, CallRecord(len(call), outcome, duration_ms, waits_ms))


def _notify(hook: Callable, *args) -> None:
    try:
        hook(*args)
    except Exception:  # noqa: BLE001 - a metrics hook must never stop the device loop
        logger.exception("device loop hook %r failed", hook)


def _mark_abandoned(request: DeviceRequest, future: asyncio.Future) -> None:
    if future.cancelled():
        request.abandoned = True


def _fail_remaining(call: list[DeviceRequest], exc: BaseException) -> None:
    for request in call:
        if not request.future.done():
            if isinstance(exc, asyncio.CancelledError):
                request.future.cancel()
            else:
                request.future.set_exception(exc)
