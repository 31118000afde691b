"""Readiness that goes stale, and processes told apart: alive, exited but not reaped, gone."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from serve_app.liveness import Readiness, Verdict, describe_death, describe_exit, process_state


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_readiness_needs_a_recent_healthy_answer():
    clock = FakeClock()
    readiness = Readiness(stale_after_s=6, clock=clock)
    assert not readiness.verdict().ready and "no answer from the Serve controller yet" in readiness.verdict().reason

    readiness.observe(True)
    assert readiness.verdict().ready and readiness.ever_ready
    clock.now += 6
    assert readiness.verdict().ready  # at the limit: still trusted
    clock.now += 1
    stale = readiness.verdict()
    assert not stale.ready and stale.reason == "no answer from the Serve controller for 7 s"

    readiness.observe(False, "no model replica is running (SDTurboModel is UNHEALTHY)")
    assert readiness.verdict() == Verdict(False, "no model replica is running (SDTurboModel is UNHEALTHY)")
    readiness.observe(False)
    assert readiness.verdict().reason == "no model replica is running"
    readiness.observe(True)
    assert readiness.verdict() == Verdict(True, "")


def test_process_state_tells_alive_zombie_and_gone_apart():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    assert process_state(child.pid) == "alive"
    child.kill()
    deadline = time.monotonic() + 10
    while process_state(child.pid) != "zombie":  # dead, its parent (this test) has not reaped it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert child.wait() == -signal.SIGKILL
    assert process_state(child.pid) == "gone"


def test_deaths_are_described_in_words():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"
    assert describe_death("raylet", 91, -9) == "the raylet (pid 91) died (killed by SIGKILL)"
    assert describe_death("raylet", 91, None) == "the raylet (pid 91) died (gone)"
