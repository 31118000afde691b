#!/usr/bin/env python3
"""Container entrypoint: ``serve`` runs the whole service; anything else runs as a command.

SageMaker starts a bring-your-own container as ``docker run IMAGE serve`` and then
  * sends GET /ping and POST /invocations to port 8080 (/ping must answer within 2 s),
  * unpacks model artifacts (model_data_url) into /opt/ml/model,
  * on scale-in sends SIGTERM, then SIGKILL 30 s later.

``serve`` therefore:
  0. if the host's NVIDIA driver is older than the CUDA forward-compatibility driver of the base
     image, re-runs itself with that driver first on LD_LIBRARY_PATH (``cuda_compat.py``),
  1. maps SageMaker's environment onto the app's SDTURBO_* settings (``sagemaker_environment``),
     and starts the 503 "loading" responder on the port (``port_handover.py``, its own process),
  2. builds the application, which resolves the model first: a model that cannot be found fails
     here, with the reason, and the container exits non-zero instead of hanging,
  3. starts a Ray head sized to the container's CPUs and GPUs (Ray's own detection, the same
     numbers the app was sized with in step 2: settings that cannot fit end the container here),
     with a small object store that fits a container's /dev/shm,
  4. deploys the Serve app on 0.0.0.0:8080 and waits for it to run, at most until the start-up
     deadline (SDTURBO_STARTUP_DEADLINE_S, counted from the container's start, below SageMaker's
     start-up health check): a replica that fails, or is still not running then (unschedulable,
     a constructor that never returns), ends the container non-zero with Ray's reason. The ingress
     replica serves the port itself (direct ingress, one hop fewer than Ray's proxy) and shares it
     with the responder, which hands it over only once the ingress answers /ping
     itself: every /ping is answered quickly, from the first second on,
  5. while serving, watches what Ray does not bring back: the raylet and the GCS (its own child
     processes) and the Serve controller (DEAD, or restarting for 20 s). One of them gone ends
     the container with exit code 6 and one line saying what died, so SageMaker replaces the
     instance instead of routing requests to it (the ingress's /ping has turned 503 by then:
     serve_app/liveness.py). A model or ingress replica Ray restarts in place;
  6. on SIGTERM stops within SageMaker's 30 s: /ping turns 503, new requests get 503, in-flight
     requests may finish until the drain deadline (``drain_deadline_s``); those that cannot are
     answered with a 503 "shutting_down" error, then Ray shuts down and the process exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path

from cuda_compat import library_path_with_compat

SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
PORT_RESPONDER = Path(__file__).resolve().with_name("port_handover.py")

EXIT_MODEL_LOAD_FAILED = 2
EXIT_DEPLOY_FAILED = 3
EXIT_STARTUP_DEADLINE = 4
EXIT_DOES_NOT_FIT = 5
EXIT_RAY_COMPONENT_DIED = 6

# While serving: how often the Ray head's processes are checked, how often the Serve controller's
# state is asked of the GCS, and how long Ray may take to restart the controller.
WATCH_PERIOD_S = 1.0
CONTROLLER_CHECK_S = 2.0
CONTROLLER_RESTART_LIMIT_S = 20.0

# Stop timing. SageMaker sends SIGKILL 30 s after SIGTERM (as `docker stop -t 30` does), so the
# drain, answering what could not finish, and Ray's shutdown must all fit in that.
STOP_GRACE_S = 30.0
# Scheduling slack, and the safety net: a shutdown still running then exits before the SIGKILL.
STOP_MARGIN_S = 1.0
HARD_EXIT_AFTER_S = STOP_GRACE_S - STOP_MARGIN_S
# Ray's shutdown after the drain (ray.shutdown; Serve's own graceful teardown is skipped: every
# request has been answered by then). Measured in the image on the 2-core development machine
# (tests/container/test_image.py prints it; figures in docs/container.md), reserved with margin.
SHUTDOWN_RESERVE_S = 4.0
# Answering the requests aborted at the deadline (milliseconds) and Ray Serve relaying them.
ABORT_RESERVE_S = 1.5
RESPONSE_RELAY_S = 0.5


def log(message: str) -> None:
    print(f"[entrypoint] {message}", file=sys.stderr, flush=True)


def sagemaker_environment(
    environ: MutableMapping[str, str], model_dir: Path = SAGEMAKER_MODEL_DIR
) -> dict[str, str]:
    """The SDTURBO_* settings implied by the SageMaker contract; explicit SDTURBO_* values win.

    * SageMaker talks to 0.0.0.0:8080 (SAGEMAKER_BIND_TO_PORT overrides the port when set).
    * A pipeline unpacked into /opt/ml/model (model_data_url, or baked into the image) is the
      model unless SDTURBO_MODEL or SDTURBO_MODELS names the models (a list that wants the
      directory names it: ``/opt/ml/model,tiny-xl``); so is a /opt/ml/model this user cannot read
      (the start then fails with that reason, not with a PermissionError traceback).
    * Weights already inside the image or the model directory need no network: with
      SDTURBO_OFFLINE=1 the Hugging Face Hub is never contacted.
    """
    from serve_app.model.directory import unreadable_reason
    from serve_app.settings import SAGEMAKER_PORT, offline_requested

    implied = {
        "SDTURBO_HOST": "0.0.0.0",
        "SDTURBO_PORT": environ.get("SAGEMAKER_BIND_TO_PORT", str(SAGEMAKER_PORT)),
    }
    # A model directory this user cannot read (SageMaker's local mode mounts one readable by its
    # owner only) is still the model meant: resolving it then fails with the reason and the fix.
    # An explicit model list is the whole choice: implying SDTURBO_MODEL beside it would be both
    # forms at once, which the settings refuse.
    explicit_list = bool(environ.get("SDTURBO_MODELS", "").strip())
    if not explicit_list and (unreadable_reason(model_dir) is not None or (model_dir / "model_index.json").is_file()):
        implied["SDTURBO_MODEL"] = str(model_dir)
    if offline_requested(environ):
        implied["HF_HUB_OFFLINE"] = "1"
    return {key: value for key, value in implied.items() if key not in environ}


class PortResponder:
    """The 503 "loading" responder process (port_handover.py) that holds the service port.

    Fetching real weights can take minutes; SageMaker's health checks during that time get a
    clear "loading" 503 instead of a refused connection. It is a process of its own so that
    model building and ray.init in this one never slow its answers down (shared GIL).
    """

    def __init__(self, host: str, port: int):
        self._process = subprocess.Popen(
            [sys.executable, str(PORT_RESPONDER), host, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started = self._process.stdout.readline().split()
        if not started or started[0] != "listening":
            self._process.wait(timeout=10)
            raise RuntimeError(f"the port responder could not listen on {host}:{port} (see its error above)")
        # Without SO_REUSEPORT steering, the port must be free before Ray Serve binds it.
        self.shares_port = started[-1] == "steering=yes"

    def hand_over(self, probe_deadline_s: float = 30.0) -> str:
        """Give the port to Ray Serve (once it answers /ping, when sharing); returns what happened."""
        if self._process.poll() is not None:
            return "already handed over"
        self._process.stdin.write(f"handover {probe_deadline_s:g}\n")
        self._process.stdin.flush()
        report = self._process.stdout.read().strip()
        self._process.wait(timeout=30)
        return report

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()  # end of input: it closes the port and exits
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()


class Drainer:
    """Turns SIGTERM into an orderly drain on the main thread."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.signalled_at: float | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        if self.signalled_at is None:  # the stop deadline counts from the first signal
            self.signalled_at = time.monotonic()
        log(f"received {signal.Signals(signum).name}: draining")
        self.requested.set()


def serve_forever() -> int:
    started = time.monotonic()  # the start-up deadline counts from here, as SageMaker's does
    os.environ.update(sagemaker_environment(os.environ))
    from serve_app.settings import Settings

    settings = Settings.load()
    # Before Ray is imported: log forwarding, replica priority, slow-start warnings and direct
    # ingress (the ingress replica serves the port itself), all in serve_app/launch.py.
    from serve_app import launch

    http_options = launch.prepare_ray_environment(
        settings.host,
        settings.port,
        direct_ingress_enabled=settings.direct_ingress,
        startup_deadline_s=settings.startup_deadline_s,
        # A backstop above the app's own timeout (which answers 504 with a message).
        request_timeout_s=settings.request_timeout_s + 5,
    )
    drainer = Drainer()
    drainer.install()

    responder = PortResponder(settings.host, settings.port)
    try:
        # 1. Build the app: resolves (downloads or builds) the model, or fails with the reason.
        from serve_app.app import build_app_from_settings
        from serve_app.cluster import DoesNotFit, local_head_resources
        from serve_app.model import ModelLoadError

        resources = local_head_resources()
        try:
            app = build_app_from_settings(settings, resources)
        except ModelLoadError as exc:
            log(f"model could not be loaded: {exc}")
            return EXIT_MODEL_LOAD_FAILED
        except DoesNotFit as exc:
            log(f"the settings do not fit this container: {exc}")
            return EXIT_DOES_NOT_FIT

        # 2. A Ray head inside this container, given what the app was sized for.
        import ray
        from ray import serve

        log(f"starting Ray head: {resources.describe()}, object store {settings.object_store_bytes} bytes")
        launch.start_ray(
            launch.RayHead(
                num_cpus=int(resources.cpus),
                num_gpus=int(resources.gpus),
                object_store_memory=settings.object_store_bytes,
                temp_dir=settings.ray_temp_dir,
                metrics_export_port=settings.metrics_port,
            )
        )
        # Ray installs its own handlers during init; ours must be the ones that run.
        drainer.install()

        # 3. Serve's listener on the port (the ingress replica with direct ingress, else Ray's
        #    proxy) binds it beside the responder (both SO_REUSEPORT); where the port cannot be
        #    shared, the responder lets go of it first.
        if not responder.shares_port:
            log(f"port hand-over: {responder.hand_over()}")
        launch.start_serve(http_options)

        # 4. Deploy, and wait until every replica has loaded and warmed up, or the deadline.
        failure = _deploy_before_deadline(app, settings, started)
        if failure is not None:
            exit_code, reason = failure
            log(reason)
            launch.shutdown()
            return exit_code
        log(f"port hand-over: {responder.hand_over()}")
    finally:
        responder.close()
    log(f"ready: http://{settings.host}:{settings.port} (model {settings.model})")

    # 5. Wait for SIGTERM, then stop within SageMaker's grace period. Meanwhile, a Ray component
    #    that Ray does not bring back (the raylet, the GCS, the Serve controller for good) ends
    #    the container at once, so that SageMaker replaces the instance.
    watch = RayWatch.of_local_head()
    while not drainer.requested.wait(timeout=WATCH_PERIOD_S):
        death = watch.death()
        if death:
            log(f"{death}: this instance cannot serve any more; exiting so that it is replaced")
            _kill_descendants()
            return EXIT_RAY_COMPONENT_DIED
    stop_within_grace(serve, ray, settings, drainer.signalled_at or time.monotonic())
    log("stopped")
    return 0


class RayWatch:
    """What died of the Ray head this process started: its raylet and GCS (processes it owns:
    checked every WATCH_PERIOD_S, costs nothing) and the Serve controller (Ray restarts that
    actor; DEAD, or RESTARTING longer than CONTROLLER_RESTART_LIMIT_S, is final). The controller
    is asked on a thread of its own, so a GCS that hangs never holds the watch up."""

    def __init__(self, processes: dict[str, object], controller_state=None, clock=time.monotonic):
        self._processes = processes  # name -> subprocess.Popen
        self._controller_state = controller_state  # () -> (state, pid) | None
        self._clock = clock
        self._restarting_since: float | None = None
        self._controller_answer: tuple[str, int] | None = None
        self._controller_asked_at = 0.0
        self._asking = threading.Lock()

    @classmethod
    def of_local_head(cls) -> RayWatch:
        from serve_app.ray_private import local_head_processes, serve_controller_state

        return cls(local_head_processes(), serve_controller_state)

    def death(self) -> str | None:
        """One line saying what died, or None while everything Ray cannot bring back runs."""
        from serve_app.liveness import describe_death

        for name, process in self._processes.items():
            returncode = process.poll()  # also reaps it
            if returncode is not None:
                return describe_death(name, process.pid, returncode)
        if self._controller_state is None:
            return None
        self._ask_controller()
        answer = self._controller_answer
        if answer is None:
            return None
        state, pid = answer
        if state == "DEAD":
            return f"the Serve controller (pid {pid}) died and Ray did not restart it"
        if state == "RESTARTING":
            self._restarting_since = self._restarting_since or self._clock()
            if self._clock() - self._restarting_since > CONTROLLER_RESTART_LIMIT_S:
                return f"the Serve controller has been restarting for {CONTROLLER_RESTART_LIMIT_S:g} s (Ray cannot bring it back)"
        else:
            self._restarting_since = None
        return None

    def _ask_controller(self) -> None:
        if self._clock() - self._controller_asked_at < CONTROLLER_CHECK_S or not self._asking.acquire(blocking=False):
            return
        self._controller_asked_at = self._clock()

        def ask() -> None:
            try:
                self._controller_answer = self._controller_state()
            except Exception:  # noqa: BLE001 - the GCS is being checked as a process anyway
                pass
            finally:
                self._asking.release()

        threading.Thread(target=ask, name="controller-watch", daemon=True).start()


def _kill_descendants() -> None:
    """SIGKILL every process below this one (Ray's workers outlive a dead raylet otherwise)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    todo, found = list(children.get(os.getpid(), [])), []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _deploy_before_deadline(app, settings, started: float) -> tuple[int, str] | None:
    """Deploy without blocking, then wait for RUNNING until ``startup_deadline_s`` after
    ``started``; returns (exit code, reason) if the app failed or is still not running then.

    ``serve.run`` would wait forever for a replica that can never be scheduled, leaving
    SageMaker nothing but a failed health check.
    """
    from serve_app import launch
    from serve_app.startup import Outcome, deadline_after, wait_until_running

    try:
        launch.deploy(app, settings.app_name, wait_for_running=False)
    except Exception as exc:  # noqa: BLE001 - any deploy failure ends the container
        return EXIT_DEPLOY_FAILED, f"deployment failed: {type(exc).__name__}: {exc}"
    deadline = deadline_after(settings.startup_deadline_s, now=started)
    result = wait_until_running(deadline, settings.app_name)
    if result.outcome is Outcome.FAILED:
        return EXIT_DEPLOY_FAILED, f"deployment failed: {result.reason}"
    if result.outcome is Outcome.DEADLINE:
        return EXIT_STARTUP_DEADLINE, (
            f"not running {time.monotonic() - started:.0f} s after start "
            f"(startup_deadline_s={settings.startup_deadline_s:g}): {result.reason}"
        )
    return None


def drain_deadline_s(drain_timeout_s: float) -> float:
    """Seconds after SIGTERM that in-flight requests may take: what is left of SageMaker's 30 s
    once answering the unfinished ones and Ray's shutdown are reserved, or less if configured."""
    return max(0.0, min(drain_timeout_s, HARD_EXIT_AFTER_S - STOP_MARGIN_S - ABORT_RESERVE_S - SHUTDOWN_RESERVE_S))


def stop_within_grace(serve, ray, settings, signalled_at: float) -> None:
    """Drain, answer what could not finish, shut Ray down: all before SageMaker's SIGKILL."""
    watchdog = threading.Timer(max(0.0, signalled_at + HARD_EXIT_AFTER_S - time.monotonic()), _hard_exit)
    watchdog.daemon = True
    watchdog.start()
    deadline = signalled_at + drain_deadline_s(settings.drain_timeout_s)
    try:
        handle = serve.get_app_handle(settings.app_name)
        # 1. Refuse new work (/ping 503, requests 503) and let the open requests finish.
        left = _wait_for_open_requests(handle, handle.drain.remote().result(timeout_s=5), deadline)
        log(f"drained in {time.monotonic() - signalled_at:.1f}s after SIGTERM ({left} request(s) left)")
        # 2. Those that cannot finish in time get a 503 "shutting_down" answer, not a cut connection.
        if left:
            reason = (
                "the server is shutting down and this request could not finish before its stop deadline; "
                "it was not completed: retry it"
            )
            handle.abort_inflight.remote(reason).result(timeout_s=5)
            left = _wait_for_open_requests(handle, left, time.monotonic() + ABORT_RESERVE_S - RESPONSE_RELAY_S)
            time.sleep(RESPONSE_RELAY_S)  # Ray Serve writes those answers to their clients
            log(f"answered the unfinished requests with 503 shutting_down ({left} still open)")
    except Exception as exc:  # noqa: BLE001 - shut down regardless
        log(f"drain incomplete: {type(exc).__name__}: {exc}")
    # 3. Ray's processes go; Serve's graceful teardown would only wait for work already answered.
    started = time.monotonic()
    ray.shutdown()
    log(f"Ray shut down in {time.monotonic() - started:.1f}s; {time.monotonic() - signalled_at:.1f}s after SIGTERM")
    watchdog.cancel()


def _wait_for_open_requests(handle, open_requests: int, until: float) -> int:
    while open_requests and time.monotonic() < until:
        time.sleep(0.1)
        open_requests = handle.inflight.remote().result(timeout_s=5)
    return open_requests


def _hard_exit() -> None:
    log(f"shutdown still running {HARD_EXIT_AFTER_S:g}s after SIGTERM: exiting before SageMaker's SIGKILL")
    os._exit(0)


def apply_cuda_forward_compat(argv: list[str]) -> None:
    """Re-run this entrypoint with the CUDA compat driver first on LD_LIBRARY_PATH, when the
    host's driver is older than it (cuda_compat.py); otherwise return and change nothing."""
    change = library_path_with_compat(os.environ)
    if change is None:
        return
    new_path, why = change
    log(why)
    os.environ["LD_LIBRARY_PATH"] = new_path
    os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv[1:]])


def main(argv: list[str]) -> int:
    apply_cuda_forward_compat(argv)
    if len(argv) > 1 and argv[1] == "serve":
        code = serve_forever()
        # Leave now: the interpreter's teardown after Ray's shutdown (Ray's and Serve's background
        # threads) took 3 s more in the image, time SageMaker's 30 s stop budget does not have.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if len(argv) > 1:
        # Any other argument is a command (e.g. `docker run IMAGE python3 -m deployments.smoke_test ...`).
        os.execvp(argv[1], argv[1:])
    log("usage: entrypoint serve | <command> [args...]")
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
