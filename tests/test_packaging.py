"""pyproject.toml and the image's lock file: what a regular (non-editable) install gets.

Editable installs (the quick start) read files straight from the source tree, so they hide
missing package data and wrong entry points; the image installs a wheel, so these checks do too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCK = REPO / "container" / "requirements.lock"
# The Pythons the project supports: Debian bookworm's (the stand-in base) and Ubuntu 24.04's (the real base).
SUPPORTED_PYTHONS = ("3.11", "3.12")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The project's wheel, built from a copy of what the image build copies."""
    source = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("serve_app", "deployments", "loadtest"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return zipfile.ZipFile(next(out.glob("*.whl")))


@pytest.mark.timeout(300)
def test_wheel_ships_the_model_assets(wheel):
    names = set(wheel.namelist())
    for asset in (REPO / "serve_app" / "model" / "assets").iterdir():
        assert f"serve_app/model/assets/{asset.name}" in names, f"{asset.name} is missing from the wheel"


@pytest.mark.timeout(300)
def test_wheel_console_scripts_point_at_functions_that_exist(wheel):
    entry_points = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    scripts = re.findall(r"^(\S+) = ([\w.]+):(\w+)$", wheel.read(entry_points).decode(), re.M)
    assert scripts, "no console scripts in the wheel"
    for name, module, function in scripts:
        assert callable(getattr(importlib.import_module(module), function, None)), f"{name} -> {module}:{function}"


def test_requires_python_is_true_for_every_dependency():
    """No Python that pyproject admits may be refused by a dependency (diffusers 0.42 needs 3.11)."""
    ours = SpecifierSet(PYPROJECT["project"]["requires-python"])
    admitted = [f"3.{minor}" for minor in range(8, 16) if f"3.{minor}" in ours]
    assert admitted == list(SUPPORTED_PYTHONS)
    for dependency in PYPROJECT["project"]["dependencies"]:
        name = Requirement(dependency).name
        theirs = importlib.metadata.metadata(name).get("Requires-Python")
        if theirs:
            refused = [version for version in admitted if f"{version}.0" not in SpecifierSet(theirs)]
            assert not refused, f"{name} requires Python {theirs}, pyproject admits {refused}"


def _lock_pins() -> list[tuple[str, str, Marker | None]]:
    pins = []
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*(.+?))?\s*\\?$", line)
        if match:
            name, version, marker = match.groups()
            pins.append((name.lower(), version, Marker(marker) if marker else None))
    return pins


@pytest.mark.parametrize("python", SUPPORTED_PYTHONS)
def test_lock_is_universal_and_pins_every_dependency_once_per_python(python):
    header = LOCK.read_text().splitlines()[1]
    assert "uv pip compile pyproject.toml --universal" in header and "--generate-hashes" in header, header
    environment = {
        "python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
        "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
        "platform_python_implementation": "CPython", "os_name": "posix",
    }
    selected: dict[str, list[str]] = {}
    for name, version, marker in _lock_pins():
        if marker is None or marker.evaluate(environment):
            selected.setdefault(name, []).append(version)
    duplicated = {name: versions for name, versions in selected.items() if len(versions) > 1}
    assert not duplicated, duplicated
    for dependency in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(dependency)
        name = requirement.name.lower()
        assert name in selected, f"{name} (pyproject) is not in the lock: regenerate it (see its header)"
        assert selected[name][0] in requirement.specifier, f"{name}=={selected[name][0]} vs {requirement}"
