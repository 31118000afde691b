"""Waiting for RUNNING with a deadline, and the reason given: Serve's own status objects, no Ray."""

from __future__ import annotations

import math

from ray.serve.schema import ApplicationStatusOverview, DeploymentStatusOverview, ServeStatus

from serve_app.startup import (
    Outcome,
    StartupWatch,
    deadline_after,
    explain,
    ray_slow_startup_env,
    wait_until_running,
)

UNSCHEDULABLE = (
    "Deployment 'SDTurboModel' in application 'sd-turbo' has 1 replicas that have taken more than 30s "
    'to be scheduled. ... Resources required for each replica: {"CPU": 1.0, "GPU": 1.0}, total '
    'resources available: {"CPU": 1.5}. Use `ray status` for more details.'
)
CONSTRUCTOR_FAILED = (
    "The deployment failed to start 3 times in a row. This may be due to a problem with its "
    "constructor or initial health check failing. See controller logs for details. Error:\n"
    "ModelLoadError: Found '/m' at /m but could not load it"
)


def deployment(status, message="", **replicas):
    return DeploymentStatusOverview(
        status=status, status_trigger="CONFIG_UPDATE_STARTED", replica_states=replicas, message=message
    )


def serve_status(app_status, model, ingress=None, app_message="", name="sd-turbo"):
    deployments = {"SDTurboModel": model, "Ingress": ingress or deployment("HEALTHY", RUNNING=1)}
    app = ApplicationStatusOverview(
        status=app_status, message=app_message, last_deployed_time_s=0.0, deployments=deployments
    )
    return ServeStatus(applications={name: app})


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds


def wait(statuses, deadline, app_name="sd-turbo"):
    clock = FakeClock()
    sequence = iter(statuses)
    last = []

    def status():
        last[:] = [next(sequence, last[0] if last else None)]
        return last[0]

    result = wait_until_running(deadline, app_name, status=status, clock=clock, sleep=clock.sleep, poll_s=1.0)
    return result, clock.now


def test_running_returns_at_once_with_no_reason():
    result, waited = wait([serve_status("RUNNING", deployment("HEALTHY", RUNNING=2))], deadline=10)
    assert result.outcome is Outcome.RUNNING and result.reason == "" and waited == 0


def test_deploying_then_running_waits_for_it():
    starting = serve_status("DEPLOYING", deployment("UPDATING", STARTING=1))
    running = serve_status("RUNNING", deployment("HEALTHY", RUNNING=1))
    result, waited = wait([starting, starting, starting, running], deadline=10)
    assert result.outcome is Outcome.RUNNING and waited == 3


def test_unschedulable_replica_at_the_deadline_gives_rays_reason():
    stuck = serve_status("DEPLOYING", deployment("UPDATING", UNSCHEDULABLE, STARTING=1))
    result, waited = wait([stuck], deadline=5)
    assert result.outcome is Outcome.DEADLINE and waited == 5
    assert result.reason.startswith("application 'sd-turbo' is DEPLOYING; deployment SDTurboModel is UPDATING")
    assert "(replicas: 1 STARTING)" in result.reason
    assert 'Resources required for each replica: {"CPU": 1.0, "GPU": 1.0}' in result.reason
    assert "Ingress" not in result.reason  # healthy deployments are not noise in the reason


def test_failed_constructor_is_reported_at_once_with_the_error():
    failed = serve_status(
        "DEPLOY_FAILED",
        deployment("DEPLOY_FAILED", CONSTRUCTOR_FAILED),
        app_message="The deployments ['SDTurboModel'] are UNHEALTHY.",
    )
    result, waited = wait([failed], deadline=100)
    assert result.outcome is Outcome.FAILED and waited == 0
    assert "failed to start 3 times" in result.reason and "ModelLoadError" in result.reason


def test_app_never_registered_says_so_at_the_deadline():
    result, _ = wait([ServeStatus()], deadline=2)
    assert result.outcome is Outcome.DEADLINE
    assert result.reason == "application 'sd-turbo' has not been deployed yet (Serve has not registered it)"


def test_a_starting_replica_without_a_message_yet_says_what_it_may_be_waiting_for():
    reason = explain("app", serve_status("DEPLOYING", deployment("UPDATING", STARTING=2)).applications["sd-turbo"])
    assert "SDTurboModel is UPDATING (replicas: 2 STARTING): no message from Ray yet" in reason


def test_the_ingress_watch_logs_the_reason_once_at_the_deadline(caplog):
    clock = FakeClock()
    watch = StartupWatch("sd-turbo", deadline_s=10, clock=clock)
    stuck = serve_status("DEPLOYING", deployment("UPDATING", UNSCHEDULABLE, STARTING=1)).applications["sd-turbo"]
    clock.now = 9.5
    assert watch.observe(stuck) is None  # not yet
    clock.now = 10.0
    with caplog.at_level("ERROR", logger="sd_turbo.startup"):
        reason = watch.observe(stuck)
    assert reason and "taken more than 30s to be scheduled" in reason
    assert [r.fields["event"] for r in caplog.records] == ["startup_deadline_passed"]
    assert caplog.records[0].fields["reason"] == reason
    clock.now = 20.0
    assert watch.observe(stuck) is None  # said once, not every poll


def test_the_ingress_watch_stays_quiet_once_the_app_ran():
    clock = FakeClock()
    watch = StartupWatch("sd-turbo", deadline_s=10, clock=clock)
    assert not watch.settled
    assert watch.observe(serve_status("RUNNING", deployment("HEALTHY", RUNNING=1)).applications["sd-turbo"]) is None
    assert watch.settled  # the ingress then polls only the model's health (the cheap status)
    clock.now = 60.0  # later trouble is not a start-up problem
    assert watch.observe(serve_status("DEPLOYING", deployment("UPDATING", STARTING=1)).applications["sd-turbo"]) is None


def test_the_ingress_watch_with_no_deadline_never_fires():
    clock = FakeClock()
    watch = StartupWatch("sd-turbo", deadline_s=0, clock=clock)
    clock.now = 1e9
    assert watch.observe(None) is None


def test_deadline_zero_means_none():
    assert deadline_after(0) == math.inf
    assert deadline_after(30, now=100.0) == 130.0


def test_ray_explains_slow_replicas_well_before_the_deadline():
    assert ray_slow_startup_env(840) == {
        "RAY_SERVE_SLOW_STARTUP_WARNING_S": "30",
        "RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S": "30",
    }
    assert ray_slow_startup_env(20)["RAY_SERVE_SLOW_STARTUP_WARNING_S"] == "5"
    assert ray_slow_startup_env(2)["RAY_SERVE_SLOW_STARTUP_WARNING_S"] == "1"
    assert ray_slow_startup_env(0) == {}
    # An operator's own value wins.
    assert ray_slow_startup_env(20, {"RAY_SERVE_SLOW_STARTUP_WARNING_S": "2"}) == {
        "RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S": "5"
    }
