"""The device loop with a fake generator: deterministic, no Ray, no torch, no timers.

The fake's calls block on gates the test opens, so "while a call runs" is an exact state here,
not a guess about timing.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from serve_app.batching import GenerationSpec
from serve_app.device_loop import CallRecord, DeviceLoop, PipelineCallCancelled

# Bounds every wait for the fake's thread; never reached when the code is right.
PATIENCE_S = 10.0


def spec(seed: int, **fields) -> GenerationSpec:
    return GenerationSpec(prompt=f"p{seed}", seed=seed, **fields)


class GatedGenerator:
    """Records each call's seeds; every denoising step waits for ``step()`` (when ``gated``)."""

    def __init__(self, gated: bool = True, fail_on_seed: int | None = None):
        self.gated = gated
        self.fail_on_seed = fail_on_seed
        self.calls: list[list[int]] = []
        self.steps_run: list[int] = []
        self._step = threading.Semaphore(0)
        self._stepped = threading.Semaphore(0)
        self._running = threading.Event()

    def __call__(self, specs, should_stop):
        self.calls.append([s.seed for s in specs])
        self.steps_run.append(0)
        self._running.set()
        try:
            if self.fail_on_seed in self.calls[-1]:
                raise RuntimeError("device error")
            for _ in range(specs[0].num_inference_steps):
                if self.gated:
                    assert self._step.acquire(timeout=PATIENCE_S), "the test never released a step"
                self.steps_run[-1] += 1
                stop = should_stop()  # what diffusers' callback_on_step_end does in the real generator
                self._stepped.release()
                if stop:
                    raise PipelineCallCancelled("stopped")
            return [f"image-{s.seed}" for s in specs]
        finally:
            self._running.clear()

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self._step.release()

    async def step_done(self) -> None:
        """Wait (off the event loop) until the call has run a step and asked whether to stop."""
        assert await asyncio.to_thread(self._stepped.acquire, True, PATIENCE_S)

    async def running(self) -> None:
        """Wait (off the event loop) until a call is inside the generator."""
        assert await asyncio.to_thread(self._running.wait, PATIENCE_S)


async def turns(n: int = 3) -> None:
    """Let the event loop run ``n`` times: no clock involved."""
    for _ in range(n):
        await asyncio.sleep(0)


def make_loop(generator, max_batch_size=8):
    records: list[CallRecord] = []
    abandoned: list[tuple[str, int]] = []
    loop = DeviceLoop(
        generator, max_batch_size, on_call=records.append, on_abandoned=lambda stage, n: abandoned.append((stage, n))
    )
    return loop, records, abandoned


async def test_a_lone_request_on_an_idle_device_starts_at_once():
    generator = GatedGenerator()
    loop, records, _ = make_loop(generator)
    future = loop.submit(spec(1))
    # No batch timeout: the call is on the device within a few event-loop turns, with no time passing.
    await turns(2)
    assert loop.busy
    await generator.running()
    assert generator.calls == [[1]]
    generator.step()
    assert await asyncio.wait_for(future, PATIENCE_S) == "image-1"
    assert records[0].size == 1 and records[0].outcome == "completed"
    loop.close()


async def test_requests_arriving_during_a_call_all_join_the_next_call():
    generator = GatedGenerator()
    loop, records, _ = make_loop(generator, max_batch_size=8)
    first = loop.submit(spec(0))
    await generator.running()
    # Arrivals spread over many loop turns while the first call runs: they wait for the device,
    # not for a timer, so all of them form the next call.
    later = []
    for seed in range(1, 6):
        later.append(loop.submit(spec(seed)))
        await turns(5)
    generator.step()
    assert await asyncio.wait_for(first, PATIENCE_S) == "image-0"
    await generator.running()
    assert generator.calls == [[0], [1, 2, 3, 4, 5]]
    generator.step()
    assert await asyncio.wait_for(asyncio.gather(*later), PATIENCE_S) == [f"image-{s}" for s in range(1, 6)]
    assert [r.size for r in records] == [1, 5]
    loop.close()


async def test_the_next_call_is_capped_at_max_batch_size_and_the_rest_follow_in_order():
    generator = GatedGenerator()
    loop, _, _ = make_loop(generator, max_batch_size=4)
    futures = [loop.submit(spec(0))]
    await generator.running()
    futures += [loop.submit(spec(seed)) for seed in range(1, 11)]
    generator.step(4)
    await asyncio.wait_for(asyncio.gather(*futures), PATIENCE_S)
    assert generator.calls == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    loop.close()


async def test_the_oldest_requests_group_runs_next_and_other_groups_keep_their_turn():
    generator = GatedGenerator()
    loop, _, _ = make_loop(generator, max_batch_size=8)
    futures = [loop.submit(spec(0))]
    await generator.running()
    # (size, steps, guidance) decide the group; prompts and seeds never do.
    futures += [
        loop.submit(spec(1, width=256)),
        loop.submit(spec(2)),
        loop.submit(spec(3, width=256)),
        loop.submit(spec(4, guidance_scale=2.0)),
        loop.submit(spec(5)),
    ]
    generator.step(4)
    await asyncio.wait_for(asyncio.gather(*futures), PATIENCE_S)
    assert generator.calls == [[0], [1, 3], [2, 5], [4]]
    loop.close()


async def test_a_request_cancelled_before_its_call_is_never_generated():
    generator = GatedGenerator()
    loop, records, abandoned = make_loop(generator)
    first = loop.submit(spec(0))
    await generator.running()
    gone = loop.submit(spec(1))
    kept = loop.submit(spec(2))
    gone.cancel()  # the caller timed out or disconnected while the device was busy
    generator.step()
    await generator.running()
    generator.step()
    assert await asyncio.wait_for(kept, PATIENCE_S) == "image-2"
    await first
    assert generator.calls == [[0], [2]]
    assert ("queued", 1) in abandoned
    # A call whose every request was cancelled before it started never reaches the device.
    await turns()
    lonely = loop.submit(spec(3))
    lonely.cancel()
    await turns(5)
    assert generator.calls == [[0], [2]] and not loop.busy
    assert [r.size for r in records] == [1, 1]
    loop.close()


async def test_a_running_call_whose_requests_are_all_gone_stops_at_the_next_step():
    generator = GatedGenerator()
    loop, records, abandoned = make_loop(generator)
    a, b = loop.submit(spec(0, num_inference_steps=4)), loop.submit(spec(1, num_inference_steps=4))
    await generator.running()
    assert generator.calls == [[0, 1]]
    a.cancel()
    await turns()
    generator.step()  # one request is still waiting: the call goes on
    await generator.step_done()
    b.cancel()
    await turns()
    generator.step()  # now nobody waits: the call stops after this step
    await generator.step_done()
    after = loop.submit(spec(2))
    await generator.running()
    generator.step()
    assert await asyncio.wait_for(after, PATIENCE_S) == "image-2"
    assert generator.steps_run == [2, 1]  # of 4 steps: two were skipped
    assert [(r.size, r.outcome) for r in records] == [(2, "cancelled"), (1, "completed")]
    assert ("running", 2) in abandoned
    loop.close()


async def test_a_failed_call_fails_its_own_requests_and_the_loop_goes_on():
    generator = GatedGenerator(gated=False, fail_on_seed=0)
    loop, records, _ = make_loop(generator)
    with pytest.raises(RuntimeError, match="device error"):
        await asyncio.wait_for(loop.submit(spec(0)), PATIENCE_S)
    assert await asyncio.wait_for(loop.submit(spec(1)), PATIENCE_S) == "image-1"
    assert [r.outcome for r in records] == ["failed", "completed"]
    loop.close()


async def test_waits_are_reported_per_request():
    generator = GatedGenerator(gated=False)
    loop, records, _ = make_loop(generator)
    await asyncio.wait_for(asyncio.gather(loop.submit(spec(0)), loop.submit(spec(1))), PATIENCE_S)
    assert [len(r.waits_ms) for r in records] == [2] and all(w >= 0 for w in records[0].waits_ms)
    loop.close()


def test_max_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        DeviceLoop(GatedGenerator(), 0)


async def test_a_failing_metrics_hook_never_stops_the_loop():
    def broken(*_):
        raise RuntimeError("metrics backend down")

    loop = DeviceLoop(GatedGenerator(gated=False), 8, on_call=broken, on_abandoned=broken)
    cancelled = loop.submit(spec(0))
    cancelled.cancel()
    assert await asyncio.wait_for(loop.submit(spec(1)), PATIENCE_S) == "image-1"
    assert await asyncio.wait_for(loop.submit(spec(2)), PATIENCE_S) == "image-2"
    loop.close()
