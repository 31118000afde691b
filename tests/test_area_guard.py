"""tests/area_guard.py: under CI=true a wholly skipped area fails the run; elsewhere it is only a skip."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.area_guard import AREAS, areas_of

REPO = Path(__file__).resolve().parents[1]

# A miniature project: the guard's hooks in its conftest, a browser module that skips itself at
# import (as tests/serve_app/test_pages_browser.py does without Chromium), the checkov test.
CONFTEST = "from tests.area_guard import pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish\n"


def run_pytest(root: Path, ci: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(root), *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    browser = tmp_path / "tests" / "serve_app" / "test_pages_browser.py"
    browser.parent.mkdir(parents=True)
    browser.write_text(textwrap.dedent("""
        import os, pytest
        if not os.environ.get("HAVE_CHROMIUM"):
            pytest.skip("no Chromium", allow_module_level=True)
        def test_page():
            assert True
    """))
    static = tmp_path / "tests" / "infra" / "test_terraform_static.py"
    static.parent.mkdir(parents=True)
    static.write_text(textwrap.dedent("""
        import os, pytest
        def test_checkov_passes_or_skips_are_justified():
            if not os.environ.get("HAVE_CHECKOV"):
                pytest.skip("checkov not installed")
        def test_outputs_a_user_needs():
            assert True
    """))
    return tmp_path


def test_under_ci_a_wholly_skipped_area_fails_the_run(project):
    result = run_pytest(project, "true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "every test of these areas was skipped: browser tests (Chromium), checkov" in result.stdout


def test_outside_ci_the_same_skips_pass(project):
    result = run_pytest(project, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in result.stdout


def test_under_ci_an_area_that_ran_passes(project, monkeypatch):
    monkeypatch.setenv("HAVE_CHROMIUM", "1")
    monkeypatch.setenv("HAVE_CHECKOV", "1")
    result = run_pytest(project, "true")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_area_left_out_of_the_run_is_not_judged(project, monkeypatch):
    monkeypatch.setenv("HAVE_CHECKOV", "1")
    result = run_pytest(project, "true", "--ignore=tests/serve_app/test_pages_browser.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_with_xdist_workers_the_controller_judges_the_whole_run(project, monkeypatch):
    # The suite runs on pytest-xdist workers (pyproject's addopts): a worker sees only its own
    # files, the controller every report, a module skipped at import included.
    result = run_pytest(project, "true", "-n", "2", "--dist", "loadfile")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "every test of these areas was skipped: browser tests (Chromium), checkov" in result.stdout
    monkeypatch.setenv("HAVE_CHROMIUM", "1")
    monkeypatch.setenv("HAVE_CHECKOV", "1")
    result = run_pytest(project, "true", "-n", "2", "--dist", "loadfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_areas_name_tests_that_exist():
    for area, prefixes in AREAS.items():
        for prefix in prefixes:
            module, _, function = prefix.partition("::")
            path = REPO / module
            assert path.is_file(), (area, prefix)
            assert not function or f"def {function}(" in path.read_text(), (area, prefix)


def test_node_ids_map_to_their_areas():
    assert areas_of("tests/serve_app/test_pages_browser.py::test_docs_page[chromium]") == ["browser tests (Chromium)"]
    assert areas_of("tests/infra/test_terraform_static.py::test_fmt_check") == [
        "Terraform CLI tests (terraform, provider mirror)"
    ]
    assert areas_of("tests/infra/test_terraform_static.py::test_outputs_a_user_needs") == []
    assert areas_of("tests/container/test_image.py::test_image_serves") == ["image test (Docker)"]
