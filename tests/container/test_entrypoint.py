"""The container's entrypoint, run on the host exactly as SageMaker would run it (`serve`)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadtest.soak import process_tree
from serve_app.settings import Settings
from tests.conftest import free_port
from tests.container import chaos

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "container" / "entrypoint.py"

pytestmark = [pytest.mark.integration, pytest.mark.mostly_waiting]


def start(env_overrides: dict, tmp_path: Path, stdout_file: str | None = None) -> subprocess.Popen:
    """The entrypoint with stderr (and stdout, unless ``stdout_file`` names its own file) in the log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDTURBO_")}
    env.update(
        {
            "SDTURBO_HOST": "127.0.0.1",
            # Short: Ray's socket paths must stay under 108 bytes.
            "SDTURBO_RAY_TEMP_DIR": tempfile.mkdtemp(prefix="ray-", dir="/tmp"),
            "SDTURBO_OBJECT_STORE_BYTES": str(100 * 1024 * 1024),
            # Not the fixed 9090: another Ray on the machine may hold it (the agent then dies).
            "SDTURBO_METRICS_PORT": str(free_port()),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(env_overrides)
    log = open(tmp_path / "entrypoint.log", "w")
    stdout = open(tmp_path / stdout_file, "w") if stdout_file else log
    return subprocess.Popen(
        [sys.executable, str(ENTRYPOINT), "serve"], env=env, stdout=stdout, stderr=log, cwd=tmp_path
    )


def read_log(tmp_path: Path) -> str:
    return (tmp_path / "entrypoint.log").read_text()


@pytest.mark.timeout(240)
def test_serve_answers_ping_and_invocations_then_drains_on_sigterm(tmp_path, cache_dir, tiny_model_dir):
    port = free_port()
    process = start({"SDTURBO_MODEL": "tiny", "SDTURBO_PORT": str(port), "SDTURBO_CACHE_DIR": cache_dir}, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        # 1. /ping: unreachable or 503 while loading, then 200.
        deadline = time.monotonic() + 150
        statuses = []
        while True:
            assert process.poll() is None, read_log(tmp_path)
            try:
                statuses.append(httpx.get(url + "/ping", timeout=2).status_code)
            except httpx.TransportError:
                statuses.append("down")
            if statuses[-1] == 200:
                break
            assert time.monotonic() < deadline, f"/ping never turned 200: {statuses[-5:]}\n{read_log(tmp_path)}"
            time.sleep(0.25)
        # 503 "loading" from the start, then 200 once warm. From the first answer on, every ping
        # is answered within the 2 s limit, across the responder -> Ray proxy hand-over: no
        # refused or held connection ("down"), no 404 from a proxy without routes, no 500.
        first_answer = next(i for i, status in enumerate(statuses) if status != "down")
        assert statuses[first_answer] == 503 and set(statuses[first_answer:]) <= {503, 200}, statuses

        # 2. The SageMaker data path.
        response = httpx.post(url + "/invocations", json={"prompt": "a harbour", "width": 128, "height": 128}, timeout=60)
        assert response.status_code == 200 and response.json()["image"]

        # 3. SIGTERM with a (slow: 768x768, SD-Turbo's largest, 4 steps) request in flight: it is answered (200, or
        #    503 shutting_down if it cannot finish before the drain deadline), then exit 0.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(
                httpx.post,
                url + "/invocations",
                json={"prompt": "a slow one", "width": 768, "height": 768, "num_inference_steps": 4},
                timeout=60,
            )
            time.sleep(1.0)
            assert not slow.done()
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            answer = slow.result()
            assert answer.status_code == 200 or answer.json()["error"]["type"] == "shutting_down", answer.text
        process.wait(timeout=30)
        assert time.monotonic() - signalled < 30
        assert process.returncode == 0, read_log(tmp_path)
        assert "draining" in read_log(tmp_path)
        assert "port hand-over: Ray Serve's listener answers /ping" in read_log(tmp_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.timeout(120)
def test_unloadable_model_fails_fast_with_the_reason(tmp_path):
    missing = tmp_path / "no-such-model"
    process = start({"SDTURBO_MODEL": str(missing), "SDTURBO_PORT": str(free_port())}, tmp_path)
    assert process.wait(timeout=90) == 2
    log = read_log(tmp_path)
    assert "model could not be loaded" in log and str(missing) in log and "SDTURBO_MODEL=tiny" in log


def _truncate_unet_weights(path: Path) -> str:
    weights = next((path / "unet").glob("*.safetensors"))
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size - 100)
    return "is truncated"


def _remove_scheduler(path: Path) -> str:
    shutil.rmtree(path / "scheduler")
    return "has no scheduler/ folder"


def _another_architecture(path: Path) -> str:
    index = json.loads((path / "model_index.json").read_text())
    (path / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxPipeline"}))
    return "holds a FluxPipeline"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", [_truncate_unet_weights, _remove_scheduler, _another_architecture])
def test_a_faulty_model_directory_ends_the_start_with_one_line_before_ray(tmp_path, tiny_model_dir, fault):
    """What a broken model_data archive unpacks to: exit 2 with the reason in one line, before Ray
    starts (the port only ever answered 503 loading), and no traceback."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    reason = fault(model)
    process = start({"SDTURBO_MODEL": str(model), "SDTURBO_PORT": str(free_port())}, tmp_path)
    assert process.wait(timeout=150) == 2, read_log(tmp_path)
    log = read_log(tmp_path)
    line = next(line for line in log.splitlines() if "model could not be loaded" in line)
    assert f"Model directory {str(model)!r} cannot be served:" in line and reason in line, log
    assert "Traceback" not in log and "starting Ray head" not in log, log


def test_an_unreadable_model_directory_is_still_taken_as_the_model(tmp_path, monkeypatch):
    """Local mode's root-only /opt/ml/model, met by the container's non-root user: taken as the
    model (so the start fails with the reason), not a PermissionError from the environment
    mapping. (That such a directory is found unreadable, by another user, is checked in
    tests/serve_app/model/test_directory.py; the whole start in the image, by test_image.py.)"""
    from serve_app.model import directory

    entrypoint = import_entrypoint()
    (tmp_path / "model").mkdir()
    monkeypatch.setattr(directory, "unreadable_reason", lambda path: "not readable by this process")
    assert entrypoint.sagemaker_environment({}, tmp_path / "model")["SDTURBO_MODEL"] == str(tmp_path / "model")
    monkeypatch.setattr(directory, "unreadable_reason", lambda path: None)
    assert "SDTURBO_MODEL" not in entrypoint.sagemaker_environment({}, tmp_path / "model")  # readable, empty


@pytest.mark.timeout(120)
def test_unreachable_hub_model_fails_fast(tmp_path):
    env = {"SDTURBO_MODEL": "stabilityai/sd-turbo", "SDTURBO_PORT": str(free_port()), "HF_HOME": str(tmp_path / "hf")}
    process = start(env, tmp_path)
    assert process.wait(timeout=90) == 2
    assert "Could not fetch model 'stabilityai/sd-turbo'" in read_log(tmp_path)


@pytest.mark.timeout(120)
def test_settings_that_cannot_fit_the_container_are_refused_before_ray_starts(tmp_path, cache_dir, tiny_model_dir):
    env = {"SDTURBO_MODEL": "tiny", "SDTURBO_CACHE_DIR": cache_dir, "SDTURBO_NUM_REPLICAS": "1000",
           "SDTURBO_PORT": str(free_port())}
    process = start(env, tmp_path)
    assert process.wait(timeout=90) == 5
    log = read_log(tmp_path)
    assert "the settings do not fit this container: num_replicas=1000" in log and "this Ray cluster has" in log
    assert "starting Ray head" not in log


@pytest.mark.timeout(300)
def test_a_replica_not_running_by_the_startup_deadline_ends_the_container_with_rays_reason(
    tmp_path, cache_dir, tiny_model_dir
):
    deadline_s = 80  # from container start: Ray alone took 50 s to come up on a loaded 2-core box
    env = {
        "SDTURBO_MODEL": "tiny",
        "SDTURBO_CACHE_DIR": cache_dir,
        "SDTURBO_PORT": str(free_port()),
        "SDTURBO_STARTUP_DEADLINE_S": str(deadline_s),
        # The model replica's constructor never finishes (as on a hung model mount) ...
        "SDTURBO_FAULT_INJECTION_LOAD_STALL_S": "3600",
        # ... and Ray explains slow replicas after 2 s, not its default 30 s.
        "RAY_SERVE_SLOW_STARTUP_WARNING_S": "2",
        "RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S": "2",
    }
    process = start(env, tmp_path)
    assert process.wait(timeout=deadline_s + 120) == 4, read_log(tmp_path)
    log = read_log(tmp_path)
    assert f"(startup_deadline_s={deadline_s}): application 'sd-turbo' is DEPLOYING" in log, log
    assert "deployment SDTurboModel is UPDATING (replicas: 1 STARTING)" in log
    assert "has 1 replicas that have taken more than 2s to initialize" in log  # Ray's own words
    # Serve stops a replica stuck in its (threaded) constructor at once, not after its 20 s grace.
    stopped_late = [line for line in log.splitlines() if "SDTurboModel" in line and "did not shut down" in line]
    assert not stopped_late and "deployment='SDTurboModel', app='sd-turbo') is stopped" in log, stopped_late


def test_other_arguments_run_as_a_command(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ENTRYPOINT), sys.executable, "-c", "print('hello from the image')"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and "hello from the image" in result.stdout


def import_entrypoint():
    sys.path.insert(0, str(ENTRYPOINT.parent))
    try:
        import entrypoint
    finally:
        sys.path.pop(0)
    return entrypoint


# Measured in the image on the 2-core machine (docs/container.md, "Stopping within 30 s"): the
# slowest ray.shutdown() after a drain, and answering the aborted requests (relay included).
MEASURED_RAY_SHUTDOWN_S = 1.8
MEASURED_ANSWERING_S = 0.6


def test_stop_budget_fits_sagemakers_30s():
    """The drain deadline, spelled out: 30 s to SIGKILL - 1 s margin - 1 s safety net - 1.5 s
    answering - 4 s Ray's shutdown = 22.5 s; the reserves cover what was measured."""
    entrypoint = import_entrypoint()
    assert entrypoint.STOP_GRACE_S == 30 and entrypoint.HARD_EXIT_AFTER_S == 29
    assert entrypoint.drain_deadline_s(25.0) == 22.5  # the default drain_timeout_s, capped
    assert entrypoint.drain_deadline_s(60.0) == 22.5
    assert entrypoint.drain_deadline_s(5.0) == 5.0  # a shorter configured drain is kept
    assert entrypoint.drain_deadline_s(0.0) == 0.0
    # Each reserve holds its measured step with room to spare, and the worst case ends before
    # the safety net: 22.5 + 1.5 + 4 = 28 s < 29 s.
    assert entrypoint.SHUTDOWN_RESERVE_S >= 2 * MEASURED_RAY_SHUTDOWN_S
    assert entrypoint.ABORT_RESERVE_S >= 2 * MEASURED_ANSWERING_S
    assert 22.5 + entrypoint.ABORT_RESERVE_S + entrypoint.SHUTDOWN_RESERVE_S <= 28.0


def test_sagemaker_environment_mapping(tmp_path):
    sagemaker_environment = import_entrypoint().sagemaker_environment
    (tmp_path / "model_index.json").write_text("{}")
    implied = sagemaker_environment({"SDTURBO_OFFLINE": "1"}, model_dir=tmp_path)
    assert implied == {
        "SDTURBO_HOST": "0.0.0.0",
        "SDTURBO_PORT": "8080",
        "SDTURBO_MODEL": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
    }
    explicit = sagemaker_environment({"SDTURBO_MODEL": "tiny", "SAGEMAKER_BIND_TO_PORT": "9000"}, model_dir=tmp_path)
    assert explicit == {"SDTURBO_HOST": "0.0.0.0", "SDTURBO_PORT": "9000"}
    assert "SDTURBO_MODEL" not in sagemaker_environment({}, model_dir=tmp_path / "empty")
    # An explicit model list is the whole choice: the mounted directory is served only when it names it.
    listed = sagemaker_environment({"SDTURBO_MODELS": "tiny,tiny-xl"}, model_dir=tmp_path)
    assert "SDTURBO_MODEL" not in listed
    assert Settings.load({}, environ={"SDTURBO_MODELS": "tiny,tiny-xl", **listed}).served_models[1].name == "tiny-xl"


def wait_for_ping_200(process: subprocess.Popen, url: str, tmp_path: Path, give_up_s: float = 200) -> None:
    deadline = time.monotonic() + give_up_s
    while True:
        assert process.poll() is None, read_log(tmp_path)[-4000:]
        try:
            if httpx.get(url + "/ping", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, read_log(tmp_path)[-4000:]
        time.sleep(0.25)


def cluster_processes(root: int) -> dict[int, str]:
    """PID -> command line of ``root``'s process tree: the cluster this test started, nothing else."""
    processes = {}
    for pid in process_tree(root):
        try:
            processes[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return processes


@contextlib.contextmanager
def serving_entrypoint(tmp_path: Path, cache_dir: str) -> Iterator[tuple[subprocess.Popen, str, dict[int, str]]]:
    """The entrypoint serving ``tiny`` on a free port: (process, URL, its cluster's processes).
    Stopped afterwards, with whatever of its cluster outlived it (Ray's workers outlive a dead raylet)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start({"SDTURBO_MODEL": "tiny", "SDTURBO_PORT": str(port), "SDTURBO_CACHE_DIR": cache_dir}, tmp_path)
    started_pids: set[int] = set()
    try:
        wait_for_ping_200(process, url, tmp_path)
        processes = cluster_processes(process.pid)
        started_pids = set(processes)
        yield process, url, processes
    finally:
        started_pids |= set(cluster_processes(process.pid))  # with the replacements Ray started
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
        for pid in started_pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def run_fault(process: subprocess.Popen, url: str, fault: str, processes: dict[int, str], tmp_path: Path) -> float | None:
    """SIGKILL ``fault`` under a small steady load and watch until the entrypoint serves again for
    good or exits; asserts SageMaker's contract held (tests/container/chaos.py). Returns how long
    after the kill the entrypoint exited (None: it did not)."""
    with chaos.Watch(url) as watch:
        time.sleep(3.0)  # the load is flowing
        os.kill(chaos.find(processes, fault), signal.SIGKILL)
        killed_at = time.monotonic()
        exited_at = None
        while time.monotonic() < killed_at + chaos.RECOVER_S + 10:
            if process.poll() is not None:
                exited_at = time.monotonic()
                break
            if watch.settled(killed_at):
                break
            time.sleep(0.25)
    answers = watch.snapshot()
    problems = chaos.verdict(answers, killed_at, exited_at, process.returncode)
    print(f"\n[chaos] {fault}: {'kept' if not problems else problems}; exit {process.returncode}\n{chaos.timeline(answers, killed_at)}")
    assert not problems, "\n".join(problems) + "\n" + chaos.timeline(answers, killed_at) + "\n" + read_log(tmp_path)[-3000:]
    return None if exited_at is None else exited_at - killed_at


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["raylet", "gcs"])
def test_chaos_a_dead_raylet_or_gcs_ends_the_entrypoint_with_what_died(tmp_path, cache_dir, tiny_model_dir, fault):
    """The entrypoint on this host, as in the container, under a small steady load: a SIGKILLed
    raylet or GCS (which Ray does not bring back) ends the entrypoint with exit code 6 and one
    line naming it, within 30 s; /ping never says 200 while requests fail."""
    with serving_entrypoint(tmp_path, cache_dir) as (process, url, processes):
        exited_after_s = run_fault(process, url, fault, processes, tmp_path)
        log = read_log(tmp_path)
        assert process.returncode == 6 and exited_after_s is not None and exited_after_s < 30, log[-3000:]
        name = {"raylet": "raylet", "gcs": "GCS server"}[fault]
        lines = [line for line in log.splitlines() if line.startswith(f"[entrypoint] the {name} (pid ")]
        assert len(lines) == 1 and "died (killed by SIGKILL): this instance cannot serve" in lines[0], log[-3000:]


@pytest.mark.timeout(600)
def test_chaos_what_ray_restarts_recovers_in_place(tmp_path, cache_dir, tiny_model_dir):
    """A model replica, the ingress replica, the Serve controller, SIGKILLed one after another in
    one entrypoint under a small steady load (as the image test does in one container): each is
    restarted by Ray and the entrypoint serves again, or ends non-zero; /ping never says 200 while
    requests fail."""
    with serving_entrypoint(tmp_path, cache_dir) as (process, url, _):
        for fault in ("model_replica", "ingress_replica", "controller"):
            # Read afresh: the process tree now holds the replacements of what was killed before.
            run_fault(process, url, fault, cluster_processes(process.pid), tmp_path)
            if process.poll() is not None:
                break  # ended non-zero (checked above): nothing left to kill
            wait_for_ping_200(process, url, tmp_path, give_up_s=120)
