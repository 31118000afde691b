#!/usr/bin/env python3
"""Container entrypoint: ``serve`` runs the whole service; anything else runs as a command.

SageMaker starts a bring-your-own container as ``docker run IMAGE serve`` and then
  * sends GET /ping and POST /invocations to port 8080 (/ping must answer within 2 s),
  * unpacks model artifacts (model_data_url) into /opt/ml/model,
  * on scale-in sends SIGTERM, then SIGKILL 30 s later.

``serve`` therefore:
  1. maps SageMaker's environment onto the app's SDTURBO_* settings (``sagemaker_environment``),
  2. builds the application, which resolves the model first: a model that cannot be found fails
     here, with the reason, and the container exits non-zero instead of hanging,
  3. starts a Ray head sized to the container's CPUs and GPUs (Ray's own detection, the same
     numbers the app was sized with in step 2: settings that cannot fit end the container here),
     with a small object store that fits a container's /dev/shm (until Ray Serve's proxy takes
     the port, /ping answers 503 "loading"; for the second or two between the proxy binding the
     port and the app's routes appearing, Ray's proxy answers 404, also not-ready to SageMaker),
  4. deploys the Serve app on 0.0.0.0:8080 and waits for it to run, at most until the start-up
     deadline (SDTURBO_STARTUP_DEADLINE_S, counted from the container's start, below SageMaker's
     start-up health check): a replica that fails, or is still not running then (unschedulable,
     a constructor that never returns), ends the container non-zero with Ray's reason,
  5. on SIGTERM drains: /ping turns 503, new requests get 503, in-flight requests finish (up to
     SDTURBO_DRAIN_TIMEOUT_S), then Serve and Ray shut down and the process exits 0.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path

SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")

EXIT_MODEL_LOAD_FAILED = 2
EXIT_DEPLOY_FAILED = 3
EXIT_STARTUP_DEADLINE = 4
EXIT_DOES_NOT_FIT = 5


def log(message: str) -> None:
    print(f"[entrypoint] {message}", file=sys.stderr, flush=True)


def sagemaker_environment(
    environ: MutableMapping[str, str], model_dir: Path = SAGEMAKER_MODEL_DIR
) -> dict[str, str]:
    """The SDTURBO_* settings implied by the SageMaker contract; explicit SDTURBO_* values win.

    * SageMaker talks to 0.0.0.0:8080 (SAGEMAKER_BIND_TO_PORT overrides the port when set).
    * A pipeline unpacked into /opt/ml/model (model_data_url, or baked into the image) is the
      model unless SDTURBO_MODEL names another.
    * Weights already inside the image or the model directory need no network: with
      SDTURBO_OFFLINE=1 the Hugging Face Hub is never contacted.
    """
    implied = {
        "SDTURBO_HOST": "0.0.0.0",
        "SDTURBO_PORT": environ.get("SAGEMAKER_BIND_TO_PORT", "8080"),
    }
    if (model_dir / "model_index.json").is_file():
        implied["SDTURBO_MODEL"] = str(model_dir)
    if environ.get("SDTURBO_OFFLINE", "0") in ("1", "true"):
        implied["HF_HUB_OFFLINE"] = "1"
    return {key: value for key, value in implied.items() if key not in environ}


class StartingResponder:
    """Answers 503 on the service port while the model is fetched and Ray starts.

    Fetching real weights can take minutes; SageMaker's health checks during that time get a
    clear "loading" 503 instead of a refused connection. Stopped just before Ray Serve's proxy
    binds the port.
    """

    def __init__(self, host: str, port: int):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def _loading(self) -> None:
                body = b'{"status": "loading"}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Retry-After", "5")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _loading

            def log_message(self, *args) -> None:  # keep health checks out of the log
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StartingResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class Drainer:
    """Turns SIGTERM into an orderly drain on the main thread."""

    def __init__(self) -> None:
        self.requested = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        log(f"received {signal.Signals(signum).name}: draining")
        self.requested.set()


def serve_forever() -> int:
    started = time.monotonic()  # the start-up deadline counts from here, as SageMaker's does
    os.environ.update(sagemaker_environment(os.environ))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The replicas' CloudWatch EMF lines must reach this process's stdout whole (no Ray prefix)
    # and every one of them (no cross-replica dedup); Ray reads these when it is imported.
    from serve_app.emf import RAY_LOG_FORWARDING_ENV

    for name, value in RAY_LOG_FORWARDING_ENV.items():
        os.environ.setdefault(name, value)

    from serve_app.settings import Settings

    settings = Settings.load()
    drainer = Drainer()
    drainer.install()

    with StartingResponder(settings.host, settings.port):
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
        _prepare_startup_deadline(settings)
        ray.init(
            num_cpus=int(resources.cpus),
            num_gpus=int(resources.gpus),
            object_store_memory=settings.object_store_bytes,
            include_dashboard=False,
            _temp_dir=settings.ray_temp_dir,
            # Prometheus text format: Ray's own metrics and the app's sdturbo_* ones.
            _metrics_export_port=settings.metrics_port,
        )
        # Ray installs its own handlers during init; ours must be the ones that run.
        drainer.install()

    # The 503 responder has let go of the port; Serve's proxy takes it now.
    serve.start(
        http_options={
            "host": settings.host,
            "port": settings.port,
            # A backstop above the app's own timeout (which answers 504 with a message).
            "request_timeout_s": settings.request_timeout_s + 5,
        }
    )

    # 3. Deploy, and wait until every replica has loaded and warmed up, or the deadline.
    failure = _deploy_before_deadline(serve, app, settings, started)
    if failure is not None:
        exit_code, reason = failure
        log(reason)
        _shutdown(serve, ray)
        return exit_code
    log(f"ready: http://{settings.host}:{settings.port} (model {settings.model})")

    # 4. Wait for SIGTERM, then drain and exit.
    while not drainer.requested.wait(timeout=1.0):
        pass
    _drain(serve, settings)
    _shutdown(serve, ray)
    log("stopped")
    return 0


def _prepare_startup_deadline(settings) -> None:
    """Before Ray starts: have Serve explain a slow replica well before the deadline."""
    from serve_app.startup import ray_slow_startup_env

    os.environ.update(ray_slow_startup_env(settings.startup_deadline_s, os.environ))


def _deploy_before_deadline(serve, app, settings, started: float) -> tuple[int, str] | None:
    """Deploy without blocking, then wait for RUNNING until ``startup_deadline_s`` after
    ``started``; returns (exit code, reason) if the app failed or is still not running then.

    ``serve.run`` would wait forever for a replica that can never be scheduled, leaving
    SageMaker nothing but a failed health check.
    """
    from serve_app.startup import Outcome, deadline_after, wait_until_running

    try:
        target = serve.RunTarget(app, name=settings.app_name, route_prefix="/")
        serve.run_many([target], wait_for_applications_running=False)
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


def _drain(serve, settings) -> None:
    started = time.monotonic()
    handle = serve.get_app_handle(settings.app_name)
    try:
        inflight = handle.drain.remote().result(timeout_s=5)
        while inflight and time.monotonic() - started < settings.drain_timeout_s:
            time.sleep(0.2)
            inflight = handle.inflight.remote().result(timeout_s=5)
        log(f"drained in {time.monotonic() - started:.1f}s ({inflight} request(s) left)")
    except Exception as exc:  # noqa: BLE001 - shut down regardless
        log(f"drain incomplete: {type(exc).__name__}: {exc}")


def _shutdown(serve, ray) -> None:
    try:
        serve.shutdown()
    finally:
        ray.shutdown()


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "serve":
        return serve_forever()
    if len(argv) > 1:
        # Any other argument is a command (e.g. `docker run IMAGE python3 -m deployments.smoke_test ...`).
        os.execvp(argv[1], argv[1:])
    log("usage: entrypoint serve | <command> [args...]")
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
