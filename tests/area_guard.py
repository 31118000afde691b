"""Under CI (``CI=true``), a test area that was collected but skipped as a whole fails the run.

Several areas skip when their tool is missing (Chromium, the Terraform CLI and its provider
mirror, checkov, a Docker engine): right on a developer's laptop, wrong in CI, where a skip would
hide that an area never ran. tests/conftest.py installs these hooks. An area that is not
collected at all (``--ignore``, a subset of files) is not judged: the GitHub image job runs the
image test on its own.
"""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

# Area -> the node ids (a module, or a module's test function) that make it up.
AREAS: dict[str, tuple[str, ...]] = {
    "browser tests (Chromium)": ("tests/serve_app/test_pages_browser.py",),
    "Terraform CLI tests (terraform, provider mirror)": (
        "tests/infra/test_terraform_moto.py",
        "tests/infra/test_terraform_static.py::test_fmt_check",
        "tests/infra/test_terraform_static.py::test_init_offline_and_validate",
        "tests/infra/test_terraform_static.py::test_terraform_native_tests_with_mocked_provider",
    ),
    "checkov": ("tests/infra/test_terraform_static.py::test_checkov_passes_or_skips_are_justified",),
    "image test (Docker)": ("tests/container/test_image.py",),
    "live Ray app": ("tests/serve_app/test_app_integration.py", "tests/container/test_entrypoint.py"),
}


def areas_of(nodeid: str) -> list[str]:
    return [
        area
        for area, prefixes in AREAS.items()
        if any(nodeid == p or nodeid.startswith((p + "::", p + "[")) for p in prefixes)
    ]


class AreaGuard:
    def __init__(self) -> None:
        # Area -> outcomes of its tests ("passed", "failed", "skipped").
        self.outcomes: dict[str, set[str]] = defaultdict(set)

    def record(self, nodeid: str, outcome: str) -> None:
        for area in areas_of(nodeid):
            self.outcomes[area].add(outcome)

    def wholly_skipped(self) -> list[str]:
        return sorted(area for area, outcomes in self.outcomes.items() if outcomes == {"skipped"})


GUARD = AreaGuard()


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module that skips itself at import (allow_module_level) has no test reports at all.
    if report.skipped:
        GUARD.record(report.nodeid, "skipped")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.skipped:
        GUARD.record(report.nodeid, report.outcome)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() != "true":
        return
    if hasattr(session.config, "workerinput"):
        # A pytest-xdist worker sees only the files it ran; the controller receives every
        # worker's reports (skipped collections included) and judges the whole run.
        return
    skipped = GUARD.wholly_skipped()
    if not skipped:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = f"CI: every test of these areas was skipped: {', '.join(skipped)} (install what .ci/run installs)"
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    if exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
