"""serve_app/launch.py: the one way the project starts Ray and Serve (the image, the benchmarks, the tests)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve_app import direct_ingress, launch
from serve_app.emf import RAY_LOG_FORWARDING_ENV
from serve_app.startup import RAY_SLOW_STARTUP_ENV

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("serve_app", "container", "loadtest", "deployments", "tests")
LAUNCHER = "serve_app/launch.py"

# What starts Ray or Serve: (module alias, function).
STARTING_CALLS = {("ray", "init"), ("serve", "start"), ("serve", "run"), ("serve", "run_many")}
# What writes Ray's environment (outside the modules that define it and their own unit tests).
ENVIRONMENT_CALLS = {("direct_ingress", "prepare"), (None, "ray_slow_startup_env")}


def project_sources() -> list[Path]:
    return sorted(path for folder in SOURCE_DIRS for path in (REPO / folder).rglob("*.py"))


def calls_in(path: Path) -> set[tuple[str | None, str]]:
    """(object name, attribute) of every ``a.b(...)`` call and (None, name) of every ``b(...)`` call."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            found.add((node.func.value.id, node.func.attr))
        elif isinstance(node.func, ast.Name):
            found.add((None, node.func.id))
    return found


def modules_calling(wanted: set[tuple[str | None, str]], sources: list[Path]) -> set[str]:
    return {str(path.relative_to(REPO)) for path in sources if calls_in(path) & wanted}


def test_the_sources_are_found():
    names = {str(path.relative_to(REPO)) for path in project_sources()}
    assert {LAUNCHER, "container/entrypoint.py", "loadtest/app_server.py", "tests/live_app.py"} <= names


def test_ray_and_serve_are_started_in_one_module():
    assert modules_calling(STARTING_CALLS, project_sources()) == {LAUNCHER}


def test_ray_init_is_called_in_one_module():
    assert modules_calling({("ray", "init")}, project_sources()) == {LAUNCHER}
    # Nor imported under another name.
    importing_init = [
        str(path.relative_to(REPO))
        for path in project_sources()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == "ray" and any(a.name == "init" for a in node.names)
    ]
    assert importing_init == []


def test_rays_environment_is_prepared_in_one_module():
    sources = [path for path in project_sources() if "tests" not in path.relative_to(REPO).parts]
    assert modules_calling(ENVIRONMENT_CALLS, sources) == {LAUNCHER}
    forwarding = [path for path in sources if "RAY_LOG_FORWARDING_ENV" in path.read_text()]
    assert {str(path.relative_to(REPO)) for path in forwarding} == {"serve_app/emf.py", LAUNCHER}


def test_the_image_the_benchmarks_and_the_tests_start_the_service_through_it():
    for user in ("container/entrypoint.py", "loadtest/app_server.py", "tests/live_app.py"):
        text = (REPO / user).read_text()
        for step in ("prepare_ray_environment", "start_ray", "start_serve", "deploy"):
            assert f"launch.{step}(" in text, (user, step)


def test_importing_the_launcher_imports_no_ray():
    code = "import sys, serve_app.launch; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def clean_ray_environment(monkeypatch):
    """Every variable the launcher may set, unset now and restored after the test."""
    names = {
        *RAY_LOG_FORWARDING_ENV,
        *launch.RAY_HEAD_ENV_DEFAULTS,
        *RAY_SLOW_STARTUP_ENV,
        *direct_ingress.ray_environment(1),
    }
    for name in names:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_prepare_sets_the_containers_ray_environment(clean_ray_environment):
    http_options = launch.prepare_ray_environment(
        "127.0.0.1", 18123, direct_ingress_enabled=True, startup_deadline_s=840, request_timeout_s=65
    )
    # The replicas' log lines whole and every one (CloudWatch EMF), replicas at nice 0, no usage report.
    assert os.environ["RAY_DISABLE_WORKER_LOG_PREFIX"] == "1" and os.environ["RAY_DEDUP_LOGS"] == "0"
    assert os.environ["RAY_worker_niceness"] == "0" and os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    # Slow replicas explained after a quarter of the deadline, at most Ray's default 30 s.
    assert os.environ["RAY_SERVE_SLOW_STARTUP_WARNING_S"] == "30"
    # Direct ingress on the public port; Ray's proxy moved out of its way.
    assert os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] == "18123"
    assert os.environ["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] == "18124"
    assert http_options["host"] == "127.0.0.1" and http_options["port"] != 18123
    assert http_options["request_timeout_s"] == 65


def test_prepare_keeps_an_operators_values_and_clears_direct_ingress_when_off(clean_ray_environment):
    clean_ray_environment.setenv("RAY_worker_niceness", "5")
    clean_ray_environment.setenv("RAY_SERVE_SLOW_STARTUP_WARNING_S", "7")
    clean_ray_environment.setenv("RAY_SERVE_ENABLE_DIRECT_INGRESS", "1")
    http_options = launch.prepare_ray_environment("127.0.0.1", 18123, direct_ingress_enabled=False, startup_deadline_s=40)
    assert os.environ["RAY_worker_niceness"] == "5"
    assert os.environ["RAY_SERVE_SLOW_STARTUP_WARNING_S"] == "7"
    assert os.environ["RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S"] == "10"  # 40 s / 4
    assert "RAY_SERVE_ENABLE_DIRECT_INGRESS" not in os.environ
    assert http_options == {"host": "127.0.0.1", "port": 18123}


def test_start_ray_passes_the_head_to_ray_init(monkeypatch):
    import ray

    calls = []
    monkeypatch.setattr(ray, "init", lambda **options: calls.append(options))
    launch.start_ray(launch.RayHead(num_cpus=3, num_gpus=1, object_store_memory=10**8, temp_dir="/tmp/r", metrics_export_port=9091))
    launch.start_ray(launch.RayHead(log_to_driver=False))
    assert calls == [
        {
            "num_cpus": 3,
            "num_gpus": 1,
            "object_store_memory": 10**8,
            "include_dashboard": False,
            "log_to_driver": True,
            "_temp_dir": "/tmp/r",
            "_metrics_export_port": 9091,
        },
        {"num_cpus": None, "num_gpus": None, "object_store_memory": None, "include_dashboard": False, "log_to_driver": False},
    ]
