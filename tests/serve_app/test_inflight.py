"""Draining and aborting the requests an ingress holds (serve_app/inflight.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from serve_app.errors import ShuttingDown
from serve_app.inflight import CountOpenRequests, InflightRequests


async def test_a_call_that_finishes_first_keeps_its_result():
    inflight = InflightRequests()

    async def work():
        await asyncio.sleep(0.01)
        return "image"

    assert await inflight.run(work()) == "image"
    assert inflight.waiting == 0


async def test_a_call_that_fails_keeps_its_own_error():
    inflight = InflightRequests()

    async def work():
        raise ValueError("model error")

    with pytest.raises(ValueError, match="model error"):
        await inflight.run(work())


async def test_abort_answers_waiting_calls_at_once_and_cancels_their_work():
    inflight = InflightRequests()
    cancelled = asyncio.Event()

    async def slow_work():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()  # what the ingress does here: cancel the model call
            raise

    calls = [asyncio.create_task(inflight.run(slow_work())) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert inflight.waiting == 3
    inflight.abort("stopping: could not finish in time")
    for call in calls:
        with pytest.raises(ShuttingDown, match="could not finish in time") as raised:
            await asyncio.wait_for(call, timeout=1)
        assert raised.value.status_code == 503 and raised.value.error_type == "shutting_down"
    await asyncio.wait_for(cancelled.wait(), timeout=1)
    assert inflight.waiting == 0 and inflight.draining


async def test_a_call_started_after_abort_is_refused_at_once():
    inflight = InflightRequests()
    inflight.abort("stopping")
    with pytest.raises(ShuttingDown):
        await asyncio.wait_for(inflight.run(asyncio.sleep(60)), timeout=1)


async def test_a_caller_that_goes_away_cancels_the_work():
    inflight = InflightRequests()
    cancelled = asyncio.Event()

    async def slow_work():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    call = asyncio.create_task(inflight.run(slow_work()))
    await asyncio.sleep(0.01)
    call.cancel()
    await asyncio.wait_for(cancelled.wait(), timeout=1)
    assert inflight.waiting == 0


async def test_open_requests_are_counted_until_their_answer_leaves():
    inflight = InflightRequests()
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(request):
        entered.set()
        await release.wait()
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/slow", slow)])
    app.add_middleware(CountOpenRequests, inflight=inflight)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        pending = asyncio.create_task(client.get("/slow"))
        await entered.wait()
        assert inflight.drain() == 1 and inflight.draining
        release.set()
        assert (await pending).text == "done"
    assert inflight.open == 0
