import pytest

from serve_app.health import PipelineHealth


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_healthy_until_a_pipeline_call_fails_then_healthy_again_after_a_success():
    health = PipelineHealth(stall_after_s=10, clock=Clock())
    health.check()
    health.call_started()
    health.call_failed(RuntimeError("CUDA error: an illegal memory access was encountered"))
    with pytest.raises(RuntimeError, match="last pipeline call failed: RuntimeError: CUDA error"):
        health.check()
    health.call_started()
    health.call_succeeded()
    health.check()


def test_a_request_error_says_nothing_about_the_device():
    health = PipelineHealth(stall_after_s=10, clock=Clock())
    health.call_started()
    health.call_ended()
    health.check()


def test_a_call_running_past_the_stall_limit_is_unhealthy():
    clock = Clock()
    health = PipelineHealth(stall_after_s=10, clock=clock)
    health.call_started()
    clock.now += 9
    health.check()
    clock.now += 2
    with pytest.raises(RuntimeError, match="running for 11 s"):
        health.check()
    health.call_succeeded()
    health.check()
